"""``redis-semantic``: the vector index on Redis with the search module, through RedisVL.

Layout
    One RedisVL ``SearchIndex`` (``redis_semantic_cache_index_name``, hash storage,
    prefix ``vec#<name>:``) with a vector field (FLAT by default, or HNSW; cosine; float32),
    TAG fields for the context key and the namespace, and a NUMERIC expiry. One hash per
    cached request at ``vec#<name>:<sha256(key)>``, so writing a request twice replaces it.
    Tags hold the sha256 of the context key and namespace: RediSearch tags are case
    insensitive and need escaping, a hex digest needs neither. The embedding model and
    dimension are recorded in a hash beside the index (``vec#meta#<name>``);
    opening it under another model raises ``ConfigError``.

    The answers live in Redis too (``RedisStore``, the ``redis`` type's store). The
    index takes a ``RedisConnection`` (``semcache/_connections/redis.py``); the
    ``redis-semantic`` builder in ``_registry.py`` gives the store the same one: one
    pool per cache.

Expiry
    Searches filter ``expires_at > now`` (entries without expiry store a far-future
    value, so one range covers both), and each hash carries a Redis key expiry at
    ``expires_at + expiry_grace``: Redis reclaims the memory by itself, and the grace
    keeps a search from racing a deletion. ``count`` may include entries expired less
    than ``expiry_grace`` ago.

Similarity
    RediSearch answers cosine *distance*; ``similarity_from_distance`` is the one place
    it becomes the cosine similarity the rest of semcache speaks.

sync and async
    Operations are written once, as generators of steps: each step is a bound method of
    the client, the search index or a pipeline (``functools.partial`` with its
    arguments), so it can be followed to its backend. A program gets the clients of one
    flavour (``_Sync`` or ``_Async``, the native ``redis.asyncio`` +
    ``AsyncSearchIndex``); ``semcache/_connections/steps.py``'s sync driver calls each
    step, the async one awaits it.
    Redis errors are mapped by ``map_redis_errors`` (shared with the Redis store) and
    RedisVL's own in ``_map_errors``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np

from .._errors import BackendError, BackendUnavailable, ConfigError, SemcacheError, missing
from ._common import candidate, candidates, check_k, check_vectors
from ._redis_lua import DELETE_IF_UNCHANGED_LUA, OBSERVE_LUA
from ._redis_schema import check_existing, index_gone, read_meta
from .base import MAX_OBSERVATIONS, Candidate, IndexEntry, Observation, VectorIndex

try:
    import redis
    import redis.asyncio
    from redisvl.exceptions import RedisVLError
    from redisvl.index import AsyncSearchIndex, SearchIndex
    from redisvl.query import CountQuery, FilterQuery, VectorQuery
    from redisvl.query.filter import Num, Tag
    from redisvl.schema import IndexSchema

    from .._connections.redis import RedisConnection, map_redis_errors
    from .._connections.steps import adrive, drive
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing(getattr(exc, "name", None) or "redisvl", "redisvl", "redis-semantic") \
        from exc

__all__ = ["RedisVLIndex", "similarity_from_distance"]

log = logging.getLogger("semcache.indexes")

FORMAT = 1
NEVER = 9e15  #: stored expiry of an entry that never expires (year ~285 million)
ALGORITHMS = ("flat", "hnsw")


def similarity_from_distance(distance: float | str) -> float:
    """RediSearch's cosine distance (1 - cos, in [0, 2]) as cosine similarity in [-1, 1];
    ValueError for a distance that is not a finite number (clamping NaN would give 1)."""
    d = float(distance)
    if not math.isfinite(d):
        raise ValueError(f"vector distance {distance!r} is not a finite number")
    return max(-1.0, min(1.0, 1.0 - d))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


#: one backend call: a bound method of a client, search index or pipeline, with its
#: arguments; the sync driver calls it, the async driver awaits what it returns
_Step = Callable[[], Any]
_R = TypeVar("_R")
#: an operation written once: it yields steps, receives their results, returns an _R
_Program = Generator[_Step, Any, _R]
_P = ParamSpec("_P")


class _Sync:
    """What a program's steps are bound to when the sync driver runs it."""

    def __init__(self, owner: RedisVLIndex, client: redis.Redis) -> None:
        self.client = client
        self._owner = owner

    @property
    def index(self) -> SearchIndex:
        # made on first use: its schema is known only once _ensure has read the dimension
        owner = self._owner
        if owner._sync_index is None:
            assert owner._schema is not None
            owner._sync_index = SearchIndex(owner._schema, redis_client=self.client,
                                            owns_client=False)
        return owner._sync_index


