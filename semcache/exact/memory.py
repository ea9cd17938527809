"""In-process exact store: a bounded LRU with per-entry TTL (LiteLLM's ``local``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from cachetools import LRUCache

from .._checks import check_store_ttl
from .._errors import ConfigError
from .base import ExactStore

__all__ = ["MemoryStore"]

log = logging.getLogger("semcache")


class _LRU(LRUCache[str, tuple[bytes, float | None]]):
    """cachetools' LRU, keeping the keys its bound pushes out for ``on_evict``."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.pushed_out: list[str] = []

    def popitem(self) -> tuple[str, tuple[bytes, float | None]]:
        key, item = super().popitem()
        self.pushed_out.append(key)
        return key, item


class MemoryStore(ExactStore):
    """``max_size_in_memory`` entries at most (least recently used evicted first);
    values larger than ``max_size_per_item`` KB are refused (LiteLLM's units): ``set``
    returns False, the refusal is counted (``rejected_oversize``) and logged.

    ``on_evict(keys)`` is called with the keys the LRU bound pushed out, so an in-process
    vector index can drop their vectors and prompts and stay bounded with the store
    (``faiss-semantic`` wires ``index.delete`` here). It runs under the store's lock, so
    it must be quick and must not call back into this store: outside it, a writer could
    store an evicted key again, and add its fresh vector, before the hook deleted the
    old one, taking the fresh vector with it (the answer stayed, unreachable by any
    paraphrase; tests/test_exact_memory_lru.py)."""

    name = "memory"

    def __init__(
        self,
        *,
        max_size_in_memory: int = 10_000,
        max_size_per_item: int = 1024,
        clock: Callable[[], float] = time.time,
        on_evict: Callable[[list[str]], object] | None = None,
    ) -> None:
        if isinstance(max_size_in_memory, bool) or not isinstance(max_size_in_memory, int) \
                or max_size_in_memory < 1:
            raise ConfigError("max_size_in_memory must be a positive int",
                              parameter="max_size_in_memory")
        if isinstance(max_size_per_item, bool) or not isinstance(max_size_per_item, int) \
                or max_size_per_item < 1:
            raise ConfigError("max_size_per_item must be a positive int (KB)",
                              parameter="max_size_per_item")
        self.max_entries = max_size_in_memory
        self.max_item_bytes = max_size_per_item * 1024
        self._clock = clock
        # key -> (value, expiry); TTL stays ours, checked on read as before: the LRU
        # bound (cachetools, issue #19) decides only what goes when the store is full.
        # cachetools is not thread-safe: every access holds _lock.
        self._data = _LRU(max_size_in_memory)
        self._lock = threading.Lock()
        self.rejected_oversize = 0
        self.evicted = 0
        self.on_evict = on_evict

    def get(self, key: str) -> bytes | None:
        return self.get_with_ttl(key)[0]

    def get_with_ttl(self, key: str) -> tuple[bytes | None, float | None]:
        with self._lock:
            item = self._data.get(key)  # a hit becomes the most recent
            if item is None:
                return None, None
            value, expires = item
            if expires is None:
                return value, None
            left = expires - self._clock()
            if left <= 0:
                del self._data[key]
                return None, None
            return value, left

    def set(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        ttl = check_store_ttl(ttl)
        if ttl == 0:  # expire at once: keep nothing, and evict nothing to make room
            with self._lock:
                self._data.pop(key, None)
            return True
        if len(value) > self.max_item_bytes:
            with self._lock:
                self.rejected_oversize += 1
                n = self.rejected_oversize
                self._data.pop(key, None)  # never leave a stale older value behind
            if n & (n - 1) == 0:  # the 1st, 2nd, 4th, 8th, ...: visible, never a flood
                log.warning("semcache: memory store refused a %d-byte value (over "
                            "max_size_per_item=%d KB); %d refused so far", len(value),
                            self.max_item_bytes // 1024, n)
            return False
        expires = None if ttl is None else self._clock() + ttl
        with self._lock:
            self._data[key] = (value, expires)  # pops the least recent when full
            evicted, self._data.pushed_out = self._data.pushed_out, []
            self.evicted += len(evicted)
            if evicted and self.on_evict is not None:
                self.on_evict(evicted)
        return True

    def delete(self, keys: Sequence[str]) -> int:
        with self._lock:
            return sum(self._data.pop(k, None) is not None for k in keys)

    def clear(self, namespace: str) -> int:
        prefix = namespace + ":"
        with self._lock:
            doomed = [k for k in self._data if k.startswith(prefix)]
            for k in doomed:
                del self._data[k]
            return len(doomed)

    def __len__(self) -> int:
        return len(self._data)

    # No I/O: the async twins run inline rather than paying for a thread hop.
    async def aget(self, key: str) -> bytes | None:
        return self.get(key)

    async def aget_with_ttl(self, key: str) -> tuple[bytes | None, float | None]:
        return self.get_with_ttl(key)

    async def aset(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        return self.set(key, value, ttl)

    async def adelete(self, keys: Sequence[str]) -> int:
        return self.delete(keys)

    async def aclear(self, namespace: str) -> int:
        return self.clear(namespace)

    async def aping(self) -> bool:
        return True

    async def aclose(self) -> None:
        pass

    def __repr__(self) -> str:
        return (f"MemoryStore(max_size_in_memory={self.max_entries}, "
                f"max_size_per_item={self.max_item_bytes // 1024})")
