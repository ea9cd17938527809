"""``qdrant-semantic``: the vector index and the exact store on Qdrant.

Where it runs
    ``qdrant_api_base="http://host:6333"`` (+ ``qdrant_api_key``) talks to a Qdrant
    server, which every process can share. Without it, qdrant-client's *embedded* local
    mode runs in process: ``qdrant_path="./folder"`` persists to a folder (locked to one
    process: a second one gets a ``ConfigError``), and the default (``qdrant_path`` unset
    or ``":memory:"``) keeps everything in memory, like the ``local`` type. The embedded
    mode is a brute-force search meant for development and tests; the code path through
    the client is the same for both.

Layout
    Two collections: ``<qdrant_collection_name>`` holds one point per cached request
    (vector + payload: key, context key, namespace, prompt, created/expiry), and
    ``<qdrant_collection_name>_answers`` holds the answers (payload only, no vector).
    Point ids are ``uuid5(key)``, so writing a request twice replaces its point. Answers
    live apart from the vectors because the exact stage must serve (and ``update_ttl``
    must rewrite) answers that have no vector at all, e.g. non-semantic call types and
    every exact hit, and because the lookup pipeline fetches the answer by key after
    the decision policy picked a candidate: storing it in the vector's payload would
    not save that round trip, but would ship every top-k candidate's answer with each
    search.

    The vector collection records the embedding model and dimension in its Qdrant
    collection metadata; opening it under another model raises ``ConfigError``.

Behaviour
    Collections are created lazily on first use: the constructors do no network I/O.
    Searches filter on the context key AND ``expires_at > now or null``; keyword payload
    indexes on context key and namespace (and a float index on expiry) make that filter
    cheap on a server. Expired points are purged by ``purge_expired()`` and, every
    ``purge_every`` writes, opportunistically. Qdrant's cosine score *is* the cosine
    similarity, so no conversion is needed. qdrant-client's errors are mapped to
    semcache's in ``_map_errors`` and nowhere else. The server path has native async
    (``AsyncQdrantClient``); the embedded mode runs in worker threads behind one lock.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    InvalidRequestError,
    SemcacheError,
    missing,
)
from ..embedders.base import Embedder
from ..exact.base import ExactStore
from ._common import check_k, check_vectors
from .base import MAX_OBSERVATIONS, Candidate, IndexEntry, Observation, VectorIndex

try:
    from qdrant_client import AsyncQdrantClient, QdrantClient, models
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing("qdrant-client", "qdrant", "qdrant-semantic") from exc

__all__ = ["QdrantConnection", "QdrantIndex", "QdrantStore", "build_qdrant_semantic"]

FORMAT = 1
_NS = uuid.UUID("5a9c7f2e-5b1f-4c1e-9a57-3d1e0c2b7a11")  # uuid5 namespace of our point ids
QUANTIZATION = (None, "binary", "scalar", "product")


def point_id(key: str) -> str:
    """Deterministic point id of an exact key: the same request always hits one point."""
    return str(uuid.uuid5(_NS, key))


# ------------------------------------------------------------------ the connection
@dataclass
class _Call:
    """One client method call, made by whichever driver runs the program."""

    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)


_Program = Generator[_Call, Any, Any]


class QdrantConnection:
    """One Qdrant client (and its async twin) shared by a cache's store and index.

    Operations are written once, as generators of ``_Call``; ``run`` drives them with
    the sync client and ``arun`` with the async one (server) or in a worker thread
    (embedded), so there is no second copy of any logic.
    """

    def __init__(self, *, url: str | None = None, api_key: str | None = None,
                 path: str | os.PathLike[str] | None = None,
                 timeout: float | None = None) -> None:
        if url is not None and path is not None and str(path) != ":memory:":
            raise ConfigError("give qdrant_api_base (a server) or qdrant_path (embedded), "
                              "not both", parameter="qdrant_path")
        if url is not None and (not isinstance(url, str) or "://" not in url):
            raise ConfigError(f"qdrant_api_base must be a URL like http://host:6333, got "
                              f"{url!r}", parameter="qdrant_api_base")
        if api_key is not None and url is None:
            raise ConfigError("qdrant_api_key needs qdrant_api_base (a server)",
                              parameter="qdrant_api_key")
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            raise ConfigError(f"qdrant_timeout must be > 0 seconds, got {timeout!r}",
                              parameter="qdrant_timeout")
        self.url = url
        self._api_key = api_key
        self._closed = False
        self.embedded = url is None
        self.path = None if path is None or str(path) == ":memory:" else os.fspath(path)
        self._timeout = None if timeout is None else int(max(1, round(timeout)))
        self._lock = threading.RLock()  # the embedded client is not thread-safe
        self._aclients: dict[int, tuple[asyncio.AbstractEventLoop, AsyncQdrantClient]] = {}
        self.ready: set[str] = set()  # collections checked or created in this process
        if self.embedded:
            try:
                # Local, no network; taking the folder lock here gives the clear error
                # at construction rather than on the first request.
                self.client = QdrantClient(location=":memory:" if self.path is None else None,
                                           path=self.path,
                                           force_disable_check_same_thread=True)
            except RuntimeError as exc:
                if "already accessed" not in str(exc):
                    raise
                raise ConfigError(
                    f"the embedded Qdrant folder {self.path!r} is open in another client "
                    "(the embedded mode allows one per folder): share one Cache, give each "
                    "process its own folder, or run a Qdrant server and set qdrant_api_base",
                    parameter="qdrant_path") from None
        else:
            # check_compatibility=False: otherwise the constructor would call the server
            self.client = QdrantClient(url=url, api_key=api_key, timeout=self._timeout,
                                       check_compatibility=False)

    def describe(self) -> str:
        if not self.embedded:
            return self.url or ""
        return f"embedded:{self.path or ':memory:'}"

    # -- drivers --
    def run(self, program: _Program) -> Any:
        result: Any = None
        with self._lock if self.embedded else contextlib.nullcontext():
            while True:
                try:
                    call = program.send(result)
                except StopIteration as stop:
                    return stop.value
                with _map_errors(self, call):
                    result = getattr(self.client, call.method)(**call.kwargs)

    async def arun(self, program: _Program) -> Any:
        if self.embedded:
            return await asyncio.to_thread(self.run, program)
        client = self._aclient()
        result: Any = None
        while True:
            try:
                call = program.send(result)
            except StopIteration as stop:
                return stop.value
            with _map_errors(self, call):
                result = await getattr(client, call.method)(**call.kwargs)

    def _aclient(self) -> AsyncQdrantClient:
        # httpx's async pool belongs to one event loop: one client per running loop
        loop = asyncio.get_running_loop()
        got = self._aclients.get(id(loop))
        if got is None or got[0] is not loop:
            for k in [k for k, (lp, _) in self._aclients.items() if lp.is_closed()]:
                del self._aclients[k]
            got = self._aclients[id(loop)] = (loop, AsyncQdrantClient(
                url=self.url, api_key=self._api_key, timeout=self._timeout,
                check_compatibility=False))
        return got[1]

    def close(self) -> None:
        """Idempotent: the store and the index of one cache share this connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.client.close()
            self._aclients.clear()


