"""Two tiers (LiteLLM's DualCache): a bounded in-memory front, a remote store behind it.

The back store is the source of truth. Writes go to the back first, then the front;
reads try the front and fill it from the back. Front entries live ``min(ttl,
front_ttl)``: the front never outlives the back's TTL, and a change made by another
process (delete, flush, overwrite) is visible here after ``front_ttl`` at the latest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._errors import ConfigError
from . import _params as P
from .base import ExactStore
from .memory import MemoryStore

__all__ = ["PARAMS", "TieredStore"]

#: the front tier's LiteLLM names (the back store takes its own type's names)
PARAMS = frozenset({"max_size_in_memory", "max_size_per_item", "default_in_memory_ttl"})


class TieredStore(ExactStore):
    def __init__(self, *, front: ExactStore, back: ExactStore,
                 front_ttl: float = 60.0) -> None:
        if not front_ttl or front_ttl <= 0:
            raise ConfigError("the front tier's TTL must be positive (an unbounded front "
                              "would serve entries the back store has dropped)",
                              parameter="default_in_memory_ttl")
        self.front = front
        self.back = back
        self.front_ttl = float(front_ttl)
        self.name = f"tiered+{back.name}"

    def _front_ttl(self, ttl: float | None) -> float:
        return self.front_ttl if ttl is None else min(ttl, self.front_ttl)

    def get(self, key: str) -> bytes | None:
        value = self.front.get(key)
        if value is None:
            value = self.back.get(key)
            if value is not None:
                # the back's remaining TTL is unknown here: front_ttl bounds the overlap
                self.front.set(key, value, self.front_ttl)
        return value

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        try:
            self.back.set(key, value, ttl)
        except BaseException:
            self.front.delete([key])  # never keep serving what the back did not take
            raise
        self.front.set(key, value, self._front_ttl(ttl))

    def delete(self, keys: Sequence[str]) -> int:
        self.front.delete(keys)
        return self.back.delete(keys)

    def clear(self, namespace: str) -> int:
        self.front.clear(namespace)
        return self.back.clear(namespace)

    def ping(self) -> bool:
        return self.back.ping()

    def close(self) -> None:
        self.front.close()
        self.back.close()

    async def aget(self, key: str) -> bytes | None:
        value = await self.front.aget(key)
        if value is None:
            value = await self.back.aget(key)
            if value is not None:
                await self.front.aset(key, value, self.front_ttl)
        return value

    async def aset(self, key: str, value: bytes, ttl: float | None = None) -> None:
        try:
            await self.back.aset(key, value, ttl)
        except BaseException:
            await self.front.adelete([key])
            raise
        await self.front.aset(key, value, self._front_ttl(ttl))

    async def adelete(self, keys: Sequence[str]) -> int:
        await self.front.adelete(keys)
        return await self.back.adelete(keys)

    async def aclear(self, namespace: str) -> int:
        await self.front.aclear(namespace)
        return await self.back.aclear(namespace)

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
