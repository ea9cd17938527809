"""``local`` is a bounded LRU, exactly as configured (issue 21): LiteLLM's
"Cache size is bounded for in-memory backends to prevent memory exhaustion".

Before: the in-memory names built a 60 s front tier over a default 10,000-entry store,
so ``max_size_in_memory=100`` kept 2,000 entries, ``max_size_per_item=1`` stored a
500 KB item and ``max_size_in_memory=50000`` was capped at 10,000."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semcache import Cache
from semcache._registry import build_backends
from semcache.exact.memory import MemoryStore
from semcache.exact.tiered import TieredStore

from .writers_support import Hashing


def _fill(cache: Cache, n: int, value: object = "v") -> None:
    for i in range(n):
        cache.add_cache(value, cache_key=f"k{i}")


def test_local_keeps_at_most_max_size_in_memory():
    c = Cache(type="local", max_size_in_memory=100)
    _fill(c, 2000)
    assert type(c.store) is MemoryStore  # no tier in front of an in-process store
    assert len(c.store) == 100
    assert c.get_cache(cache_key="k1899") is None  # the oldest went first
    assert c.get_cache(cache_key="k1999") == "v"


def test_local_bound_above_the_default_is_honoured():
    c = Cache(type="local", max_size_in_memory=10_500)
    _fill(c, 10_600)
    # exactly the bound: neither the old 10,000 default behind a front tier nor more
    assert len(c.store) == 10_500
    assert c.get_cache(cache_key="k100") == "v" and c.get_cache(cache_key="k99") is None


@settings(max_examples=25, deadline=None)
@given(bound=st.integers(1, 40), adds=st.lists(st.integers(0, 60), max_size=120))
def test_lru_bound_matches_a_reference_model(bound, adds):
    """Whatever the bound and the sequence of writes (repeats refresh recency), the
    store holds exactly the ``bound`` most recently written keys."""
    s = MemoryStore(max_size_in_memory=bound)
    ref: list[int] = []
    for k in adds:
        s.set(f"n:{k}", b"x")
        if k in ref:
            ref.remove(k)
        ref.append(k)
        del ref[:-bound]
    assert len(s) == len(ref)
    assert {k for k in range(61) if s.get(f"n:{k}") is not None} == set(ref)


def test_local_refuses_an_item_over_max_size_per_item(caplog):
    c = Cache(type="local", max_size_per_item=1)  # KB, LiteLLM's unit
    with caplog.at_level(logging.WARNING, logger="semcache"):
        assert c.add_cache("x" * 500_000, cache_key="big") is None  # not stored
    assert c.get_cache(cache_key="big") is None
    assert c.store.rejected_oversize == 1
    assert any("max_size_per_item=1 KB" in r.getMessage() for r in caplog.records)
    assert c.add_cache("small", cache_key="small") is not None
    assert c.get_cache(cache_key="small") == "small"


def test_default_in_memory_ttl_is_the_local_cache_ttl(clock):
    c = Cache(type="local", default_in_memory_ttl=5, clock=clock)
    assert c.ttl == 5.0 and type(c.store) is MemoryStore


def test_remote_types_still_get_the_front_tier():
    # the two-tier store is built only in front of a remote store (no server needed:
    # building the client does not connect)
    store, _ = build_backends("redis", {"host": "127.0.0.1", "port": 1,
                                        "max_size_in_memory": 7}, None)
    assert isinstance(store, TieredStore)
    assert isinstance(store.front, MemoryStore) and store.front.max_entries == 7
    store.close()


def test_faiss_semantic_index_is_bounded_with_the_store():
    c = Cache(type="faiss-semantic", embedder=Hashing(), max_size_in_memory=50)
    for i in range(300):
        c.add_cache(f"a{i}", model="m", messages=[{"role": "user", "content": f"q{i}"}])
    assert len(c.store) == 50
    # evicting an answer removes its vector and prompt (before: 300 vectors, 50 answers)
    assert c.index.count(c.namespace) == 50
    assert c.store.evicted == 250


def test_faiss_semantic_never_indexes_what_the_store_refused():
    c = Cache(type="faiss-semantic", embedder=Hashing(), max_size_per_item=1)
    msgs = [{"role": "user", "content": "a question"}]
    assert c.add_cache("x" * 5000, model="m", messages=msgs) is None
    assert c.index.count(c.namespace) == 0
    assert c.add_cache("ok", model="m", messages=msgs) is not None
    assert c.index.count(c.namespace) == 1


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "10"])
def test_bounds_are_validated(bad):
    from semcache import ConfigError

    with pytest.raises(ConfigError) as e:
        Cache(type="local", max_size_in_memory=bad)
    assert e.value.parameter == "max_size_in_memory"
