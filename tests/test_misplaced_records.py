"""A record stored under another entry's key (copied, or planted by a process that can
write to the backend) is never served, and is counted and logged as an integrity miss:
before, the miss was silent (integrity_rejections and errors_total both 0)."""

from __future__ import annotations

import pytest

from semcache import Cache, IntegrityError

A = {"model": "m", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
B = {"model": "m", "messages": [{"role": "user", "content": "How do I reset my password?"}]}


def _planted(cache: Cache, under: dict, record_of: dict) -> None:
    """Write ``record_of``'s stored bytes under ``under``'s key, straight to the store."""
    cache.add_cache({"answer": "for B"}, **record_of)
    raw = cache.store.get(cache.get_cache_key(**record_of))
    assert raw is not None
    cache.store.set(cache.get_cache_key(**under), raw)


def test_another_entrys_record_under_a_key_is_a_counted_integrity_miss(minilm):
    for cache in (Cache(type="local"), Cache(type="faiss-semantic", embedder=minilm)):
        _planted(cache, A, B)
        assert cache.get_cache(**A) is None
        s = cache.stats()
        assert s["integrity_rejections"] == 1, s
        hit, meta = cache.lookup_with_metadata(**A)
        assert hit is None and any("another entry's" in e for e in meta["errors"])
        assert cache.get_cache(**B) == {"answer": "for B"}  # its own key still serves it


def test_a_semantic_candidate_whose_record_is_another_entrys_is_skipped_and_counted(minilm):
    cache = Cache(type="faiss-semantic", embedder=minilm, similarity_threshold=0.5,
                  verifier=None)
    cache.add_cache({"answer": "Paris"}, **A)
    _planted(cache, A, B)  # A's index entry now leads to B's record
    para = {"model": "m", "messages": [{"role": "user",
                                        "content": "what's the capital city of France"}]}
    assert cache.lookup(**para) is None
    assert cache.stats()["integrity_rejections"] >= 1


def test_on_error_raise_raises_it(minilm):
    cache = Cache(type="local", on_error="raise")
    _planted(cache, A, B)
    with pytest.raises(IntegrityError, match="another entry's"):
        cache.get_cache(**A)
