"""``qdrant-semantic``'s vector index: one Qdrant point per cached request.

Layout
    The collection ``<qdrant_collection_name>`` holds one point per cached request
    (vector + payload: key, context key, namespace, prompt, created/expiry). Point ids
    are ``uuid5(key)``, so writing a request twice replaces its point. The answers live
    in ``QdrantStore`` (``semcache/exact/qdrant.py``, collection ``<name>_answers``) on
    the same ``QdrantConnection`` (``semcache/_connections/qdrant.py``, which also says
    where Qdrant runs and how programs are driven): the exact stage must serve answers
    that have no vector at all, and the pipeline fetches the answer by key after the
    decision policy picked a candidate, so keeping it in the vector's payload would not
    save that round trip but would ship every top-k candidate's answer with each search.

    The collection records the embedding model and dimension in its Qdrant collection
    metadata; opening it under another model raises ``ConfigError``.

Behaviour
    Searches filter on the context key AND ``expires_at > now or null``; keyword payload
    indexes on context key and namespace (and a float index on expiry) make that filter
    cheap on a server. Qdrant's cosine score *is* the cosine similarity, so no
    conversion is needed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from .._connections.qdrant import (
    FORMAT,
    Client,
    Collection,
    Program,
    QdrantConnection,
    check_collection_name,
    match,
    models,
    not_expired,
    point_id,
)
from .._errors import ConfigError
from ._common import candidate, candidates, check_k, check_vectors
from .base import MAX_OBSERVATIONS, Candidate, IndexEntry, Observation, VectorIndex

# QdrantConnection is re-exported: it was defined here before the connection layer
__all__ = ["QUANTIZATION", "QdrantConnection", "QdrantIndex"]

log = logging.getLogger("semcache.indexes")

QUANTIZATION = (None, "binary", "scalar", "product")


class QdrantIndex(Collection, VectorIndex):
    name = "qdrant"

    def __init__(self, conn: QdrantConnection, collection: str = "semcache", *,
                 dim: int | None = None, model_id: str | None = None,
                 quantization: str | None = None, hnsw_ef: int | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        check_collection_name(collection)
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
        self.skipped = 0  #: malformed points skipped (and logged) by this process's searches
        #: entries whose malformed observations an observe replaced (and logged)
        self.repaired = 0

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
    def _add(self, c: Client, entries: Sequence[IndexEntry],
             vectors: np.ndarray) -> Program[None]:
        if self._dim is None and self.collection not in self.conn.ready:
            yield from self._ensure(c)  # an existing collection tells us its dimension
        vecs = check_vectors(vectors, len(entries), self._dim or np.shape(vectors)[-1])
        if not entries:
            return None
        yield from self._ensure(c, vecs.shape[1])
        last = {e.key: i for i, e in enumerate(entries)}  # one batch, one key: last wins
        ids = {k: point_id(k) for k in last}
        found = yield partial(c.retrieve, collection_name=self.collection,
                              ids=list(ids.values()), with_payload=False, with_vectors=False)
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
            yield partial(c.upsert, collection_name=self.collection, points=new, wait=True)
        if ops:
            yield partial(c.batch_update_points, collection_name=self.collection,
                          update_operations=ops, wait=True)
        yield from self._wrote(c, len(last))
        return None

    def _observe(self, c: Client, key: str, obs: Observation) -> Program[bool]:
        """One payload key per observation under ``o`` (``set_payload`` with ``key``
        merges), so concurrent observers never overwrite each other."""
        if not (yield from self._ensure(c)):
            return False
        pid = point_id(key)
        found = yield partial(c.retrieve, collection_name=self.collection, ids=[pid],
                              with_payload=models.PayloadSelectorInclude(include=["k", "o"]),
                              with_vectors=False)
        if not found or found[0].payload.get("k") != key:
            return False
        have, bad = _valid_observations(found[0].payload.get("o"))
        name = f"{time.time_ns():020d}{uuid.uuid4().hex[:6]}"
        if bad:  # another writer's "o": rewritten from the readable ones (the search
            # skips a point whose "o" it cannot read, so left alone it never serves)
            self.repaired += 1
            log.warning("Qdrant collection %r (%s): entry %r had malformed observations "
                        "(%s); replaced them, keeping %d readable ones", self.collection,
                        self.conn.describe(), key, bad, min(len(have), MAX_OBSERVATIONS - 1))
        if bad or len(have) >= 2 * MAX_OBSERVATIONS:  # compact now and then: only here
            keep = dict(sorted(have.items())[-(MAX_OBSERVATIONS - 1):])  # can a racing
            keep[name] = obs.to_json()  # observation be lost
            yield partial(c.set_payload, collection_name=self.collection, wait=True,
                          payload={"o": keep}, points=[pid])
        else:
            yield partial(c.set_payload, collection_name=self.collection, wait=True,
                          payload={name: obs.to_json()}, key="o", points=[pid])
        return True

    def _search(self, c: Client, vector: np.ndarray, context: str, k: int,
                now: float) -> Program[list[Candidate]]:
        check_k(k)
        if self._dim is None and self.collection not in self.conn.ready:
            yield from self._ensure(c)
        if self._dim is None:  # nothing was ever added: still reject bad input
            check_vectors(vector, 1, np.shape(vector)[-1])
            return []
        q = check_vectors(vector, 1, self._dim)[0]
        exists = yield from self._ensure(c)
        if not exists:
            return []
        params = None
        if not self.conn.embedded:  # search params are ignored (and warn) embedded
            params = models.SearchParams(hnsw_ef=self.hnsw_ef, quantization=(
                models.QuantizationSearchParams(rescore=True, oversampling=2.0)
                if self.quantization else None))
        res = yield partial(
            c.query_points, collection_name=self.collection, query=q.tolist(), limit=k,
            query_filter=models.Filter(must=[match("ctx", context), not_expired(now)]),
            with_payload=True, search_params=params)
        found, skipped = candidates(res.points, _candidate, f"Qdrant collection "
                                    f"{self.collection!r} ({self.conn.describe()})")
        self.skipped += skipped
        return found

    def _delete_if_unchanged(self, c: Client, cand: Candidate) -> Program[bool]:
        """One delete by filter, which Qdrant applies atomically: this key's point only
        while its payload still has the candidate's created and expiry times (a writer
        between the count and the delete makes the answer, not the delete, wrong)."""
        x = cand.expires_at
        flt = models.Filter(must=[
            models.HasIdCondition(has_id=[point_id(cand.key)]), match("k", cand.key),
            models.FieldCondition(key="c", range=models.Range(gte=cand.created_at,
                                                              lte=cand.created_at)),
            models.IsEmptyCondition(is_empty=models.PayloadField(key="x")) if x is None
            else models.FieldCondition(key="x", range=models.Range(gte=x, lte=x))])
        return bool((yield from self._delete_where(c, flt)))

    # -- the seam (delete, clear, ping and close are Collection's) --
    def add(self, entries: Sequence[IndexEntry], vectors: np.ndarray) -> None:
        self.conn.run(self._add, entries, vectors)

    def search(self, vector: np.ndarray, context: str, k: int = 4,
               now: float | None = None) -> list[Candidate]:
        return self.conn.run(
            self._search, vector, context, k, self._clock() if now is None else now)

    def count(self, namespace: str | None = None) -> int:
        return self.conn.run(self._namespace, namespace, False)

    def delete_if_unchanged(self, candidate: Candidate) -> bool:
        return self.conn.run(self._delete_if_unchanged, candidate)

    def observe(self, key: str, observation: Observation) -> bool:
        return self.conn.run(self._observe, key, observation)

    async def aobserve(self, key: str, observation: Observation) -> bool:
        return await self.conn.arun(self._observe, key, observation)

    async def aadd(self, entries: Sequence[IndexEntry], vectors: np.ndarray) -> None:
        await self.conn.arun(self._add, entries, vectors)

    async def asearch(self, vector: np.ndarray, context: str, k: int = 4,
                      now: float | None = None) -> list[Candidate]:
        return await self.conn.arun(
            self._search, vector, context, k, self._clock() if now is None else now)

    async def acount(self, namespace: str | None = None) -> int:
        return await self.conn.arun(self._namespace, namespace, False)

    async def adelete_if_unchanged(self, candidate: Candidate) -> bool:
        return await self.conn.arun(self._delete_if_unchanged, candidate)

    def __repr__(self) -> str:
        return (f"QdrantIndex(collection={self.collection!r}, at={self.conn.describe()!r}, "
                f"dim={self._dim}, model_id={self.model_id!r})")


def _candidate(p: Any) -> Candidate:
    """A point's candidate; a payload this module did not write raises (see
    ``candidates``, which skips that point)."""
    d = p.payload
    return candidate(d["k"], p.score, d["p"], d["c"], d.get("x"), _observations(d.get("o")))


def _observations(stored: dict[str, Any] | None) -> tuple[Observation, ...]:
    if not stored:
        return ()
    if not isinstance(stored, dict):
        raise TypeError(f"observations are an object, not {type(stored).__name__}")
    return tuple(Observation.from_json(v) for _, v in sorted(stored.items()))[
        -MAX_OBSERVATIONS:]


def _valid_observations(stored: Any) -> tuple[dict[str, Any], str | None]:
    """The readable observations of a stored ``"o"``, and what was wrong with the rest
    (None when nothing was)."""
    if stored is None or stored == {}:
        return {}, None
    if not isinstance(stored, dict):
        return {}, f"an {type(stored).__name__}, not an object"
    good: dict[str, Any] = {}
    for k, v in stored.items():
        try:
            Observation.from_json(v)
        except (TypeError, ValueError):
            continue
        good[k] = v
    n = len(stored) - len(good)
    return good, (f"{n} of {len(stored)} unreadable" if n else None)


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


