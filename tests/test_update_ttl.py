"""``Cache.update_ttl`` on a semantic cache: the exact store and the vector index carry
the same expiry afterwards, or, when the embedder or the index fails, both keep the old
one and the caller gets a typed ``BackendError`` (never a raw error, never a store with
the new TTL beside an index with the old, where exact hits outlive semantic ones).

A real Redis Stack holds the answers; the index is the real embedded FAISS index, and
the doubles below fail on demand the way a crashed model or a full disk would."""

from __future__ import annotations

import pytest

from semcache import BackendError, Cache
from semcache.exact.redis import RedisStore
from semcache.indexes.faiss import FaissIndex

from .conftest import FakeClock
from .writers_support import Hashing

REQ = {"model": "m", "messages": [{"role": "user", "content": "how long do you keep me"}]}


class FlakyEmbedder(Hashing):
    fail = False

    def _embed(self, texts):
        if self.fail:
            raise RuntimeError("onnxruntime: model session crashed")
        return super()._embed(texts)


class FlakyIndex(FaissIndex):
    fail = False

    def add(self, entries, vectors):
        if self.fail:
            raise OSError(28, "No space left on device")
        return super().add(entries, vectors)


@pytest.fixture
def setup(redis_stack_url):
    clock = FakeClock()
    emb, index = FlakyEmbedder(cache_size=0), FlakyIndex(16, clock=clock)
    store = RedisStore(url=redis_stack_url)
    cache = Cache(type=None, store=store, index=index, embedder=emb, clock=clock,
                  similarity_threshold=0.9, namespace="ttlupd" + str(id(clock))[-6:])
    key = cache.add_cache({"answer": 1}, ttl=60, **REQ)
    yield cache, emb, index, clock, key
    cache.flush()
    cache.close()


def _state(cache: Cache, key: str, clock: FakeClock) -> tuple[bool, bool]:
    """(an exact hit, the index still offers the entry) at the clock's time."""
    exact = cache.lookup(**REQ) is not None
    rec = cache._codec.decode(cache.store.get(key)) if cache.store.get(key) else None
    ctx = rec.context if rec is not None else None
    vec = cache.embedder.embed([rec.prompt])[0] if rec is not None else None
    semantic = bool(ctx and cache.index.search(vec, ctx, 4, now=clock()))
    return exact, semantic


@pytest.mark.parametrize("broken", ["embedder", "index"])
def test_a_failed_update_changes_nothing_and_is_typed(setup, broken):
    cache, emb, index, clock, key = setup
    (emb if broken == "embedder" else index).fail = True
    with pytest.raises(BackendError) as info:
        cache.update_ttl(key, 3600)
    assert info.value.backend == ("embedder" if broken == "embedder" else "faiss")
    emb.fail = index.fail = False
    _, left = cache.store.get_with_ttl(key)
    assert left is not None and left <= 60  # the store kept the old TTL
    clock.advance(30)
    assert _state(cache, key, clock) == (True, True)
    clock.advance(31)  # past the old expiry: exact and semantic hits stop together
    assert _state(cache, key, clock) == (False, False)


def test_a_successful_update_moves_both_expiries(setup):
    cache, emb, index, clock, key = setup
    assert cache.update_ttl(key, 3600) is True
    clock.advance(61)
    assert _state(cache, key, clock) == (True, True)
    clock.advance(3600)
    assert _state(cache, key, clock) == (False, False)


def test_the_proxy_answers_a_failed_index_with_a_503_naming_the_key():
    """An index's own error (here an OSError) escaped update_ttl raw: through the
    proxy's /cache/ttl, a 500. Now a 503 naming the key, the store left as it was."""
    import httpx

    from semcache.exact.memory import MemoryStore
    from semcache_testing.fake_openai import FakeOpenAI

    from .proxy_helpers import Proxies, master

    index = FlakyIndex(16)
    cache = Cache(type=None, store=MemoryStore(), index=index, embedder=Hashing(),
                  similarity_threshold=0.9)
    key = cache.add_cache({"answer": 1}, ttl=60, **REQ)
    with FakeOpenAI() as fake:
        proxies = Proxies(fake.base_url)
        try:
            proxy = proxies.start(cache=cache)
            index.fail = True
            r = httpx.post(proxy.url + "/cache/ttl", json={"keys": [key], "ttl": 3600},
                           headers=master())
        finally:
            proxies.stop()
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"]["code"] == "backend_unavailable" and "faiss" in body["error"]["message"]
    assert body["failed_key"] == key and body["updated"] == {}
    assert cache.store.get_with_ttl(key)[1] <= 60
