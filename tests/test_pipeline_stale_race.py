"""A lookup's cleanup of a stale candidate never removes a fresh entry (the race of a
store read that found nothing and a writer that re-stored the key just after it).

The lookup read the candidate's answer from the exact store and found nothing (evicted,
deleted, expired); before it dropped the dangling vector, another caller stored the same
request again (store, then index add). An unconditional ``index.delete([key])`` then
removed the *fresh* vector: the new answer stayed in the store but no paraphrase could
reach it any more. The interleaving is driven deterministically: the store's ``get`` of
the candidate re-stores the request before it answers None, which is exactly the race.
Each index: FAISS in memory and on a folder, Qdrant's local mode, RedisVL on Redis Stack.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from semcache import Cache
from semcache.embedders.base import Embedder
from semcache.exact.memory import MemoryStore
from semcache.indexes.base import VectorIndex

Q = "How do I learn Python quickly?"
PARA = "What is the fastest way to learn Python?"


def ask(q: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": q}]}


class Same(Embedder):
    """Every prompt is one vector: the earlier entry is the paraphrase's candidate."""

    model_id = "same"
    dim = 4

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), 4), np.float32)


class Racing(MemoryStore):
    """A store whose read of ``key`` runs ``before`` first, then answers None: the
    writer re-stored the request between the lookup's read and its cleanup."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock=clock)
        self.key: str | None = None
        self.before: Callable[[], object] | None = None

    def get(self, key: str) -> bytes | None:
        if key == self.key and self.before is not None:
            before, self.before = self.before, None
            before()
            return None  # what the read saw, before the writer's store landed
        return super().get(key)


@pytest.fixture(params=["faiss-memory", "faiss-folder", "qdrant-local", "redisvl"])
def make_index(request, tmp_path) -> Iterator[Callable[[Callable[[], float]], VectorIndex]]:
    made: list[VectorIndex] = []

    def make(clock: Callable[[], float]) -> VectorIndex:
        idx: VectorIndex
        if request.param.startswith("faiss"):
            from semcache.indexes.faiss import FaissIndex

            path = tmp_path / "idx" if request.param == "faiss-folder" else None
            idx = FaissIndex(path=path, model_id="same", clock=clock)
        elif request.param == "qdrant-local":
            from semcache.indexes.qdrant import QdrantConnection, QdrantIndex

            idx = QdrantIndex(QdrantConnection(), "vec", model_id="same", clock=clock)
        else:
            from semcache._connections.redis import RedisConnection
            from semcache.indexes.redisvl import RedisVLIndex

            url = request.getfixturevalue("redis_stack_url")
            idx = RedisVLIndex(RedisConnection(url=url), "t" + uuid.uuid4().hex[:10],
                               model_id="same", clock=clock)
        made.append(idx)
        return idx

    yield make
    for idx in made:
        drop = getattr(idx, "drop", None)
        if drop is not None:
            drop()
        idx.close()


def _cache(make_index, clock) -> tuple[Cache, Racing, VectorIndex]:
    store, index = Racing(clock), make_index(clock)
    c = Cache(type=None, store=store, index=index, embedder=Same(),
              similarity_threshold=0.5, clock=clock, on_error="raise")
    return c, store, index


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_key_restored_during_the_cleanup_keeps_its_vector(make_index, clock,
                                                             flavour) -> None:
    c, store, index = _cache(make_index, clock)
    key = c.add_cache({"answer": "old"}, **ask(Q))
    store.delete([key])  # the answer vanished (evicted): its vector is stale

    def restore() -> None:  # another caller answers the same request meanwhile
        clock.advance(1)
        c.add_cache({"answer": "fresh"}, **ask(Q))

    store.key, store.before = key, restore
    if flavour == "sync":
        assert c.lookup(**ask(PARA)) is None
    else:
        assert asyncio.run(c.alookup(**ask(PARA))) is None
    assert store.before is None  # the race did run
    assert index.count(c.namespace) == 1, "the fresh entry's vector was removed"
    hit = c.lookup(**ask(PARA))
    assert hit is not None and hit.value == {"answer": "fresh"}
    assert c.stats()["stale_candidates_removed"] == 0


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_vector_whose_answer_vanished_is_still_removed(make_index, clock,
                                                         flavour) -> None:
    c, store, index = _cache(make_index, clock)
    key = c.add_cache({"answer": "old"}, **ask(Q))
    store.delete([key])
    if flavour == "sync":
        assert c.lookup(**ask(PARA)) is None
    else:
        assert asyncio.run(c.alookup(**ask(PARA))) is None
    assert index.count(c.namespace) == 0
    assert c.stats()["stale_candidates_removed"] == 1
