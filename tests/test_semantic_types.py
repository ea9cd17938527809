"""The semantic types end to end through ``Cache(type=...)`` with the real local
embedder: a paraphrase hit with its similarity and matched prompt, no hit across
contexts, TTL expiry and namespace flush."""

from __future__ import annotations

import uuid

import pytest

from semcache import Cache
from tests.contracts.exact_store import wait_until

Q = "What is the capital of France?"
PARAPHRASE = "What is the French capital?"  # the default verifier serves it (0.94)


def _req(text: str, model: str = "gpt-4o-mini", **extra):
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture(params=["qdrant-semantic", "redis-semantic", "faiss-semantic"])
def semantic_cache(request, tmp_path):
    if request.param == "qdrant-semantic":
        params = {"qdrant_collection_name": "e2e", "qdrant_path": str(tmp_path / "q")}
    elif request.param == "redis-semantic":
        params = {"redis_url": request.getfixturevalue("redis_stack_url"),
                  "redis_semantic_cache_index_name": "e2e" + uuid.uuid4().hex[:6]}
    else:
        params = {"disk_cache_dir": str(tmp_path / "f")}
    cache = Cache(type=request.param, similarity_threshold=0.8,
                  namespace="n" + uuid.uuid4().hex[:8], **params)
    yield cache
    if request.param == "redis-semantic":
        cache.index.drop()
    cache.close()


def test_paraphrase_hit_with_similarity_and_prompt(semantic_cache: Cache) -> None:
    c = semantic_cache
    c.add_cache({"answer": "Paris"}, **_req(Q))
    hit, meta = c.lookup_with_metadata(**_req(PARAPHRASE))
    assert hit is not None and hit.value == {"answer": "Paris"}
    assert meta["stage"] == "semantic"
    assert 0.8 <= meta["similarity"] < 1.0
    assert meta["matched_prompt"] == Q
    exact, meta = c.lookup_with_metadata(**_req(Q))
    assert exact is not None and meta["stage"] == "exact" and meta["similarity"] == 1.0


def test_unrelated_is_a_miss_with_nearest(semantic_cache: Cache) -> None:
    c = semantic_cache
    c.add_cache({"answer": "Paris"}, **_req(Q))
    hit, meta = c.lookup_with_metadata(**_req("How do I bake sourdough bread?"))
    assert hit is None and meta["stage"] == "miss"
    assert meta["nearest_similarity"] < 0.8


def test_no_hit_across_contexts(semantic_cache: Cache) -> None:
    c = semantic_cache
    c.add_cache({"answer": "Paris"}, **_req(Q))
    assert c.lookup(**_req(PARAPHRASE, model="other-model")) is None
    assert c.lookup(**_req(PARAPHRASE, temperature=1.5)) is None
    assert c.lookup(**_req(PARAPHRASE)) is not None


def test_ttl_expiry(semantic_cache: Cache) -> None:
    c = semantic_cache
    c.add_cache({"answer": "Paris"}, **_req(Q, cache={"ttl": 1}))
    assert c.lookup(**_req(PARAPHRASE)) is not None
    assert wait_until(lambda: c.lookup(**_req(PARAPHRASE)) is None, timeout=10)
    assert c.lookup(**_req(Q)) is None


def test_flush_is_scoped_to_namespace(semantic_cache: Cache) -> None:
    c = semantic_cache
    c.add_cache({"answer": "Paris"}, **_req(Q))
    c.add_cache({"answer": "Paris (B)"}, **_req(Q, cache={"namespace": "other"}))
    c.flush()
    assert c.lookup(**_req(PARAPHRASE)) is None
    assert c.index.count(c.namespace) == 0
    hit = c.lookup(**_req(PARAPHRASE, cache={"namespace": "other"}))
    assert hit is not None and hit.value == {"answer": "Paris (B)"}
    c.flush("other")


async def test_async_paraphrase_hit(semantic_cache: Cache) -> None:
    c = semantic_cache
    await c.async_add_cache({"answer": "Paris"}, **_req(Q))
    hit, meta = await c.alookup_with_metadata(**_req(PARAPHRASE))
    assert hit is not None and meta["stage"] == "semantic"
    assert meta["matched_prompt"] == Q
