"""Redis and Redis Cluster exact store (LiteLLM's ``redis`` type).

- Standalone from ``host``/``port``/``password`` or ``redis_url``; a cluster when
  ``redis_startup_nodes=[{"host": ..., "port": ...}, ...]`` is given.
- Native async (``redis.asyncio``) for the async twins, one client per event loop.
- ``clear(namespace)`` is ``SCAN MATCH <escaped namespace>:*`` + ``UNLINK`` on every
  master, never ``FLUSHALL``/``FLUSHDB``: the server may hold other tenants' data.
- Socket connect/read timeouts (2 s by default) and one retry: a dead or hung server
  costs a bounded time, then ``BackendUnavailable``/``BackendTimeout``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .._checks import check_store_ttl
from .._connections.redis import RedisConnection, map_redis_errors
from .._errors import ConfigError
from . import _params as P
from .base import ExactStore

# map_redis_errors is re-exported: it lived here before the connection layer existed
__all__ = ["PARAMS", "RedisConnection", "RedisStore", "escape_glob", "map_redis_errors"]

try:
    import redis.cluster
except ImportError:  # pragma: no cover - exercised only without the extra
    redis = None  # type: ignore[assignment]

#: LiteLLM's parameter names for ``type="redis"`` (plus redis-py's usual connection ones)
PARAMS = frozenset({
    "host", "port", "password", "username", "db", "ssl", "redis_url",
    "redis_startup_nodes", "ttl", "socket_timeout", "socket_connect_timeout",
})

_GLOB_SPECIAL = "\\*?[]"
_BATCH = 500  # keys per SCAN page and per UNLINK: bounded memory and command size


def escape_glob(text: str) -> str:
    """Escape Redis MATCH pattern metacharacters so a namespace matches literally."""
    return "".join("\\" + c if c in _GLOB_SPECIAL else c for c in text)


class RedisStore(ExactStore):
    """Exact store on Redis (``host``/``port`` or ``url``) or Redis Cluster
    (``startup_nodes``), or on a given ``connection`` (shared with an index).
    ``default_ttl`` is LiteLLM's ``ttl``: kept for the Cache to apply; the store itself
    stores exactly the ``ttl`` it is given (None = forever)."""

    name = "redis"

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int = 6379,
        password: str | None = None,
        username: str | None = None,
        db: int = 0,
        ssl: bool = False,
        url: str | None = None,
        startup_nodes: Sequence[Mapping[str, Any]] | None = None,
        socket_timeout: float = 2.0,
        socket_connect_timeout: float = 2.0,
        retries: int = 1,
        default_ttl: float | None = None,
        connection: RedisConnection | None = None,
    ) -> None:
        # the redis-semantic builder passes the connection it shares with the index
        self.connection = connection or RedisConnection(
            host=host, port=port, password=password, username=username, db=db, ssl=ssl,
            url=url, startup_nodes=startup_nodes, socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout, retries=retries)
        self.cluster = self.connection.cluster
        self.name = self.connection.name
        self.default_ttl = default_ttl

    def _client(self) -> Any:
        return self.connection.client()

    @property
    def redis_client(self) -> Any:
        """The sync ``redis`` client (LiteLLM's ``cache.cache.redis_client``), made on
        first use: the constructor does no network I/O."""
        return self.connection.client()

    def _scan_kwargs(self, namespace: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"match": escape_glob(namespace) + ":*", "count": _BATCH}
        if self.cluster:
            kwargs["target_nodes"] = redis.cluster.RedisCluster.PRIMARIES
        return kwargs

    # -- sync -------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        with map_redis_errors(self.name):
            return self._client().get(key)

    def get_with_ttl(self, key: str) -> tuple[bytes | None, float | None]:
        with map_redis_errors(self.name):
            pipe = self._client().pipeline(transaction=not self.cluster)
            pipe.get(key)
            pipe.pttl(key)
            return _with_ttl(*pipe.execute())

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        ttl = check_store_ttl(ttl)  # NaN here was a raw ValueError from int()
        with map_redis_errors(self.name):
            if ttl is None:
                self._client().set(key, value)
            elif ttl <= 0:
                self._client().unlink(key)  # already expired: never serve it
            else:
                self._client().set(key, value, px=max(1, int(ttl * 1000)))

    def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        with map_redis_errors(self.name):
            return int(self._client().unlink(*keys))

    def clear(self, namespace: str) -> int:
        removed = 0
        with map_redis_errors(self.name):
            client = self._client()
            batch: list[bytes] = []
            for key in client.scan_iter(**self._scan_kwargs(namespace)):
                batch.append(key)
                if len(batch) >= _BATCH:
                    removed += int(client.unlink(*batch))
                    batch = []
            if batch:
                removed += int(client.unlink(*batch))
        return removed

    def ping(self) -> bool:
        with map_redis_errors(self.name):
            return bool(self._client().ping())

    def close(self) -> None:
        self.connection.close()

    # -- async: the same commands on redis.asyncio ------------------------------------
    async def aget(self, key: str) -> bytes | None:
        with map_redis_errors(self.name):
            return await (await self.connection.aclient()).get(key)

    async def aget_with_ttl(self, key: str) -> tuple[bytes | None, float | None]:
        with map_redis_errors(self.name):
            client = await self.connection.aclient()
            pipe = client.pipeline(transaction=not self.cluster)
            pipe.get(key)
            pipe.pttl(key)
            return _with_ttl(*await pipe.execute())

    async def aset(self, key: str, value: bytes, ttl: float | None = None) -> None:
        ttl = check_store_ttl(ttl)
        with map_redis_errors(self.name):
            client = await self.connection.aclient()
            if ttl is None:
                await client.set(key, value)
            elif ttl <= 0:
                await client.unlink(key)
            else:
                await client.set(key, value, px=max(1, int(ttl * 1000)))

    async def adelete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        with map_redis_errors(self.name):
            return int(await (await self.connection.aclient()).unlink(*keys))

    async def aclear(self, namespace: str) -> int:
        removed = 0
        with map_redis_errors(self.name):
            client = await self.connection.aclient()
            batch: list[bytes] = []
            async for key in client.scan_iter(**self._scan_kwargs(namespace)):
                batch.append(key)
                if len(batch) >= _BATCH:
                    removed += int(await client.unlink(*batch))
                    batch = []
            if batch:
                removed += int(await client.unlink(*batch))
        return removed

    async def aping(self) -> bool:
        with map_redis_errors(self.name):
            return bool(await (await self.connection.aclient()).ping())

    async def aclose(self) -> None:
        await self.connection.aclose()

    # -- configuration ----------------------------------------------------------------
    @classmethod
    def from_params(cls, **params: Any) -> RedisStore:
        """Build from LiteLLM's names; unset connection values fall back to the
        ``REDIS_HOST``/``REDIS_PORT``/``REDIS_PASSWORD``/``REDIS_URL`` env vars as
        LiteLLM does."""
        P.check_names(params, PARAMS, "redis")
        nodes = params.get("redis_startup_nodes")
        if nodes is not None:
            if (not isinstance(nodes, Sequence) or isinstance(nodes, str) or not nodes
                    or not all(isinstance(n, Mapping) and "host" in n and "port" in n
                               for n in nodes)):
                raise ConfigError(
                    'redis_startup_nodes must be a non-empty list of {"host": ..., "port": ...}',
                    parameter="redis_startup_nodes")
            for n in nodes:
                P.opt_int(n, "port")
        url = P.opt_str(params, "redis_url") or os.environ.get("REDIS_URL") or None
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("redis_url must start with redis://, rediss:// or unix://",
                              parameter="redis_url")
        host = P.opt_str(params, "host") or os.environ.get("REDIS_HOST") or None
        if params.get("port") is None and os.environ.get("REDIS_PORT"):
            params = {**params, "port": os.environ["REDIS_PORT"]}
        port = P.opt_int(params, "port")
        if port is not None and not 0 < port < 65536:
            raise ConfigError(f"port must be 1..65535, got {port}", parameter="port")
        password = P.opt_str(params, "password") or os.environ.get("REDIS_PASSWORD") or None
        if not (host or url or nodes):
            raise ConfigError(
                "type='redis' needs host (or redis_url, redis_startup_nodes, REDIS_HOST)",
                parameter="host")
        return cls(
            host=host,
            port=port or 6379,
            password=password,
            username=P.opt_str(params, "username"),
            db=P.opt_int(params, "db") or 0,
            ssl=bool(P.opt_bool(params, "ssl")),
            url=None if nodes else url,
            startup_nodes=nodes,
            socket_timeout=P.opt_float(params, "socket_timeout") or 2.0,
            socket_connect_timeout=P.opt_float(params, "socket_connect_timeout") or 2.0,
            default_ttl=P.opt_float(params, "ttl"),
        )

    def __repr__(self) -> str:
        kind = "startup_nodes" if self.cluster else "server"
        return f"RedisStore({kind}={self.connection.where!r})"


def _with_ttl(value: bytes | None, pttl: int) -> tuple[bytes | None, float | None]:
    """GET and PTTL's replies as ``get_with_ttl``'s: PTTL is -1 for a key without
    expiry, -2 for one gone (expired between the two commands: nothing left)."""
    if value is None:
        return None, None
    return value, None if pttl == -1 else max(pttl, 0) / 1000
