"""The sync ``embedding()`` looks a batch's items up together against a remote store,
as ``aembedding`` does, instead of one round trip after another (issue #22)."""

# ruff: noqa: F811

from __future__ import annotations

import threading
import uuid

import semcache
from semcache import Cache
from semcache.exact.redis import RedisStore
from tests.calls_support import POOL, fake, fake_server, kw  # noqa: F401


class PairedRedis(RedisStore):
    """A real Redis store whose lookups each wait until another one is in flight: one
    after another, the first waits out its timeout and the barrier breaks."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.barrier = threading.Barrier(2, timeout=5)
        self.broken = 0

    def get(self, key: str):
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            self.broken += 1
            self.barrier.reset()
        return super().get(key)


def test_sync_batch_lookups_overlap(fake, kw, redis_stack_url):
    store = PairedRedis.from_params(redis_url=redis_stack_url)
    semcache.cache = cache = Cache(type=None, store=store,
                                   namespace=f"batch-{uuid.uuid4().hex[:8]}")
    try:
        items = ["apple", "banana", "cherry", "date"]
        first = semcache.embedding(model="e", input=items, **kw)
        again = semcache.embedding(model="e", input=items, **kw)
        assert store.broken == 0  # every lookup had company: they ran together
        assert fake.calls["embeddings"] == 1 and again._hidden_params["cache_hits"] == 4
        assert [d.embedding for d in again.data] == [d.embedding for d in first.data]
    finally:
        cache.flush()
        cache.close()