@contextlib.contextmanager
def _map_errors(conn: QdrantConnection, call: _Call) -> Iterator[None]:
    """The one place where qdrant-client's errors become semcache's."""
    backend = "qdrant"
    where = f"qdrant {call.method} at {conn.describe()}"
    try:
        yield
    except SemcacheError:
        raise
    except UnexpectedResponse as exc:
        if exc.status_code == 404:  # e.g. the collection was deleted behind our back
            conn.ready.discard(call.kwargs.get("collection_name", ""))
        if exc.status_code in (502, 503, 504):
            raise BackendUnavailable(f"{where}: HTTP {exc.status_code}",
                                     backend=backend) from exc
        raise BackendError(f"{where}: HTTP {exc.status_code}: {exc.content[:200]!r}",
                           backend=backend) from exc
    except ResponseHandlingException as exc:
        src = exc.source
        if isinstance(src, TimeoutError) or "timeout" in type(src).__name__.lower():
            raise BackendTimeout(f"{where}: timed out", backend=backend) from exc
        raise BackendUnavailable(f"{where}: {type(src).__name__}: {src}",
                                 backend=backend) from exc
    except TimeoutError as exc:
        raise BackendTimeout(f"{where}: timed out", backend=backend) from exc
    except (ConnectionError, OSError) as exc:
        raise BackendUnavailable(f"{where}: {exc}", backend=backend) from exc
    except (ValueError, KeyError, RuntimeError) as exc:
        # the embedded mode raises these (e.g. a collection deleted by another handle,
        # a closed client)
        conn.ready.discard(call.kwargs.get("collection_name", ""))
        raise BackendError(f"{where}: {type(exc).__name__}: {exc}", backend=backend) from exc


