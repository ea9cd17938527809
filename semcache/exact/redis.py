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

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from .._errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    missing,
)
from . import _params as P
from .base import ExactStore

__all__ = ["PARAMS", "RedisStore", "escape_glob"]

try:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.asyncio.retry
    import redis.cluster
    import redis.retry
    from redis.backoff import ExponentialBackoff
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


@contextmanager
def map_redis_errors(backend: str) -> Iterator[None]:
    """The one place redis-py's (and the socket layer's) errors become semcache's."""
    try:
        yield
    except BackendError:
        raise
    except redis.exceptions.TimeoutError as exc:
        raise BackendTimeout(f"{backend}: timed out: {exc}", backend=backend) from exc
    except redis.exceptions.AuthenticationError as exc:
        raise BackendError(f"{backend}: authentication failed: {exc}", backend=backend) from exc
    except (redis.exceptions.ConnectionError, redis.exceptions.ClusterDownError,
            redis.exceptions.RedisClusterException) as exc:
        raise BackendUnavailable(f"{backend}: unavailable: {exc}", backend=backend) from exc
    except redis.exceptions.RedisError as exc:
        raise BackendError(f"{backend}: {exc}", backend=backend) from exc
    except TimeoutError as exc:
        raise BackendTimeout(f"{backend}: timed out: {exc}", backend=backend) from exc
    except OSError as exc:
        raise BackendUnavailable(f"{backend}: unavailable: {exc}", backend=backend) from exc


class _LoopClients:
    """One async client per running event loop, closed when that loop shuts down.

    redis.asyncio connections belong to the loop that opened them. A parked async
    generator is closed by ``loop.shutdown_asyncgens()`` (``asyncio.run`` and runners
    call it), and its ``finally`` closes the client on its own loop: no connection is
    left to a dead loop (and no ResourceWarning for it)."""

    def __init__(self, factory: Any) -> None:
        self._factory = factory
        self._clients: dict[int, tuple[weakref.ref[Any], Any, AsyncIterator[None]]] = {}

    async def get(self) -> Any:
        loop = asyncio.get_running_loop()
        entry = self._clients.get(id(loop))
        if entry is not None and entry[0]() is not loop:
            # a loop that closed without shutdown_asyncgens, its id reused: drop it
            entry = None
        if entry is None:
            client = self._factory()
            guard = self._guard(id(loop), client)
            await guard.__anext__()
            entry = self._clients[id(loop)] = (weakref.ref(loop), client, guard)
        return entry[1]

    async def _guard(self, key: int, client: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            entry = self._clients.get(key)
            if entry is not None and entry[1] is client:  # not a newer loop's, same id
                del self._clients[key]
            await client.aclose()

    async def aclose(self) -> None:
        entry = self._clients.pop(id(asyncio.get_running_loop()), None)
        if entry is not None:
            await entry[2].aclose()  # type: ignore[attr-defined]


class RedisStore(ExactStore):
    """Exact store on Redis (``host``/``port`` or ``url``) or Redis Cluster
    (``startup_nodes``). ``default_ttl`` is LiteLLM's ``ttl``: kept for the Cache to
    apply; the store itself stores exactly the ``ttl`` it is given (None = forever)."""

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
    ) -> None:
        if redis is None:  # pragma: no cover
            raise missing("redis", "redis", "type='redis'")
        if not (host or url or startup_nodes):
            raise ConfigError("type='redis' needs host, redis_url or redis_startup_nodes",
                              parameter="host")
        self.cluster = bool(startup_nodes)
        if self.cluster:
            self.name = "redis-cluster"
        self.default_ttl = default_ttl
        self._startup_nodes = [(str(n["host"]), int(n["port"])) for n in startup_nodes or ()]
        self._url = url
        self._where = (
            ",".join(f"{h}:{p}" for h, p in self._startup_nodes) if self.cluster
            else (_redact(url) if url else f"{host}:{port}")
        )
        self._retries = retries
        self._kwargs: dict[str, Any] = {
            "password": password,
            "username": username,
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
        }
        if ssl:
            self._kwargs["ssl"] = True
        if not self.cluster and not url:
            self._kwargs.update(host=host, port=port, db=db)
        self._sync: Any = None
        self._sync_lock = threading.Lock()
        self._async = _LoopClients(lambda: self._make_client(redis.asyncio))

    # -- clients (lazy: no network in the constructor) --------------------------------
    def _make_client(self, mod: Any) -> Any:
        # one retry with a short backoff: a restarted server or a failed-over node is
        # picked up, a dead one costs at most (retries + 1) x timeout. Each flavour gets
        # its own Retry class: redis-py 8 converts (and warns about) a sync Retry passed
        # to an asyncio client.
        retry_cls = redis.asyncio.retry.Retry if mod is redis.asyncio else redis.retry.Retry
        retry = retry_cls(ExponentialBackoff(cap=0.2, base=0.02), self._retries)
        kwargs = {k: v for k, v in self._kwargs.items() if v is not None}
        if self.cluster:
            nodes = [mod.cluster.ClusterNode(h, p) for h, p in self._startup_nodes]
            return mod.RedisCluster(startup_nodes=nodes, retry=retry, **kwargs)
        if self._url:
            return mod.Redis.from_url(self._url, retry=retry, **kwargs)
        return mod.Redis(retry=retry, **kwargs)

    def _client(self) -> Any:
        if self._sync is None:
            with self._sync_lock:
                if self._sync is None:
                    with map_redis_errors(self.name):  # a cluster client connects here
                        self._sync = self._make_client(redis)
        return self._sync

    @property
    def redis_client(self) -> Any:
        """The sync ``redis`` client (LiteLLM's ``cache.cache.redis_client``), made on
        first use: the constructor does no network I/O."""
        return self._client()

    def _scan_kwargs(self, namespace: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"match": escape_glob(namespace) + ":*", "count": _BATCH}
        if self.cluster:
            kwargs["target_nodes"] = redis.cluster.RedisCluster.PRIMARIES
        return kwargs

    # -- sync -------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        with map_redis_errors(self.name):
            return self._client().get(key)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
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
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    # -- async: the same commands on redis.asyncio ------------------------------------
    async def aget(self, key: str) -> bytes | None:
        with map_redis_errors(self.name):
            return await (await self._async.get()).get(key)

    async def aset(self, key: str, value: bytes, ttl: float | None = None) -> None:
        with map_redis_errors(self.name):
            client = await self._async.get()
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
            return int(await (await self._async.get()).unlink(*keys))

    async def aclear(self, namespace: str) -> int:
        removed = 0
        with map_redis_errors(self.name):
            client = await self._async.get()
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
            return bool(await (await self._async.get()).ping())

    async def aclose(self) -> None:
        await self._async.aclose()
        self.close()

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
        return f"RedisStore({kind}={self._where!r})"


def _redact(url: str) -> str:
    """The URL without its password, for reprs and error messages."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
