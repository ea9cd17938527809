"""What ``Cache.feedback`` returns: True only when the report reached a live entry.

It returned True whatever happened: for a key deleted or expired before the report, and
for a report the backend never received (down: the delete failed open). A caller who
reported a wrong answer was told it was dealt with when nothing had been done."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from semcache import Cache
from semcache_testing.servers import free_port


def ask(q: str) -> dict:
    return dict(model="m", messages=[{"role": "user", "content": q}])


@pytest.fixture(params=["local", "redis"])
def cache(request):
    clock = [1_000.0]
    if request.param == "local":
        c = Cache(type="local", clock=lambda: clock[0])
    else:
        url = request.getfixturevalue("redis_stack_url")
        c = Cache(type="redis", redis_url=url, namespace="fb" + uuid.uuid4().hex[:8],
                  clock=lambda: clock[0])
    c.test_clock = clock
    yield c
    c.flush()
    c.close()


@pytest.mark.parametrize("correct", [False, True])
def test_feedback_on_a_live_entry_is_true(cache, correct) -> None:
    key = cache.add_cache({"answer": "a"}, **ask("q"))
    assert cache.feedback(key, correct=correct) is True
    assert (cache.lookup(**ask("q")) is None) is not correct  # a wrong one is deleted


@pytest.mark.parametrize("correct", [False, True])
def test_feedback_on_a_deleted_entry_is_false(cache, correct) -> None:
    key = cache.add_cache({"answer": "a"}, **ask("q"))
    hit = cache.lookup(**ask("q"))
    assert hit is not None
    cache.delete(key)
    assert cache.feedback(hit, correct=correct) is False
    assert asyncio.run(cache.afeedback(key, correct=correct)) is False


@pytest.mark.parametrize("correct", [False, True])
def test_feedback_on_an_expired_entry_is_false(cache, correct) -> None:
    key = cache.add_cache({"answer": "a"}, ttl=60, **ask("q"))
    cache.test_clock[0] += 61  # past the entry's expiry (the store may still hold it)
    assert cache.lookup(**ask("q")) is None
    assert cache.feedback(key, correct=correct) is False


def test_feedback_the_backend_never_received_is_false() -> None:
    c = Cache(type="redis", host="127.0.0.1", port=free_port(), socket_timeout=0.5,
              socket_connect_timeout=0.5)
    try:
        key = c.get_cache_key(**ask("q"))
        assert c.feedback(key, correct=False) is False  # fails open, but says so
        assert c.stats()["errors_total"] >= 1
    finally:
        c.close()


def test_semantic_feedback_on_a_deleted_entry_is_false(minilm) -> None:
    c = Cache(type="faiss-semantic", embedder=minilm, similarity_threshold=0.6)
    c.add_cache({"answer": "practice"}, **ask("How do I learn Python quickly?"))
    hit = c.lookup(**ask("What is the fastest way to learn Python?"))
    assert hit is not None and hit.stage == "semantic"
    c.delete(hit.key)
    assert c.feedback(hit, correct=False) is False
    c.close()