def _not_expired(now: float) -> models.Filter:
    return models.Filter(should=[
        models.FieldCondition(key="x", range=models.Range(gt=now)),
        # is_empty: missing or null. A payload merge (set_payload) may drop a null value
        models.IsEmptyCondition(is_empty=models.PayloadField(key="x")),
    ])


def _match(field_name: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=field_name, match=models.MatchValue(value=value))


def _ns_of(key: str) -> str:
    return key.split(":", 1)[0]


class _Collection:
    """What the index and the store share: a lazily created collection, opportunistic
    purges of expired points, and count/clear/purge programs."""

    purge_every = 1000

    def __init__(self, conn: QdrantConnection, name: str, clock: Callable[[], float]) -> None:
        self.conn = conn
        self.collection = name
        self._clock = clock
        self._writes = 0

    def _ensure(self, dim: int | None = None) -> _Program:
        """Create or check the collection once per process; False if it does not exist
        and could not be created yet (a search before the first add)."""
        if self.collection in self.conn.ready:
            return True
        exists = yield _Call("collection_exists", {"collection_name": self.collection})
        if not exists:
            spec = self._create_spec(dim)
            if spec is None:
                return False
            yield _Call("create_collection", {"collection_name": self.collection, **spec})
            if not self.conn.embedded:  # payload indexes are a no-op (and warn) embedded
                for name, schema in self._payload_indexes():
                    yield _Call("create_payload_index", {
                        "collection_name": self.collection, "field_name": name,
                        "field_schema": schema, "wait": True})
        else:
            info = yield _Call("get_collection", {"collection_name": self.collection})
            self._check_existing(info)
        self.conn.ready.add(self.collection)
        return True

    def _payload_indexes(self) -> list[tuple[str, models.PayloadSchemaType]]:
        return [("ns", models.PayloadSchemaType.KEYWORD), ("x", models.PayloadSchemaType.FLOAT)]

    def _create_spec(self, dim: int | None) -> dict[str, Any] | None:
        raise NotImplementedError

    def _check_existing(self, info: Any) -> None:
        pass

    def _count(self, flt: models.Filter | None) -> _Program:
        exists = yield from self._ensure()
        if not exists:
            return 0
        res = yield _Call("count", {"collection_name": self.collection, "count_filter": flt,
                                    "exact": True})
        return int(res.count)

    def _delete_where(self, flt: models.Filter) -> _Program:
        n = yield from self._count(flt)
        if n:
            yield _Call("delete", {"collection_name": self.collection, "wait": True,
                                   "points_selector": models.FilterSelector(filter=flt)})
        return n

    def _delete_ids(self, keys: Sequence[str]) -> _Program:
        keys = list(dict.fromkeys(keys))
        exists = yield from self._ensure()
        if not keys or not exists:
            return 0
        ids = [point_id(k) for k in keys]
        found = yield _Call("retrieve", {"collection_name": self.collection, "ids": ids,
                                         "with_payload": False, "with_vectors": False})
        if found:
            yield _Call("delete", {"collection_name": self.collection, "wait": True,
                                   "points_selector": models.PointIdsList(
                                       points=[p.id for p in found])})
        return len(found)

    def _purge(self, now: float) -> _Program:
        return (yield from self._delete_where(models.Filter(must=[
            models.FieldCondition(key="x", range=models.Range(lte=now))])))

    def _wrote(self, n: int) -> _Program:
        """Every ``purge_every`` writes, drop expired points (searches already skip them)."""
        self._writes += n
        if self._writes >= self.purge_every:
            self._writes = 0
            yield from self._purge(self._clock())

    def purge_expired(self, now: float | None = None) -> int:
        """Delete expired points now; returns how many."""
        return self.conn.run(self._purge(self._clock() if now is None else now))

    def _ping(self) -> _Program:
        yield _Call("get_collections")
        return True


