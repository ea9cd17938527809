"""``Cache.feedback``: what a caller's report may touch, and what it may store as evidence.

A report names an entry by key (or by a hit's metadata, which a caller can build by
hand): it may only ever touch an entry of the cache's own namespace, and only a
well-formed similarity becomes an observation the policy and the index keep."""

from __future__ import annotations

import math

import pytest

from semcache import Cache, ConfigError
from semcache._keys import semantic_split
from semcache.indexes.base import Observation
from semcache.policies.verified import VerifiedPolicy


def ask(q, **kw):
    return dict(model="m", messages=[{"role": "user", "content": q}], **kw)


Q = "How do I learn Python quickly?"
PARA = "What is the fastest way to learn Python?"


def observations(c, minilm, key, q=Q):
    context = semantic_split(c.namespace, "completion", ask(q)).context
    return [x.observations for x in c.index.search(minilm.embed([q])[0], context)
            if x.key == key]


def two_namespaces(tmp_path, minilm):
    a, b = (Cache(type="faiss-semantic", embedder=minilm, disk_cache_dir=str(tmp_path),
                  namespace=ns, similarity_threshold=0.6) for ns in ("a", "b"))
    a.add_cache({"answer": "practice"}, **ask(Q))
    return a, b, a.get_cache_key(**ask(Q))


def test_feedback_cannot_delete_or_mark_another_namespaces_entry(tmp_path, minilm):
    a, b, key = two_namespaces(tmp_path, minilm)
    with pytest.raises(ConfigError, match="namespace"):
        b.feedback(key, correct=False)  # an exact report deletes: not a's entry
    with pytest.raises(ConfigError, match="namespace"):
        b.feedback({"key": key, "similarity": 0.9, "stage": "semantic",
                    "request_key": "b:x"}, correct=False)
    assert a.lookup(**ask(Q)) is not None
    assert observations(a, minilm, key) == [()]
    assert b.stats()["feedback_wrong"] == 0
    a.close()
    b.close()


async def test_afeedback_cannot_touch_another_namespaces_entry(tmp_path, minilm):
    a, b, key = two_namespaces(tmp_path, minilm)
    with pytest.raises(ConfigError, match="namespace"):
        await b.afeedback(key, correct=False)
    assert await a.alookup(**ask(Q)) is not None
    a.close()
    b.close()


@pytest.mark.parametrize("meta", [
    {"key": None},  # no key
    {"key": 5, "similarity": 0.9, "stage": "semantic"},
    {"key": "default:__semcache_policy_state__", "stage": "exact"},
    {"similarity": "abc"}, {"similarity": math.nan}, {"similarity": math.inf},
    {"similarity": 2.0}, {"similarity": -3.0}, {"similarity": True},
    {"similarity": 0.9, "request_key": 5},
])
def test_malformed_feedback_is_refused_and_stores_nothing(minilm, meta):
    c = Cache(type="faiss-semantic", embedder=minilm, target_error_rate=0.05,
              judge="exact")
    c.add_cache({"answer": "practice"}, **ask(Q))
    key = c.get_cache_key(**ask(Q))
    full = {k: v for k, v in {"key": key, "stage": "semantic", **meta}.items()
            if v is not None}
    with pytest.raises(ConfigError):
        c.feedback(full, correct=True)
    assert observations(c, minilm, key) == [()]
    assert c.policy.counts["judged"] == 0
    assert c.lookup(**ask(Q)) is not None


def test_feedback_at_similarity_zero_is_kept_at_zero(minilm):
    """A wrong report at similarity 0.0 was stored at 1.0 (``or 1.0``): a wrong
    observation at 1.0 refutes the entry at every similarity, for every query."""
    c = Cache(type="faiss-semantic", embedder=minilm, similarity_threshold=0.0)
    c.add_cache({"answer": "practice"}, **ask(Q))
    key = c.get_cache_key(**ask(Q))
    c.feedback({"key": key, "similarity": 0.0, "stage": "semantic"}, correct=False)
    assert observations(c, minilm, key) == [(Observation(0.0, False),)]


@pytest.mark.parametrize("bad", [
    ["not", "a", "mapping"],
    {"v": 6, "cells": [], "beta": [math.nan] * 13, "cov": [[1.0] * 13] * 13},
    {"v": 6, "cells": [[90, -1, 0, 0, 0, 0, math.inf, 1.0]]},
    {"v": 6, "cells": [], "judged": "many"},
    {"v": 6, "cells": [], "unfitted": math.inf},
])
def test_a_hostile_policy_state_is_refused(bad):
    p = VerifiedPolicy(0.05)
    with pytest.raises(ConfigError):
        p.load_state(bad)
    assert p.state()["cells"] == [] and p.state()["beta"] is None
