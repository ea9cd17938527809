"""One FAISS index folder shared by every process that opens it (issue #26).

Files in the folder:

- ``manifest.json``: format, embedding model, dimension, metric; checked on open.
- ``snapshot.npz``: every entry (vectors and JSON metadata in one file), the
  *generation* it starts and ``upto``, the (generation, offset) of the log it was folded
  from: if its compaction dies before switching the log, records appended after that
  offset by a peer that was current (and saw no sign of it) are carried into the new log.
- ``log.jsonl``: a header line ``{"op":"gen","g":G,"prev":[G-1,L]}`` naming its
  generation, then one JSON record per operation (add, del, clear, obs) since snapshot
  ``G``. A record counts once its closing newline is written; a tail without one is a
  write that a killed process never finished (never acknowledged) and is cut off by the
  next process that holds the lock. A complete line that is not a well-formed record
  (damage, another writer) is skipped with a warning, never a reason to cut the records
  after it; a vector of another dimension, a damaged snapshot or manifest is an
  ``IntegrityError`` naming the file.
- ``seq``: eight bytes, memory-mapped by every process: a counter each writer bumps
  after its append. A lookup compares it with the value it last saw (a memory read,
  ~0.2 us: no syscall, no re-read) and catches up with the log only when it moved.
- ``write.lock``: a short cross-process lock (``filelock``: flock on Linux and macOS,
  LockFileEx on Windows), held for an append, a catch-up or a compaction, never between
  calls. The kernel drops it when its holder dies, so a SIGKILL never wedges the folder.

Every process applies the log in file order, its own writes included (a writer catches
up under the lock before appending), so once a process has read the log to its end its
entries are exactly snapshot + log. Compaction therefore runs under the lock after such
a catch-up: the new snapshot is snapshot + log, never a stale view, and no acknowledged
entry can be dropped. The new log's header names the state it continues from
(``prev``): a peer that had read exactly that far keeps its memory; others reload.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mmap
import os
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .._errors import ConfigError, IntegrityError, missing

try:
    # Imported with this module, before faiss.py registers its fork hooks: at-fork
    # "before" hooks run in reverse order of registration, so filelock's own (which
    # closes its gate for the fork) then runs after ours have taken the index locks.
    import filelock
except ImportError:  # pragma: no cover - present with every extra that has an embedder
    filelock = None  # type: ignore[assignment]

__all__ = ["FORMAT", "Catchup", "FolderLog"]

log = logging.getLogger("semcache.indexes.faiss")

FORMAT = 1
_SEQ = struct.Struct("<Q")
#: inherited lock objects of forked children, kept alive so that no finaliser of an old
#: filelock release it in the child (which would unlock the parent's hold)
_INHERITED: list[Any] = []


@dataclass
class Catchup:
    """What a process must apply to be current: a snapshot to restart from (when its
    memory cannot be continued), then log records in order."""

    snapshot: tuple[np.ndarray, list[dict[str, Any]]] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)


class FolderLog:
    """The shared files of one index folder; the caller serialises its own threads."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        if filelock is None:
            raise missing("filelock", "local", "a faiss-semantic folder")
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fsync = fsync
        self._log_p = path / "log.jsonl"
        self._snap_p = path / "snapshot.npz"
        self._pid = os.getpid()
        self._flock = self._new_flock()
        self.gen = -1  #: generation this process's memory is at; -1: nothing loaded yet
        self.off = 0  #: byte offset in log.jsonl of the first record not yet applied
        self.lines = 0  #: records of this generation applied (compaction trigger)
        self.seen = -1  #: value of the seq counter when this process was last current
        self.skipped = 0  #: malformed records skipped (logged) by this process
        self.dim: int | None = None  #: the index's dimension: a snapshot's must match
        with self.held():
            seq_p = path / "seq"
            if not seq_p.exists() or seq_p.stat().st_size < _SEQ.size:
                _atomic_write(seq_p, _SEQ.pack(0))
            if not self._log_p.exists() or self._log_p.stat().st_size == 0:
                _atomic_write(self._log_p, _head(self._snapshot_gen(), None))
        with open(seq_p, "r+b") as f:  # the mapping keeps its own descriptor
            self._seq = mmap.mmap(f.fileno(), _SEQ.size)

    def _new_flock(self) -> Any:
        return filelock.FileLock(self.path / "write.lock", preserve_lock_file=True,
                                 thread_local=False)

    # -- the lock ------------------------------------------------------------------
    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """The folder's lock, owned by this process: a forked child gets its own lock
        object, so its release (or ``close``) can never unlock its parent's hold."""
        if os.getpid() != self._pid:
            _INHERITED.append(self._flock)
            self._flock = self._new_flock()
            self._pid = os.getpid()
        with self._flock:
            yield

    def stale(self) -> bool:
        """Did another process write since this one was last current? (lock-free)"""
        return _SEQ.unpack_from(self._seq)[0] != self.seen

    # -- reading -------------------------------------------------------------------
    def forget(self) -> None:
        """Make the next ``catch_up`` reload the folder from its snapshot (the caller's
        memory could not apply what the last one returned)."""
        self.gen, self.off, self.lines, self.seen = -1, 0, 0, -1

    def catch_up(self) -> Catchup:
        """Everything written since this process was current; the caller holds the lock."""
        out = Catchup()
        self.seen = _SEQ.unpack_from(self._seq)[0]  # read under the lock: consistent
        while True:
            with open(self._log_p, "r+b") as f:
                head = f.readline()
                file_gen, prev, body = _parse_head(head, self.path)
                size = os.fstat(f.fileno()).st_size
                if file_gen != self.gen or size < self.off:  # (shorter: if tampered with)
                    if file_gen == self.gen or prev != [self.gen, self.off]:
                        snap_gen, vecs, meta, upto = self._load_snapshot(self.dim)
                        if snap_gen > file_gen:
                            # a compaction died after its snapshot, before switching
                            # the log: finish it, then read the new log
                            self._finish_compaction(f, file_gen, body, size, snap_gen, upto)
                            continue
                        if snap_gen < file_gen:
                            log.warning("index at %s: log generation %d has no snapshot "
                                        "(found %d); replaying what is there", self.path,
                                        file_gen, snap_gen)
                        out.snapshot = (vecs, meta)
                    self.gen, self.off, self.lines = file_gen, body, 0
                return self._read_records(f, out)

    def _read_records(self, f: Any, out: Catchup) -> Catchup:
        f.seek(self.off)
        data = f.read()
        end = data.rfind(b"\n") + 1
        good = 0
        for line in data[:end].splitlines(keepends=True):
            good += len(line)
            try:
                out.records.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                # a complete line (its newline was written) that is not JSON: damage,
                # not an unfinished write; the records after it were acknowledged
                # and are kept (cutting the file here would drop them for everyone)
                self.skipped += 1
                log.warning("index at %s: skipped a malformed record in log.jsonl "
                            "(%s); %d so far", self.path, exc, self.skipped)
        if good < len(data):
            # We hold the lock, so whoever wrote this tail is gone without having
            # returned: the write was never acknowledged. Cut it off, or the next
            # append would be glued to it and everything after lost to replay.
            log.warning("index at %s: dropped %d bytes of an unfinished write from a "
                        "process that died", self.path, len(data) - good)
            f.truncate(self.off + good)
        self.off += good
        self.lines += len(out.records)
        return out

    def log_size(self) -> int:
        return os.stat(self._log_p).st_size

    def read_snapshot(self, dim: int | None = None
                      ) -> tuple[int, np.ndarray, list[dict[str, Any]]]:
        gen, vecs, meta, _ = self._load_snapshot(dim)
        return gen, vecs, meta

    def _load_snapshot(self, dim: int | None = None) -> tuple[
            int, np.ndarray, list[dict[str, Any]], tuple[int, int] | None]:
        """(generation, vectors, metadata, upto): ``upto`` is the (generation, offset) of
        the log the snapshot was folded from, None for a snapshot written before it was
        recorded."""
        if not self._snap_p.exists():
            return 0, np.zeros((0, 0), np.float32), [], None
        with self._snapshot_errors():
            # opened here, not by np.load: it leaks its handle when the zip is damaged
            with open(self._snap_p, "rb") as f, np.load(f, allow_pickle=False) as z:
                vecs = z["vecs"]
                meta = json.loads(z["meta"].tobytes())
                gen = int(z["gen"]) if "gen" in z.files else 0  # before issue #26: 0
                raw = z["upto"] if "upto" in z.files else None
            if vecs.dtype != np.float32 or vecs.ndim != 2 or not isinstance(meta, list) \
                    or len(meta) != len(vecs):
                raise ValueError(f"vectors {vecs.dtype}{list(vecs.shape)} for "
                                 f"{len(meta) if isinstance(meta, list) else 'no'} entries")
            if dim is not None and len(vecs) and vecs.shape[1] != dim:
                raise ValueError(f"vectors of dimension {vecs.shape[1]}, not the "
                                 f"manifest's {dim}")
            upto = None
            if raw is not None:
                if raw.shape != (2,) or raw.dtype.kind != "i":
                    raise ValueError(f"upto {raw.dtype}{list(raw.shape)}")
                upto = (int(raw[0]), int(raw[1]))
        return gen, vecs, meta, upto

    def _snapshot_gen(self) -> int:
        if not self._snap_p.exists():
            return 0
        with self._snapshot_errors(), open(self._snap_p, "rb") as f, \
                np.load(f, allow_pickle=False) as z:
            return int(z["gen"]) if "gen" in z.files else 0

    @contextlib.contextmanager
    def _snapshot_errors(self) -> Iterator[None]:
        """A damaged snapshot (truncated, not a zip, another shape) is an
        ``IntegrityError`` naming it, never numpy's or zipfile's own exception."""
        try:
            yield
        except (OSError, EOFError, KeyError, TypeError, ValueError, RecursionError,
                zipfile.BadZipFile) as exc:  # RecursionError: json's, on deep nesting
            raise IntegrityError(
                f"index at {str(self.path)!r}: snapshot.npz is damaged ({exc}); restore it "
                "or flush the folder") from exc

    # -- writing (the caller holds the lock and has caught up) ----------------------
    def append(self, records: list[dict[str, Any]]) -> None:
        data = b"".join(orjson.dumps(r) + b"\n" for r in records)
        with open(self._log_p, "ab") as f:
            f.write(data)
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        self.off += len(data)
        self.lines += len(records)
        self._bump()

    def compact(self, vecs: np.ndarray, meta: list[dict[str, Any]]) -> None:
        """Write snapshot + log as the next generation's snapshot and start its log."""
        new = self.gen + 1
        tmp = self.path / "snapshot.tmp.npz"
        with open(tmp, "wb") as f:
            np.savez(f, vecs=vecs, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                     gen=np.array(new, dtype=np.int64),
                     upto=np.array([self.gen, self.off], dtype=np.int64))
            f.flush()
            os.fsync(f.fileno())
        # one file, renamed into place: vectors and metadata never disagree; a crash
        # before the log is switched leaves a newer snapshot, which catch_up() detects
        os.replace(tmp, self._snap_p)
        head = _head(new, [self.gen, self.off])
        _atomic_write(self._log_p, head)
        self.gen, self.off, self.lines = new, len(head), 0
        self._bump()

    def _finish_compaction(self, f: Any, file_gen: int, body: int, size: int,
                           snap_gen: int, upto: tuple[int, int] | None) -> None:
        """Switch the log to a snapshot whose compaction died before doing it.

        The snapshot holds the log up to ``upto`` only: a peer that was current at the
        time had no sign of the compaction (the counter was never bumped) and may have
        appended, and been acknowledged, since. Those records start the new log."""
        keep = b""
        if upto is not None and upto[0] == file_gen and body <= upto[1] <= size:
            f.seek(upto[1])
            tail = f.read()
            keep = tail[: tail.rfind(b"\n") + 1]  # a torn tail was never acknowledged
        elif upto is not None and size > body:
            log.warning("index at %s: snapshot generation %d was folded from log "
                        "generation %d at byte %d, the log is generation %d of %d bytes: "
                        "its records are not replayed", self.path, snap_gen, upto[0],
                        upto[1], file_gen, size)
        # atomically: a crash here leaves the old log, and the next reader does this again
        _atomic_write(self._log_p, _head(snap_gen, None) + keep)
        self._bump()  # every process re-reads: the log they were reading is gone

    def _bump(self) -> None:
        self.seen = (_SEQ.unpack_from(self._seq)[0] + 1) & 0xFFFF_FFFF_FFFF_FFFF
        _SEQ.pack_into(self._seq, 0, self.seen)

    # -- manifest ------------------------------------------------------------------
    def check_manifest(self, metric: str, model_id: str | None,
                       dim: int | None) -> tuple[str | None, int | None]:
        """Refuse a folder built otherwise; returns (model_id, dim) completed from it."""
        p = self.path / "manifest.json"
        if p.exists():
            where = str(self.path)
            try:
                m = json.loads(p.read_bytes())
            except (OSError, ValueError, RecursionError) as exc:  # RecursionError: json's,
                # on deep nesting; UnicodeDecodeError is a ValueError
                raise IntegrityError(f"index at {where!r}: manifest.json is damaged ({exc}); "
                                     "restore it or flush the folder") from exc
            d, mid = m.get("dim") if isinstance(m, dict) else None, \
                m.get("model_id") if isinstance(m, dict) else None
            if not isinstance(m, dict) or not isinstance(mid, (str, type(None))) or not (
                    d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0)):
                raise IntegrityError(f"index at {where!r}: manifest.json is damaged (not "
                                     "an object with a string model_id and a positive int "
                                     "dim); restore it or flush the folder")
            if m.get("format") != FORMAT or m.get("metric") != metric:
                raise ConfigError(f"index at {where!r} has format/metric {m.get('format')}/"
                                  f"{m.get('metric')}, expected {FORMAT}/{metric}")
            if model_id is not None and m.get("model_id") not in (None, model_id):
                raise ConfigError(
                    f"index at {where!r} was built with embedding model "
                    f"{m.get('model_id')!r}, not {model_id!r}: its vectors are not "
                    "comparable; use another folder or flush it", parameter="embedding_model")
            if dim is not None and m.get("dim") not in (None, dim):
                raise ConfigError(f"index at {where!r} has dimension {m.get('dim')}, "
                                  f"not {dim}", parameter="dim")
            dim = m.get("dim") or dim
            model_id = model_id or m.get("model_id")
        return model_id, dim

    def write_manifest(self, metric: str, model_id: str | None, dim: int | None) -> None:
        _atomic_write(self.path / "manifest.json", json.dumps(
            {"format": FORMAT, "model_id": model_id, "dim": dim, "metric": metric}).encode())

    def close(self) -> None:
        """Drop this process's mapping; nothing shared is released (no lock is held
        between calls)."""
        with contextlib.suppress(BufferError, ValueError):
            self._seq.close()


def _head(gen: int, prev: list[int] | None) -> bytes:
    return orjson.dumps({"op": "gen", "g": gen, "prev": prev}) + b"\n"


def _parse_head(line: bytes, where: Path) -> tuple[int, list[int] | None, int]:
    """(generation, prev, offset of the first record); a log written before issue #26
    has no header: generation 0, records from byte 0. A header whose generation is not a
    non-negative int is an ``IntegrityError``: a guess would pair the records with the
    wrong snapshot (a reset that drops them, or a snapshot never loaded)."""
    if line.endswith(b"\n"):
        with contextlib.suppress(orjson.JSONDecodeError):
            op = orjson.loads(line)
            if isinstance(op, dict) and op.get("op") == "gen":
                g = op.get("g")
                if isinstance(g, bool) or not isinstance(g, int) or g < 0:
                    raise IntegrityError(
                        f"index at {str(where)!r}: log.jsonl is damaged (its header's "
                        f"generation is {str(g)[:40]!r}, not a non-negative int); restore "
                        "it or flush the folder")
                return g, op.get("prev"), len(line)
    return 0, None, 0


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