# ------------------------------------------------------------------ the index
class QdrantIndex(_Collection, VectorIndex):
    name = "qdrant"

    def __init__(self, conn: QdrantConnection, collection: str = "semcache", *,
                 dim: int | None = None, model_id: str | None = None,
                 quantization: str | None = None, hnsw_ef: int | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        _check_collection_name(collection)
        if quantization not in QUANTIZATION:
            raise ConfigError(f"qdrant_quantization_config must be one of {QUANTIZATION}, "
                              f"got {quantization!r}", parameter="qdrant_quantization_config")
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise ConfigError(f"dim must be a positive int, got {dim!r}", parameter="dim")
        super().__init__(conn, collection, clock)
        self._dim = dim
        self.model_id = model_id
        self.quantization = quantization
        self.hnsw_ef = hnsw_ef

    @property
    def dim(self) -> int | None:
        return self._dim

    # -- collection lifecycle --
    def _payload_indexes(self) -> list[tuple[str, models.PayloadSchemaType]]:
        return [("ctx", models.PayloadSchemaType.KEYWORD), *super()._payload_indexes()]

    def _create_spec(self, dim: int | None) -> dict[str, Any] | None:
        dim = dim or self._dim
        if dim is None:
            return None
        self._dim = dim
        spec: dict[str, Any] = {
            "vectors_config": models.VectorParams(size=dim, distance=models.Distance.COSINE),
            "metadata": {"semcache_format": FORMAT, "model_id": self.model_id, "dim": dim,
                         "metric": "cosine"},
        }
        q = _quantization(self.quantization)
        if q is not None and not self.conn.embedded:  # the embedded search is brute force
            spec["quantization_config"] = q
        return spec

    def _check_existing(self, info: Any) -> None:
        where = f"Qdrant collection {self.collection!r} ({self.conn.describe()})"
        params = info.config.params.vectors
        if not isinstance(params, models.VectorParams):
            raise ConfigError(f"{where} has named vectors; semcache needs one unnamed "
                              "vector: use another qdrant_collection_name",
                              parameter="qdrant_collection_name")
        if params.distance != models.Distance.COSINE:
            raise ConfigError(f"{where} uses {params.distance} distance, not cosine",
                              parameter="qdrant_collection_name")
        meta = info.config.metadata or {}
        model = meta.get("model_id")
        if self.model_id is not None and model is not None and model != self.model_id:
            raise ConfigError(
                f"{where} was built with embedding model {model!r}, not {self.model_id!r}: "
                "its vectors are not comparable; use another qdrant_collection_name or "
                "delete the collection", parameter="qdrant_semantic_cache_embedding_model")
        if self._dim is not None and params.size != self._dim:
            raise ConfigError(f"{where} holds {params.size}-dimensional vectors, not "
                              f"{self._dim}", parameter="qdrant_collection_name")
        self._dim = int(params.size)
        self.model_id = self.model_id or model

    # -- programs --
    def _add(self, entries: Sequence[IndexEntry], vectors: np.ndarray) -> _Program:
        if self._dim is None and self.collection not in self.conn.ready:
            yield from self._ensure()  # an existing collection tells us its dimension
        vecs = check_vectors(vectors, len(entries), self._dim or np.shape(vectors)[-1])
        if not entries:
            return None
        yield from self._ensure(vecs.shape[1])
        last = {e.key: i for i, e in enumerate(entries)}  # one batch, one key: last wins
        ids = {k: point_id(k) for k in last}
        found = yield _Call("retrieve", {"collection_name": self.collection,
                                         "ids": list(ids.values()), "with_payload": False,
                                         "with_vectors": False})
        existing = {str(p.id) for p in found}
        new: list[models.PointStruct] = []
        ops: list[Any] = []
        for k, i in last.items():
            e, pid = entries[i], ids[k]
            payload = {"k": e.key, "ctx": e.context, "ns": e.namespace, "p": e.prompt,
                       "c": e.created_at, "x": e.expires_at}
            if pid in existing:  # merge, so the entry's observations ("o") are kept
                ops.append(models.SetPayloadOperation(set_payload=models.SetPayload(
                    payload=payload, points=[pid])))
                ops.append(models.UpdateVectorsOperation(update_vectors=models.UpdateVectors(
                    points=[models.PointVectors(id=pid, vector=vecs[i].tolist())])))
            else:
                new.append(models.PointStruct(id=pid, vector=vecs[i].tolist(),
                                              payload=payload))
        if new:
            yield _Call("upsert", {"collection_name": self.collection, "points": new,
                                   "wait": True})
        if ops:
            yield _Call("batch_update_points", {"collection_name": self.collection,
                                                "update_operations": ops, "wait": True})
        yield from self._wrote(len(last))
        return None

    def _observe(self, key: str, obs: Observation) -> _Program:
        """One payload key per observation under ``o`` (``set_payload`` with ``key``
        merges), so concurrent observers never overwrite each other."""
        if not (yield from self._ensure()):
            return False
        pid = point_id(key)
        found = yield _Call("retrieve", {"collection_name": self.collection, "ids": [pid],
                                         "with_payload": models.PayloadSelectorInclude(
                                             include=["k", "o"]), "with_vectors": False})
        if not found or found[0].payload.get("k") != key:
            return False
        have = found[0].payload.get("o") or {}
        name = f"{time.time_ns():020d}{uuid.uuid4().hex[:6]}"
        if len(have) >= 2 * MAX_OBSERVATIONS:  # compact now and then: only here can a
            keep = dict(sorted(have.items())[-(MAX_OBSERVATIONS - 1):])  # racing one be lost
            keep[name] = obs.to_json()
            yield _Call("set_payload", {"collection_name": self.collection, "wait": True,
                                        "payload": {"o": keep}, "points": [pid]})
        else:
            yield _Call("set_payload", {"collection_name": self.collection, "wait": True,
                                        "payload": {name: obs.to_json()}, "key": "o",
                                        "points": [pid]})
        return True

    def _search(self, vector: np.ndarray, context: str, k: int, now: float) -> _Program:
        check_k(k)
        if self._dim is None and self.collection not in self.conn.ready:
            yield from self._ensure()
        if self._dim is None:  # nothing was ever added: still reject bad input
            check_vectors(vector, 1, np.shape(vector)[-1])
            return []
        q = check_vectors(vector, 1, self._dim)[0]
        exists = yield from self._ensure()
        if not exists:
            return []
        params = None
        if not self.conn.embedded:  # search params are ignored (and warn) embedded
            params = models.SearchParams(hnsw_ef=self.hnsw_ef, quantization=(
                models.QuantizationSearchParams(rescore=True, oversampling=2.0)
                if self.quantization else None))
        res = yield _Call("query_points", {
            "collection_name": self.collection, "query": q.tolist(), "limit": k,
            "query_filter": models.Filter(must=[_match("ctx", context), _not_expired(now)]),
            "with_payload": True, "search_params": params})
        return [Candidate(p.payload["k"], max(-1.0, min(1.0, float(p.score))),
                          p.payload["p"], p.payload["c"], p.payload.get("x"),
                          _observations(p.payload.get("o")))
                for p in res.points]

    # -- the seam --
    def add(self, entries: Sequence[IndexEntry], vectors: np.ndarray) -> None:
        self.conn.run(self._add(entries, vectors))

    def search(self, vector: np.ndarray, context: str, k: int = 4,
               now: float | None = None) -> list[Candidate]:
        return self.conn.run(self._search(vector, context, k,
                                          self._clock() if now is None else now))

    def delete(self, keys: Sequence[str]) -> int:
        return self.conn.run(self._delete_ids(keys))

    def clear(self, namespace: str) -> int:
        return self.conn.run(self._delete_where(models.Filter(must=[_match("ns", namespace)])))

    def count(self, namespace: str | None = None) -> int:
        return self.conn.run(self._count(
            None if namespace is None else models.Filter(must=[_match("ns", namespace)])))

    def observe(self, key: str, observation: Observation) -> bool:
        return self.conn.run(self._observe(key, observation))

    async def aobserve(self, key: str, observation: Observation) -> bool:
        return await self.conn.arun(self._observe(key, observation))

    def ping(self) -> bool:
        return self.conn.run(self._ping())

    async def aadd(self, entries: Sequence[IndexEntry], vectors: np.ndarray) -> None:
        await self.conn.arun(self._add(entries, vectors))

    async def asearch(self, vector: np.ndarray, context: str, k: int = 4,
                      now: float | None = None) -> list[Candidate]:
        return await self.conn.arun(self._search(vector, context, k,
                                                 self._clock() if now is None else now))

    async def adelete(self, keys: Sequence[str]) -> int:
        return await self.conn.arun(self._delete_ids(keys))

    async def aclear(self, namespace: str) -> int:
        return await self.conn.arun(self._delete_where(
            models.Filter(must=[_match("ns", namespace)])))

    async def acount(self, namespace: str | None = None) -> int:
        return await self.conn.arun(self._count(
            None if namespace is None else models.Filter(must=[_match("ns", namespace)])))

    async def aping(self) -> bool:
        return await self.conn.arun(self._ping())

    def close(self) -> None:
        self.conn.close()

    def __repr__(self) -> str:
        return (f"QdrantIndex(collection={self.collection!r}, at={self.conn.describe()!r}, "
                f"dim={self._dim}, model_id={self.model_id!r})")


# ------------------------------------------------------------------ the exact store
class QdrantStore(_Collection, ExactStore):
    """Answers as payload-only points (``{"k", "ns", "v": base64, "x"}``), so every
    process sharing the Qdrant server shares them."""

    name = "qdrant"

    def __init__(self, conn: QdrantConnection, collection: str = "semcache_answers", *,
                 clock: Callable[[], float] = time.time) -> None:
        _check_collection_name(collection)
        super().__init__(conn, collection, clock)

    def _create_spec(self, dim: int | None) -> dict[str, Any]:
        return {"vectors_config": {}, "metadata": {"semcache_format": FORMAT,
                                                   "role": "answers"}}

    def _get(self, key: str) -> _Program:
        exists = yield from self._ensure()
        if not exists:
            return None
        found = yield _Call("retrieve", {"collection_name": self.collection,
                                         "ids": [point_id(key)], "with_payload": True})
        if not found or found[0].payload.get("k") != key:
            return None
        p = found[0].payload
        if p.get("x") is not None and p["x"] <= self._clock():
            return None  # purged by the next purge pass
        return base64.b64decode(p["v"])

    def _set(self, key: str, value: bytes, ttl: float | None) -> _Program:
        if not isinstance(value, (bytes, bytearray)):
            raise InvalidRequestError(f"values are bytes, got {type(value).__name__}")
        yield from self._ensure()
        expires = None if ttl is None else self._clock() + ttl
        yield _Call("upsert", {"collection_name": self.collection, "wait": True, "points": [
            models.PointStruct(id=point_id(key), vector={}, payload={
                "k": key, "ns": _ns_of(key), "v": base64.b64encode(value).decode("ascii"),
                "x": expires})]})
        yield from self._wrote(1)

    def get(self, key: str) -> bytes | None:
        return self.conn.run(self._get(key))

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self.conn.run(self._set(key, value, ttl))

    def delete(self, keys: Sequence[str]) -> int:
        return self.conn.run(self._delete_ids(keys))

    def clear(self, namespace: str) -> int:
        return self.conn.run(self._delete_where(models.Filter(must=[_match("ns", namespace)])))

    def ping(self) -> bool:
        return self.conn.run(self._ping())

    async def aget(self, key: str) -> bytes | None:
        return await self.conn.arun(self._get(key))

    async def aset(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await self.conn.arun(self._set(key, value, ttl))

    async def adelete(self, keys: Sequence[str]) -> int:
        return await self.conn.arun(self._delete_ids(keys))

    async def aclear(self, namespace: str) -> int:
        return await self.conn.arun(self._delete_where(
            models.Filter(must=[_match("ns", namespace)])))

    async def aping(self) -> bool:
        return await self.conn.arun(self._ping())

    def close(self) -> None:
        self.conn.close()

    def __repr__(self) -> str:
        return f"QdrantStore(collection={self.collection!r}, at={self.conn.describe()!r})"


def _observations(stored: dict[str, Any] | None) -> tuple[Observation, ...]:
    if not stored:
        return ()
    return tuple(Observation.from_json(v) for _, v in sorted(stored.items()))[
        -MAX_OBSERVATIONS:]


def _check_collection_name(name: Any) -> None:
    if not isinstance(name, str) or not name or len(name) > 200 or any(
            c in name for c in "/\\ \0"):
        raise ConfigError(f"qdrant_collection_name must be a non-empty name without '/', "
                          f"'\\' or spaces, got {name!r}", parameter="qdrant_collection_name")


def _quantization(kind: str | None) -> models.QuantizationConfig | None:
    # always_ram keeps the small quantized vectors in RAM; search rescores with the
    # full vectors (see _search), so returned similarities stay exact.
    if kind == "binary":
        return models.BinaryQuantization(binary=models.BinaryQuantizationConfig(
            always_ram=True))
    if kind == "scalar":
        return models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
            type=models.ScalarType.INT8, quantile=0.99, always_ram=True))
    if kind == "product":
        return models.ProductQuantization(product=models.ProductQuantizationConfig(
            compression=models.CompressionRatio.X16, always_ram=True))
    return None


def build_qdrant_semantic(
    embedder: Embedder,
    qdrant_api_base: str | None = None,
    qdrant_api_key: str | None = None,
    qdrant_collection_name: str = "semcache",
    qdrant_semantic_cache_embedding_model: Any = None,  # resolved into ``embedder``
    qdrant_quantization_config: str | None = None,
    qdrant_path: str | os.PathLike[str] | None = None,
    qdrant_timeout: float | None = None,
) -> tuple[ExactStore, VectorIndex]:
    """The type table's builder: one connection shared by the store and the index."""
    conn = QdrantConnection(url=qdrant_api_base, api_key=qdrant_api_key, path=qdrant_path,
                            timeout=qdrant_timeout)
    try:
        index = QdrantIndex(conn, qdrant_collection_name, model_id=embedder.model_id,
                            quantization=qdrant_quantization_config)
        store = QdrantStore(conn, qdrant_collection_name + "_answers")
    except BaseException:
        conn.close()
        raise
    return store, index
