"""Two tiers (LiteLLM's DualCache): a bounded in-memory front, a remote store behind it.

The back store is the source of truth. Writes go to the back first, then the front;
reads try the front and fill it from the back. Front entries live ``min(ttl,
front_ttl)``; a fill, ``min(what the back entry has left, front_ttl)`` where the back
store can tell (``ExactStore.get_with_ttl``): the front never outlives the back's TTL,
and a change made by another process (delete, flush, overwrite) is visible here after
``front_ttl`` at the latest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from .._checks import check_store_ttl, finite_number
from .._errors import ConfigError
from . import _params as P
from .base import ExactStore
from .memory import MemoryStore

__all__ = ["PARAMS", "TieredStore"]

#: the front tier's LiteLLM names (the back store takes its own type's names)
PARAMS = frozenset({"max_size_in_memory", "max_size_per_item", "default_in_memory_ttl"})


class TieredStore(ExactStore):
    """A miss fills the front with what it read from the back, unless a write (set,
    delete, clear) through this store finished in between: the reader's value is then
    older than that write, and filling it would undo the write in the front for
    ``front_ttl`` (a deleted wrong answer served again). Writers bump a generation
    (one of ``_SLOTS`` by key hash, or the epoch for ``clear``) after the back write,
    under the lock the fill checks it under."""

    _SLOTS = 256

    def __init__(self, *, front: ExactStore, back: ExactStore,
                 front_ttl: float = 60.0) -> None:
        # finite_number refuses NaN (it passed ``<= 0``: every front entry then expired
        # at NaN, never), inf, bools and strings
        if not finite_number(front_ttl) or front_ttl <= 0:
            raise ConfigError("the front tier's TTL must be a positive finite number (an "
                              "unbounded front would serve entries the back store has "
                              f"dropped), got {front_ttl!r}",
                              parameter="default_in_memory_ttl")
        self.front = front
        self.back = back
        self.front_ttl = float(front_ttl)
        self.name = f"tiered+{back.name}"
        self._lock = threading.Lock()
        self._gens = [0] * self._SLOTS
        self._epoch = 0

    @property  # type: ignore[override]
    def max_read_bytes(self) -> int | None:
        return self.back.max_read_bytes

    @max_read_bytes.setter
    def max_read_bytes(self, value: int | None) -> None:
        self.back.max_read_bytes = value  # the back store downloads; the front is memory

    def _front_ttl(self, ttl: float | None) -> float:
        return self.front_ttl if ttl is None else min(ttl, self.front_ttl)

    def _generation(self, key: str) -> tuple[int, int]:
        return self._epoch, self._gens[hash(key) % self._SLOTS]

    def _fill(self, key: str, value: bytes, left: float | None,
              seen: tuple[int, int]) -> None:
        # never longer than the back entry has left (``left``): a fill for the full
        # front_ttl served an entry up to front_ttl past the TTL its writer set
        with self._lock:
            if self._generation(key) == seen:
                self.front.set(key, value, self._front_ttl(left))

    def _written(self, keys: Sequence[str], front_op: Callable[[], object]) -> None:
        """After a back write (or its failure): bump the keys' generations and update
        the front, together, so no fill of an older read lands after it."""
        with self._lock:
            for key in keys:
                self._gens[hash(key) % self._SLOTS] += 1
            front_op()

    def _cleared(self, namespace: str) -> None:
        with self._lock:
            self._epoch += 1
            self.front.clear(namespace)

    def get(self, key: str) -> bytes | None:
        value = self.front.get(key)
        if value is None:
            seen = self._generation(key)
            value, left = self.back.get_with_ttl(key)
            if value is not None:
                self._fill(key, value, left, seen)
        return value

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        ttl = check_store_ttl(ttl)  # before either tier: a refused ttl changes neither
        try:
            self.back.set(key, value, ttl)
        except BaseException:
            # never keep serving what the back did not take
            self._written([key], lambda: self.front.delete([key]))
            raise
        self._written([key], lambda: self.front.set(key, value, self._front_ttl(ttl)))

    def delete(self, keys: Sequence[str]) -> int:
        self.front.delete(keys)
        try:
            return self.back.delete(keys)
        finally:
            self._written(keys, lambda: self.front.delete(keys))

    def clear(self, namespace: str) -> int:
        self.front.clear(namespace)
        try:
            return self.back.clear(namespace)
        finally:
            self._cleared(namespace)

    def ping(self) -> bool:
        return self.back.ping()

    def close(self) -> None:
        self.front.close()
        self.back.close()

    # the async twins: the back natively async; the front (in-memory) updated under
    # the same lock as the sync ones, with its sync methods
    async def aget(self, key: str) -> bytes | None:
        value = await self.front.aget(key)
        if value is None:
            seen = self._generation(key)
            value, left = await self.back.aget_with_ttl(key)
            if value is not None:
                self._fill(key, value, left, seen)
        return value

    async def aset(self, key: str, value: bytes, ttl: float | None = None) -> None:
        ttl = check_store_ttl(ttl)
        try:
            await self.back.aset(key, value, ttl)
        except BaseException:
            self._written([key], lambda: self.front.delete([key]))
            raise
        self._written([key], lambda: self.front.set(key, value, self._front_ttl(ttl)))

    async def adelete(self, keys: Sequence[str]) -> int:
        self.front.delete(keys)
        try:
            return await self.back.adelete(keys)
        finally:
            self._written(keys, lambda: self.front.delete(keys))

    async def aclear(self, namespace: str) -> int:
        self.front.clear(namespace)
        try:
            return await self.back.aclear(namespace)
        finally:
            self._cleared(namespace)

    async def aping(self) -> bool:
        return await self.back.aping()

    async def aclose(self) -> None:
        await self.front.aclose()
        await self.back.aclose()

    @classmethod
    def from_params(cls, *, back: ExactStore, **params: Any) -> TieredStore:
        """A MemoryStore front from LiteLLM's in-memory names in front of ``back``."""
        P.check_names(params, PARAMS, "tiered")
        front_kwargs: dict[str, Any] = {}
        for name in ("max_size_in_memory", "max_size_per_item"):
            value = P.opt_int(params, name)
            if value is not None:
                front_kwargs[name] = value
        front = MemoryStore(**front_kwargs)
        ttl = P.opt_float(params, "default_in_memory_ttl")
        return cls(front=front, back=back, front_ttl=60.0 if ttl is None else ttl)

    def __repr__(self) -> str:
        return f"TieredStore(front={self.front!r}, back={self.back!r}, front_ttl={self.front_ttl})"