class _Async:
    """The same for the async driver: this event loop's client and its index."""

    def __init__(self, owner: RedisVLIndex, client: redis.asyncio.Redis) -> None:
        self.client = client
        self._owner = owner

    @property
    def index(self) -> AsyncSearchIndex:
        owner, client = self._owner, self.client
        got = owner._async_indexes.get(id(client))
        if got is None or got[0] is not client:  # one per event loop's client
            assert owner._schema is not None
            got = owner._async_indexes[id(client)] = (client, AsyncSearchIndex(
                owner._schema, redis_client=client, owns_client=False))
        return got[1]


_IO = _Sync | _Async


@contextmanager
def _map_errors() -> Iterator[None]:
    """redis-py's errors via the store's mapping; RedisVL's wrapped ones here."""
    try:
        with map_redis_errors("redisvl"):
            yield
    except SemcacheError:
        raise
    except RedisVLError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, (redis.exceptions.ConnectionError, ConnectionError, OSError)):
            raise BackendUnavailable(f"redisvl: unavailable: {cause}",
                                     backend="redisvl") from exc
        raise BackendError(f"redisvl: {exc}", backend="redisvl") from exc


def _map_step_errors(step: _Step) -> AbstractContextManager[None]:
    return _map_errors()


class RedisVLIndex(VectorIndex):
    name = "redisvl"
    expiry_grace = 60.0  #: seconds a hash outlives its expiry before Redis drops it

    def __init__(self, connection: RedisConnection, index_name: str = "semcache", *,
                 dim: int | None = None, model_id: str | None = None,
                 algorithm: str = "flat", clock: Callable[[], float] = time.time) -> None:
        if not isinstance(connection, RedisConnection):
            # RedisVLIndex(redis_store), the signature before #19: share the store's
            # connection (read by attribute: this seam never imports exact/)
            connection = getattr(connection, "connection", connection)
            if not isinstance(connection, RedisConnection):
                raise ConfigError(f"RedisVLIndex needs a RedisConnection, got "
                                  f"{type(connection).__name__}", parameter="connection")
        if connection.cluster:
            raise ConfigError("redis-semantic needs a single Redis Stack server (the search "
                              "module does not run on an OSS cluster): give host/port or "
                              "redis_url", parameter="redis_startup_nodes")
        if not isinstance(index_name, str) or not index_name or any(
                c in index_name for c in ":*?[] \\{}"):
            raise ConfigError(f"redis_semantic_cache_index_name must be a non-empty name "
                              f"without ':', spaces or glob characters, got {index_name!r}",
                              parameter="redis_semantic_cache_index_name")
        if algorithm not in ALGORITHMS:
            raise ConfigError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}",
                              parameter="algorithm")
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise ConfigError(f"dim must be a positive int, got {dim!r}", parameter="dim")
        self.connection = connection
        self.index_name = index_name
        # '#' cannot occur in a namespace, so the store's flush of a namespace (SCAN
        # MATCH "<namespace>:*") can never reach the index's hashes, whatever the names
        self.prefix = f"vec#{index_name}:"
        self.meta_key = f"vec#meta#{index_name}"
        self.model_id = model_id
        self.algorithm = algorithm
        self._dim = dim
        self._clock = clock
        self.skipped = 0  #: malformed hashes skipped (and logged) by this process's searches
        self.repaired = 0  #: entries whose malformed observations an observe replaced
        self._schema: IndexSchema | None = None
        self._ready = False
        self._sync_index: SearchIndex | None = None
        self._async_indexes: dict[int, tuple[Any, AsyncSearchIndex]] = {}

    @property
    def dim(self) -> int | None:
        return self._dim

    # ------------------------------------------------------------------ drivers
    # semcache/_connections/steps.py: a mapped error is thrown back into the program, so
    # _ensure can handle an index another process created first where it made the call
    def _run(self, program: Callable[Concatenate[_IO, _P], _Program[_R]], /,
             *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _map_errors():
            io = _Sync(self, self.connection.client())
        return drive(program(io, *args, **kwargs), _map_step_errors)

    async def _arun(self, program: Callable[Concatenate[_IO, _P], _Program[_R]], /,
                    *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _map_errors():
            io = _Async(self, await self.connection.aclient())
        return await adrive(program(io, *args, **kwargs), _map_step_errors)

    # ------------------------------------------------------------------ programs
    def _make_schema(self, dim: int) -> IndexSchema:
        attrs: dict[str, Any] = {"dims": dim, "distance_metric": "cosine",
                                 "algorithm": self.algorithm, "datatype": "float32"}
        return IndexSchema.from_dict({
            "index": {"name": self.index_name, "prefix": self.prefix, "storage_type": "hash"},
            "fields": [{"name": "ctx", "type": "tag"}, {"name": "ns", "type": "tag"},
                       {"name": "x", "type": "numeric"},
                       {"name": "v", "type": "vector", "attrs": attrs}]})

    def _ensure(self, io: _IO, dim: int | None = None) -> _Program[bool]:
        """Check (or create) the index and its recorded model once per process; False
        when it does not exist and the dimension is not known yet."""
        if self._ready:
            return True
        raw = yield partial(io.client.hgetall, self.meta_key)
        where = f"RedisVL index {self.index_name!r} on {self.connection.where}"
        meta = read_meta(raw or {}, where, self.meta_key)
        if meta:
            model = meta.get("model_id") or None
            if self.model_id is not None and model is not None and model != self.model_id:
                raise ConfigError(
                    f"{where} was built with embedding model {model!r}, not "
                    f"{self.model_id!r}: its vectors are not comparable; use another "
                    "redis_semantic_cache_index_name or drop the index",
                    parameter="redis_semantic_cache_embedding_model")
            stored = int(meta["dim"])  # checked by read_meta
            if self._dim is not None and stored != self._dim:
                raise ConfigError(f"{where} holds {stored}-dimensional vectors, not "
                                  f"{self._dim}", parameter="redis_semantic_cache_index_name")
            self._dim = stored
            self.model_id = self.model_id or model
        dim = self._dim or dim
        if dim is None:
            return False
        self._dim = dim
        self._schema = self._make_schema(dim)
        exists = yield io.index.exists
        if exists:  # made by another process, version or tool: it must be ours in shape
            info = yield io.index.info
            check_existing(info, dim, where, self.prefix)
        else:
            try:
                yield partial(io.index.create, overwrite=False)
            except BackendError as exc:  # another process created it meanwhile
                if "already exists" not in str(exc.__cause__ or exc).lower():
                    raise
        if not meta:
            yield partial(io.client.hset, self.meta_key, mapping={
                "format": FORMAT, "model_id": self.model_id or "", "dim": dim,
                "metric": "cosine"})
        self._ready = True
        return True

    def _forget(self) -> None:
        """Check (or create) the index again on the next call."""
        self._ready = False
        self._sync_index = None
        self._async_indexes.clear()

    def _query(self, io: _IO, query: Any) -> _Program[Any]:
        """``io.index.query(query)``; an index that is gone (a Redis restarted without
        persistence, a FLUSHALL, an FT.DROPINDEX under a running process) is created
        again (FT.CREATE indexes the hashes already there) and the query retried once:
        left to _ready, every later search, count and clear would be a backend fault
        until the process restarted."""
        try:
            return (yield partial(io.index.query, query))
        except BackendError as exc:
            if not index_gone(exc):
                raise
        log.warning("RedisVL index %r on %s is gone; creating it again",
                    self.index_name, self.connection.where)
        self._forget()
        yield from self._ensure(io)  # self._dim is known: it creates the index
        return (yield partial(io.index.query, query))

    def _rkey(self, key: str) -> str:
        return self.prefix + _digest(key)[:40]

    def _add(self, io: _IO, entries: Sequence[IndexEntry], vectors: np.ndarray) -> _Program[None]:
        if self._dim is None and not self._ready:
            yield from self._ensure(io)
        vecs = check_vectors(vectors, len(entries), self._dim or np.shape(vectors)[-1])
        if not entries:
            return None
        yield from self._ensure(io, vecs.shape[1])
        last = {e.key: i for i, e in enumerate(entries)}  # one batch, one key: last wins
        # queuing on a pipeline is local (no I/O, in either flavour); its execute is the
        # one round trip. MULTI/EXEC: a connection lost mid-pipeline must not leave a
        # hash written without its expiry (never reclaimed) or with the replaced
        # entry's (dropped early): all of it happens or none
        pipe = io.client.pipeline(transaction=True)
        for i in last.values():
            e, rk = entries[i], self._rkey(entries[i].key)
            pipe.hset(rk, mapping={
                "k": e.key, "ctx": _digest(e.context), "ns": _digest(e.namespace),
                "p": e.prompt, "c": repr(float(e.created_at)),
                "x": repr(NEVER if e.expires_at is None else float(e.expires_at)),
                "v": vecs[i].tobytes()})
            if e.expires_at is None:
                pipe.persist(rk)
            else:
                at = max(e.expires_at, self._clock()) + self.expiry_grace
                pipe.pexpireat(rk, int(at * 1000))
        yield pipe.execute
        return None

    def _search(self, io: _IO, vector: np.ndarray, context: str, k: int,
                now: float) -> _Program[list[Candidate]]:
        check_k(k)
        if self._dim is None and not self._ready:
            yield from self._ensure(io)
        if self._dim is None:  # nothing was ever added: still reject bad input
            check_vectors(vector, 1, np.shape(vector)[-1])
            return []
        q = check_vectors(vector, 1, self._dim)[0]
        if not (yield from self._ensure(io)):
            return []
        query = VectorQuery(vector=q.tolist(), vector_field_name="v", dtype="float32",
                            return_fields=["k", "p", "c", "x", "o"], num_results=k,
                            filter_expression=(Tag("ctx") == _digest(context))
                            & (Num("x") > now))
        rows = yield from self._query(io, query)
        found, skipped = candidates(rows, _candidate, f"RedisVL index {self.index_name!r} "
                                    f"on {self.connection.where}")
        self.skipped += skipped
        return found

    def _observe(self, io: _IO, key: str, obs: Observation) -> _Program[bool]:
        done = yield partial(io.client.eval, OBSERVE_LUA, 1, self._rkey(key),
                             json.dumps(obs.to_json()), MAX_OBSERVATIONS)
        if done and int(done) > 1:  # the script dropped unreadable observations
            self.repaired += 1
            log.warning("RedisVL index %r on %s: entry %r had malformed observations "
                        "(%d unreadable); replaced them, keeping the readable ones",
                        self.index_name, self.connection.where, key, int(done) - 1)
        return bool(done)

    def _delete(self, io: _IO, keys: Sequence[str]) -> _Program[int]:
        rkeys = list(dict.fromkeys(self._rkey(k) for k in keys))
        if not rkeys:
            return 0
        return int((yield partial(io.client.delete, *rkeys)))

    def _delete_if_unchanged(self, io: _IO, cand: Candidate) -> _Program[bool]:
        x = "" if cand.expires_at is None else repr(float(cand.expires_at))
        done = yield partial(io.client.eval, DELETE_IF_UNCHANGED_LUA, 1, self._rkey(cand.key),
                             cand.key, repr(float(cand.created_at)), x, repr(NEVER))
        return bool(done)

    def _clear(self, io: _IO, namespace: str) -> _Program[int]:
        if not (yield from self._ensure(io)):
            return 0
        gone = 0
        while True:  # pages of ids; deleted documents leave the index at once
            rows = yield from self._query(io, FilterQuery(
                filter_expression=Tag("ns") == _digest(namespace), return_fields=["k"],
                num_results=1000))
            if not rows:
                return gone
            gone += int((yield partial(io.client.delete, *(r["id"] for r in rows))))

    def _count(self, io: _IO, namespace: str | None) -> _Program[int]:
        if not (yield from self._ensure(io)):
            return 0
        flt = None if namespace is None else Tag("ns") == _digest(namespace)
        return int((yield from self._query(io, CountQuery(filter_expression=flt))))

    def _drop(self, io: _IO, delete_documents: bool) -> _Program[None]:
        if not (yield from self._ensure(io)):
            return None
        try:
            yield partial(io.index.delete, drop=delete_documents)
        except BackendError as exc:
            if not index_gone(exc):
                raise
        yield partial(io.client.delete, self.meta_key)
        self._forget()
        return None

    # ------------------------------------------------------------------ the seam
    def add(self, entries: Sequence[IndexEntry], vectors: np.ndarray) -> None:
        self._run(self._add, entries, vectors)

    def search(self, vector: np.ndarray, context: str, k: int = 4,
               now: float | None = None) -> list[Candidate]:
        return self._run(self._search, vector, context, k,
                         self._clock() if now is None else now)

    def delete(self, keys: Sequence[str]) -> int:
        return self._run(self._delete, keys)

    def delete_if_unchanged(self, candidate: Candidate) -> bool:
        return self._run(self._delete_if_unchanged, candidate)

    def clear(self, namespace: str) -> int:
        return self._run(self._clear, namespace)

    def count(self, namespace: str | None = None) -> int:
        return self._run(self._count, namespace)

    def observe(self, key: str, observation: Observation) -> bool:
        return self._run(self._observe, key, observation)

    async def aobserve(self, key: str, observation: Observation) -> bool:
        return await self._arun(self._observe, key, observation)

    def drop(self, delete_documents: bool = True) -> None:
        """Remove the search index itself (and, by default, its entries): a flush only
        ever removes a namespace's entries, this is for tearing a deployment down."""
        self._run(self._drop, delete_documents)

    def ping(self) -> bool:
        with _map_errors():
            return bool(self.connection.client().ping())

    async def aadd(self, entries: Sequence[IndexEntry], vectors: np.ndarray) -> None:
        await self._arun(self._add, entries, vectors)

    async def asearch(self, vector: np.ndarray, context: str, k: int = 4,
                      now: float | None = None) -> list[Candidate]:
        return await self._arun(self._search, vector, context, k,
                                self._clock() if now is None else now)

    async def adelete(self, keys: Sequence[str]) -> int:
        return await self._arun(self._delete, keys)

    async def adelete_if_unchanged(self, candidate: Candidate) -> bool:
        return await self._arun(self._delete_if_unchanged, candidate)

    async def aclear(self, namespace: str) -> int:
        return await self._arun(self._clear, namespace)

    async def acount(self, namespace: str | None = None) -> int:
        return await self._arun(self._count, namespace)

    async def aping(self) -> bool:
        with _map_errors():
            return bool(await (await self.connection.aclient()).ping())

    def close(self) -> None:
        self.connection.close()  # shared with the cache's store; closing twice is harmless

    async def aclose(self) -> None:
        await self.connection.aclose()

    def __repr__(self) -> str:
        return (f"RedisVLIndex(index_name={self.index_name!r}, at={self.connection.where!r}, "
                f"dim={self._dim}, model_id={self.model_id!r}, algorithm={self.algorithm!r})")


def _candidate(r: dict[str, Any]) -> Candidate:
    """A search row's candidate; a hash this module did not write raises (see
    ``candidates``, which skips that row)."""
    x = float(r["x"])
    return candidate(r["k"], similarity_from_distance(r["vector_distance"]), r["p"],
                     float(r["c"]), None if x >= NEVER else x, _observations(r.get("o")))


def _observations(raw: str | bytes | None) -> tuple[Observation, ...]:
    if not raw:
        return ()
    arr = json.loads(raw)
    if arr == {}:  # Lua's cjson writes an empty table as {}
        return ()
    if not isinstance(arr, list):
        raise TypeError(f"observations are a list, not {type(arr).__name__}")
    return tuple(Observation.from_json(v) for v in arr)
