"""Keys semcache writes for itself inside a namespace (the learning policy's state, the
cross-process single-flight lock, the proxy's health probe) are out of reach of a
caller's ``cache_key``: on a real Redis, nobody can read them as an answer, overwrite
them with one, or plant a lock that stalls another request."""

from __future__ import annotations

import uuid

import pytest

from semcache import Cache, InvalidRequestError
from semcache._flight import redis_lock
from semcache._record import Record
from semcache.policies.learning import POLICY_STATE

MSGS = [{"role": "user", "content": "what is the capital of France?"}]
ANSWER = {"id": "x", "object": "chat.completion", "model": "m",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris"},
                       "finish_reason": "stop"}]}


@pytest.fixture
def cache(redis_stack_url):
    c = Cache(type="redis", redis_url=redis_stack_url,
              namespace="rk-" + uuid.uuid4().hex[:8])
    yield c
    c.flush()
    c.close()


def test_the_policy_state_is_neither_served_nor_overwritten(cache):
    state_key = f"{cache.namespace}:{POLICY_STATE}"
    state = {"v": 1, "cells": [[1, 2, 3, 4, 5, 6, 10, 9]]}
    saved = cache._codec.encode(Record(state_key, state, 1.0, None, "policy"))
    cache.store.set(state_key, saved)
    for custom in (POLICY_STATE, state_key):
        with pytest.raises(InvalidRequestError, match="__semcache_"):
            cache.lookup(model="m", messages=MSGS, cache_key=custom)
        with pytest.raises(InvalidRequestError, match="__semcache_"):
            cache.add_cache(ANSWER, model="m", messages=MSGS, cache_key=custom)
        with pytest.raises(InvalidRequestError, match="__semcache_"):
            cache.add_cache(ANSWER, model="m", messages=MSGS,
                            metadata={"cache_key": custom})
    assert cache.store.get(state_key) == saved


def test_a_flight_lock_cannot_be_planted(cache):
    victim = cache.get_cache_key(model="m", messages=MSGS)
    lock = redis_lock(cache, victim)
    assert lock is not None
    digest = victim.split(":", 1)[1]
    with pytest.raises(InvalidRequestError, match="__semcache_"):
        cache.add_cache(ANSWER, model="m", messages=[{"role": "user", "content": "x"}],
                        cache_key=f"{digest}:__semcache_flight__", ttl=3600)
    assert cache.store.get(lock.name) is None
    release = lock.acquire()  # the ordinary request still leads its own miss
    assert release is not None
    release()


def test_ordinary_custom_keys_still_work(cache):
    for custom in ("faq-1", "semcache_x", "__x__", "a:b"):
        cache.add_cache(ANSWER, model="m", messages=MSGS, cache_key=custom)
        hit = cache.lookup(model="m", messages=MSGS, cache_key=custom)
        assert hit is not None and hit.value["choices"][0]["message"]["content"] == "Paris"
