"""Every VectorIndex agrees with a brute-force numpy reference: for random vectors,
contexts, replacements and expiries, the filtered top-1 key and similarity (within 1e-4)
are the same on FAISS (exact and forced approximate), Qdrant (embedded) and RedisVL."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semcache._connections.redis import RedisConnection
from semcache.indexes.base import IndexEntry, VectorIndex
from semcache.indexes.faiss import FaissIndex
from semcache.indexes.qdrant import QdrantConnection, QdrantIndex
from semcache.indexes.redisvl import RedisVLIndex

DIM = 8
T0 = 1_700_000_000.0
TOL = 1e-4


@pytest.fixture(scope="module")
def indexes(redis_stack_url):
    made: dict[str, VectorIndex] = {
        "faiss-flat": FaissIndex(DIM),
        "faiss-approximate": FaissIndex(DIM, approx_threshold=2),
        "faiss-compact": FaissIndex(DIM, approx_threshold=None, compact_threshold=2),
        "qdrant-embedded": QdrantIndex(QdrantConnection(), "congruence"),
        "redisvl-flat": RedisVLIndex(RedisConnection(url=redis_stack_url),
                                     "cong" + uuid.uuid4().hex[:8]),
        "redisvl-hnsw": RedisVLIndex(RedisConnection(url=redis_stack_url),
                                     "cong" + uuid.uuid4().hex[:8], algorithm="hnsw"),
    }
    yield made
    for idx in made.values():
        if isinstance(idx, RedisVLIndex):
            idx.drop()
        idx.close()


vectors = st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=DIM, max_size=DIM) \
    .filter(lambda v: np.linalg.norm(v) > 1e-3)
writes = st.lists(st.tuples(st.integers(0, 15),                   # key (collisions replace)
                            st.integers(0, 2),                    # context
                            st.one_of(st.none(), st.integers(1, 100)),  # expiry offset
                            vectors), min_size=1, max_size=30)


def _unit(v) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(writes=writes, deletes=st.sets(st.integers(0, 15), max_size=4),
       queries=st.lists(st.tuples(vectors, st.integers(0, 3), st.integers(0, 110)),
                        min_size=1, max_size=4))
def test_top1_matches_brute_force(indexes, writes, deletes, queries) -> None:
    ns = "c" + uuid.uuid4().hex[:10]
    ref: dict[str, tuple[np.ndarray, str, float | None]] = {}
    entries, vecs = [], []
    for key, ctx, exp, v in writes:
        e = IndexEntry(f"{ns}:{key}", f"{ns}/{ctx}", ns, f"p{key}", T0,
                       None if exp is None else T0 + exp)
        entries.append(e)
        vecs.append(_unit(v))
        ref[e.key] = (vecs[-1], e.context, e.expires_at)
    doomed = [f"{ns}:{k}" for k in deletes]
    for k in doomed:
        ref.pop(k, None)
    for idx in indexes.values():
        # writes in two batches, so replacements also happen across calls
        half = len(entries) // 2
        if half:
            idx.add(entries[:half], np.stack(vecs[:half]))
        idx.add(entries[half:], np.stack(vecs[half:]))
        idx.delete(doomed)
    for qv, ctx, at in queries:
        q, context, now = _unit(qv), f"{ns}/{ctx}", T0 + at
        live = [(float(v @ q), k) for k, (v, c, x) in ref.items()
                if c == context and (x is None or x > now)]
        best = max(live, default=None)
        for name, idx in indexes.items():
            got = idx.search(q, context, k=1, now=now)
            if best is None:
                assert got == [], name
                continue
            assert len(got) == 1, name
            (c,) = got
            assert abs(c.similarity - best[0]) <= TOL, (name, c, best)
            # the same key, unless another live entry ties within the tolerance
            tied = {k for s, k in live if s >= best[0] - TOL}
            assert c.key in tied, (name, c.key, tied)
    for idx in indexes.values():
        idx.clear(ns)
