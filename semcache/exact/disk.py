"""Persistent exact store on diskcache (LiteLLM's ``disk``), bytes only: never pickle.

diskcache stores ``bytes`` values and ``str`` keys raw (SQLite BLOB/TEXT or a file); only
other types go through pickle. ``_BytesDisk`` refuses anything else, so a value read back
can never execute code. Each entry is tagged with its namespace so ``clear`` is an
indexed ``evict(tag)``, not a scan.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import threading
from collections.abc import Sequence
from pathlib import Path

from .._checks import check_store_ttl
from .._errors import BackendError, ConfigError, IntegrityError, missing
from .base import ExactStore

__all__ = ["DiskStore"]

try:
    import diskcache
except ImportError:  # pragma: no cover - diskcache is a core dependency
    diskcache = None


#: the value file the current thread's write made (diskcache writes it before its row)
_new_file = threading.local()


#: the names diskcache gives value files (``Disk.filename``), with either separator
_VALUE_FILE = re.compile(r"[0-9a-f]{2}[/\\][0-9a-f]{2}[/\\][0-9a-f]{28}\.val")


def _namespace_of(key: str) -> str:
    return key.split(":", 1)[0]


if diskcache is not None:

    class _BytesDisk(diskcache.Disk):
        """A Disk that accepts only str keys and bytes values (no pickle path)."""

        def put(self, key):
            if not isinstance(key, str):
                raise TypeError(f"disk store keys must be str, not {type(key).__name__}")
            return super().put(key)

        def store(self, value, read, key=diskcache.core.UNKNOWN):
            if read or not isinstance(value, bytes):
                raise TypeError(f"disk store values must be bytes, not {type(value).__name__}")
            return super().store(value, read, key=key)

        def filename(self, key=diskcache.core.UNKNOWN, value=diskcache.core.UNKNOWN):
            name, full_path = super().filename(key, value)
            _new_file.name = name
            return name, full_path

        def fetch(self, mode, filename, value, read):
            if mode == diskcache.core.MODE_PICKLE:
                # another writer's (plain diskcache, an older version) entry: unreadable
                # to us, a counted integrity miss, never code run nor a store fault
                raise IntegrityError("disk store: refusing to unpickle a stored value")
            if filename is not None:
                if mode != diskcache.core.MODE_BINARY:  # we never write text files
                    raise IntegrityError("disk store: a stored value in a text file")
                self._check_file(filename)
            return super().fetch(mode, filename, value, read)

        def _check_file(self, filename):
            """A value file as diskcache names it (``ab/cd/<28 hex>.val``), a regular
            file, no link: a row another program edited to name ``/dev/zero`` or
            ``../../x`` (diskcache joins it to the folder as given) was read until memory
            ran out, or read a file outside the cache."""
            if not isinstance(filename, str) or not _VALUE_FILE.fullmatch(filename):
                raise IntegrityError(f"disk store: value file {str(filename)[:60]!r} is "
                                     "not one this store writes")
            try:
                st = os.lstat(os.path.join(self._directory, filename))
            except OSError:
                return  # missing: diskcache's own read reports it
            if not stat.S_ISREG(st.st_mode):
                raise IntegrityError(f"disk store: value file {filename!r} is not a "
                                     "regular file")


class DiskStore(ExactStore):
    name = "disk"

    def __init__(
        self,
        disk_cache_dir: str | os.PathLike[str] = ".semcache",
        *,
        size_limit: int = 2**30,
        timeout: float = 5.0,
    ) -> None:
        if diskcache is None:  # pragma: no cover
            raise missing("diskcache", "disk", "type='disk'")
        if not disk_cache_dir:
            raise ConfigError("disk_cache_dir must be a non-empty path",
                              parameter="disk_cache_dir")
        self.directory = Path(disk_cache_dir) / "exact"
        try:
            self._cache = diskcache.Cache(
                str(self.directory),
                disk=_BytesDisk,
                size_limit=size_limit,
                timeout=timeout,
                tag_index=True,
                eviction_policy="least-recently-stored",
            )
        except (OSError, sqlite3.Error) as exc:
            # sqlite3.Error: not a database, or a read-only directory or file
            raise ConfigError(f"cannot open disk_cache_dir {str(disk_cache_dir)!r}: {exc}",
                              parameter="disk_cache_dir") from exc

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except diskcache.Timeout as exc:
            raise BackendError(f"disk store busy: {exc}", backend=self.name) from exc
        except OSError as exc:
            raise BackendError(f"disk store I/O error: {exc}", backend=self.name) from exc
        except sqlite3.Error as exc:  # disk full, read-only, a damaged database
            raise BackendError(f"disk store database error: {exc}",
                               backend=self.name) from exc

    def get(self, key: str) -> bytes | None:
        try:
            value = self._call(self._cache.get, key, default=None, retry=True)
        except IntegrityError as exc:
            raise IntegrityError(f"disk store: entry {key!r}: {exc}") from exc
        if value is None or isinstance(value, bytes):
            return value
        # diskcache keeps a str or a number another writer stored raw and hands it back
        # as such: the cache's decoder expects bytes and would crash on it
        raise IntegrityError(f"disk store: entry {key!r} holds a {type(value).__name__}, "
                             f"not bytes (written by another program?)")

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        ttl = check_store_ttl(ttl)  # NaN here was an entry kept forever
        if ttl == 0:
            self.delete([key])
            return
        _new_file.name = None
        try:
            self._call(self._cache.set, key, value, expire=ttl, tag=_namespace_of(key),
                       retry=True)
        except BaseException:
            # a large value's file is written before its row; diskcache leaves it when
            # the write (disk full) or the row's transaction fails: no row names it,
            # so nothing would ever reclaim it
            name, _new_file.name = _new_file.name, None
            if name is not None:
                self._cache.disk.remove(name)
            raise

    def delete(self, keys: Sequence[str]) -> int:
        return sum(bool(self._call(self._cache.delete, k, retry=True)) for k in keys)

    def clear(self, namespace: str) -> int:
        return self._call(self._cache.evict, namespace, retry=True)

    def expire(self) -> int:
        """Remove expired entries now (diskcache also culls them as it writes)."""
        return self._call(self._cache.expire, retry=True)

    def ping(self) -> bool:
        self._call(self._cache.get, "\x00ping", default=None, retry=True)
        return True

    def close(self) -> None:
        self._cache.close()

    def __repr__(self) -> str:
        return f"DiskStore(disk_cache_dir={str(self.directory.parent)!r})"
