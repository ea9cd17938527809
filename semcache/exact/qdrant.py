"""``qdrant-semantic``'s exact store: answers as payload-only Qdrant points.

Collection ``<qdrant_collection_name>_answers`` holds one point per answer
(``{"k", "ns", "v": base64, "x"}``, no vector), id ``uuid5(key)``, so every process
sharing the Qdrant server shares the answers. It shares its ``QdrantConnection``
(``semcache/_connections/qdrant.py``) with ``QdrantIndex``; the ``qdrant-semantic``
builder in ``semcache/_registry.py`` pairs the two.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from .._checks import check_store_ttl, finite_number
from .._connections.qdrant import (
    FORMAT,
    Client,
    Collection,
    Program,
    QdrantConnection,
    check_collection_name,
    models,
    ns_of,
    point_id,
)
from .._errors import IntegrityError, InvalidRequestError
from .base import ExactStore

__all__ = ["QdrantStore"]


class QdrantStore(Collection, ExactStore):
    """Answers as payload-only points, so every process sharing the Qdrant server
    shares them. ``delete``, ``clear``, ``ping`` and ``close`` are ``Collection``'s."""

    name = "qdrant"

    def __init__(self, conn: QdrantConnection, collection: str = "semcache_answers", *,
                 clock: Callable[[], float] = time.time) -> None:
        check_collection_name(collection)
        super().__init__(conn, collection, clock)

    def _create_spec(self, dim: int | None) -> dict[str, Any]:
        return {"vectors_config": {}, "metadata": {"semcache_format": FORMAT,
                                                   "role": "answers"}}

    def _get(self, c: Client, key: str) -> Program[bytes | None]:
        exists = yield from self._ensure(c)
        if not exists:
            return None
        found = yield partial(c.retrieve, collection_name=self.collection,
                              ids=[point_id(key)], with_payload=True)
        if not found or found[0].payload.get("k") != key:
            return None
        p = found[0].payload
        x, v = p.get("x"), p.get("v")
        # another writer's payload (a string expiry, a value that is not base64) is an
        # unreadable record, like any store's: IntegrityError, not a fault of the store
        if x is not None and not finite_number(x):  # 10**400: isfinite would overflow
            raise IntegrityError(f"stored answer {key!r} in {self.collection!r}: expiry "
                                 f"{str(x)[:40]} is not a finite number")
        if x is not None and x <= self._clock():
            return None  # purged by the next purge pass
        if not isinstance(v, str):
            raise IntegrityError(f"stored answer {key!r} in {self.collection!r}: value is "
                                 f"{type(v).__name__}, not base64 text")
        try:
            return base64.b64decode(v, validate=True)
        except binascii.Error as exc:
            raise IntegrityError(f"stored answer {key!r} in {self.collection!r}: value is "
                                 f"not base64 ({exc})") from exc

    def _set(self, c: Client, key: str, value: bytes, ttl: float | None) -> Program[None]:
        if not isinstance(value, (bytes, bytearray)):
            raise InvalidRequestError(f"values are bytes, got {type(value).__name__}")
        yield from self._ensure(c)
        expires = None if ttl is None else self._clock() + ttl
        yield partial(c.upsert, collection_name=self.collection, wait=True, points=[
            models.PointStruct(id=point_id(key), vector={}, payload={
                "k": key, "ns": ns_of(key), "v": base64.b64encode(value).decode("ascii"),
                "x": expires})])
        yield from self._wrote(c, 1)

    def get(self, key: str) -> bytes | None:
        return self.conn.run(self._get, key)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        ttl = check_store_ttl(ttl)
        if ttl == 0:
            self.delete([key])
            return
        self.conn.run(self._set, key, value, ttl)

    async def aget(self, key: str) -> bytes | None:
        return await self.conn.arun(self._get, key)

    async def aset(self, key: str, value: bytes, ttl: float | None = None) -> None:
        ttl = check_store_ttl(ttl)
        if ttl == 0:
            await self.adelete([key])
            return
        await self.conn.arun(self._set, key, value, ttl)

    def __repr__(self) -> str:
        return f"QdrantStore(collection={self.collection!r}, at={self.conn.describe()!r})"
