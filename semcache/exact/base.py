"""The ``ExactStore`` seam: a key -> bytes store with TTL.

A backend implements five primitives (``get``, ``set``, ``delete``, ``clear``, ``ping``);
everything else (serialisation, signing, key building, metrics, fail-open policy) lives
in the ``Cache`` that calls it, once. Values are opaque ``bytes`` (JSON produced by the
cache), so no backend ever pickles anything.

Keys look like ``"<namespace>:<digest>"``. ``clear(namespace)`` removes the keys that
start with ``"<namespace>:"`` and nothing else: never the whole server.

The async twins default to running the sync method in a worker thread, never on the
event loop; backends with a native async client override them.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence

__all__ = ["ExactStore"]


class ExactStore(ABC):
    #: short backend label used in metrics, hit metadata and error messages
    name: str = "exact"
    #: the largest stored value a read may download (``Cache`` sets its
    #: ``max_value_bytes``, which decoding enforces anyway): a store that learns an
    #: object's size before its body (S3, GCS, Azure) refuses a larger one unread, as an
    #: ``IntegrityError``, instead of holding gigabytes another writer put there
    max_read_bytes: int | None = None

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The stored bytes, or ``None`` when the key is absent or expired."""

    def get_with_ttl(self, key: str) -> tuple[bytes | None, float | None]:
        """``get``, and the seconds the entry has left (``None``: no expiry, or a store
        that cannot tell). A tier in front of this store (``TieredStore``) keeps a copy
        no longer than that, so a copy never outlives the entry."""
        return self.get(key), None

    @abstractmethod
    def set(self, key: str, value: bytes, ttl: float | None = None) -> bool | None:
        """Store ``value`` under ``key``; ``ttl`` in seconds, ``None`` = never expire,
        ``0`` = expire at once (any entry under ``key`` is removed, nothing is kept).
        Every store applies ``_checks.check_store_ttl`` first: NaN, infinities, bools,
        negatives, non-numbers and more than ``MAX_TTL`` raise ``ConfigError`` (naming
        ``ttl``) and leave the stored entry as it was. A store that refuses the value by
        policy (too large) returns False, so the cache does not index an answer it cannot
        serve; None or True: stored."""

    @abstractmethod
    def delete(self, keys: Sequence[str]) -> int:
        """Delete ``keys``; returns how many existed."""

    @abstractmethod
    def clear(self, namespace: str) -> int:
        """Delete every key of ``namespace`` (prefix ``namespace + ':'``); returns count."""

    def ping(self) -> bool:
        """True when the backend answers; raises ``BackendError`` when it does not."""
        return True

    def close(self) -> None:
        """Release connections and files. The store must not be used afterwards."""

    # -- async twins: a worker thread by default, never a blocking call on the loop --
    async def aget(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self.get, key)

    async def aget_with_ttl(self, key: str) -> tuple[bytes | None, float | None]:
        return await asyncio.to_thread(self.get_with_ttl, key)

    async def aset(self, key: str, value: bytes, ttl: float | None = None) -> bool | None:
        return await asyncio.to_thread(self.set, key, value, ttl)

    async def adelete(self, keys: Sequence[str]) -> int:
        return await asyncio.to_thread(self.delete, keys)

    async def aclear(self, namespace: str) -> int:
        return await asyncio.to_thread(self.clear, namespace)

    async def aping(self) -> bool:
        return await asyncio.to_thread(self.ping)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
