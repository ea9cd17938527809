"""One Redis connection (a sync client and one async client per event loop) and the one
place redis-py's errors become semcache's.

``RedisStore`` (``exact/redis.py``) and ``RedisVLIndex`` (``indexes/redisvl.py``) each
take a ``RedisConnection``; the ``redis-semantic`` builder in ``_registry.py`` gives both
the same one, so a cache has one pool. Clients are made on first use: constructing a
connection does no network I/O.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from .._errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError, missing

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

__all__ = ["RedisConnection", "map_redis_errors", "redact"]


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


class RedisConnection:
    """A standalone server (``host``/``port`` or ``url``) or a cluster
    (``startup_nodes``), with socket timeouts and one retry: a dead or hung server costs
    a bounded time, then ``BackendUnavailable``/``BackendTimeout``."""

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
    ) -> None:
        if redis is None:  # pragma: no cover
            raise missing("redis", "redis", "type='redis'")
        if not (host or url or startup_nodes):
            raise ConfigError("type='redis' needs host, redis_url or redis_startup_nodes",
                              parameter="host")
        self.cluster = bool(startup_nodes)
        #: label for metrics and error messages
        self.name = "redis-cluster" if self.cluster else "redis"
        self._startup_nodes = [(str(n["host"]), int(n["port"])) for n in startup_nodes or ()]
        self._url = url
        #: where the server is, without any password (for reprs and error messages)
        self.where = (
            ",".join(f"{h}:{p}" for h, p in self._startup_nodes) if self.cluster
            else (redact(url) if url else f"{host}:{port}")
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

    def client(self) -> Any:
        """The sync client, made on first use."""
        if self._sync is None:
            with self._sync_lock:
                if self._sync is None:
                    with map_redis_errors(self.name):  # a cluster client connects here
                        self._sync = self._make_client(redis)
        return self._sync

    async def aclient(self) -> Any:
        """The running event loop's async client, made on first use."""
        return await self._async.get()

    def close(self) -> None:
        """Idempotent: the store and the index of one cache share this connection."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        await self._async.aclose()
        self.close()

    def __repr__(self) -> str:
        kind = "startup_nodes" if self.cluster else "server"
        return f"RedisConnection({kind}={self.where!r})"


def redact(url: str) -> str:
    """The URL without its password, for reprs and error messages."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
