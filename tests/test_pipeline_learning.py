"""The pipeline and a learning policy: ``decide`` is pure, ``record`` counts once per
lookup, the learning loop's LRU is bounded (issue #19)."""

from __future__ import annotations

import random

from cachetools import LRUCache

from semcache import Cache
from semcache.indexes.base import Candidate, Observation
from semcache.policies import Decision, DecisionPolicy
from semcache.policies.verified import VerifiedPolicy

Q = "How do I learn Python quickly?"
PARA = "What is the fastest way to learn Python?"


def ask(q: str):
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": q}]}


def eager_policy() -> VerifiedPolicy:
    """A verified policy that already trusts close candidates (judged: wrong half the
    time below 0.78, never above), so it serves at once, the most similar first."""
    p = VerifiedPolicy(0.5, min_judged=10, audit_rate=0.0, min_audits=0,
                       min_budget_samples=0, seed=0)
    rng = random.Random(0)
    for i in range(600):
        s = 0.7 + 0.3 * i / 600
        p.observe(Observation(s, not (s < 0.78 and rng.random() < 0.5)))
    return p


def test_a_skipped_stale_candidate_does_not_count_the_lookup_twice(minilm):
    """The lookup's first pick (the query's own earlier entry, similarity 1.0) has lost
    its answer: the pipeline drops it and serves the next candidate. That is one lookup,
    one served decision, one slot of the budget's window (it was two of each when the
    pipeline counted every ``decide``)."""
    policy = eager_policy()
    c = Cache(type="faiss-semantic", embedder=minilm, policy=policy, verifier=None,
              similarity_threshold=0.7)
    c.add_cache({"answer": "practice"}, **ask(Q))
    c.add_cache({"answer": "stale"}, **ask(PARA))
    c.store.delete([c.get_cache_key(**ask(PARA))])  # its vector stays: a stale candidate
    out = c.begin("completion", **ask(PARA))
    assert out.hit and out.value == {"answer": "practice"}
    assert out.metadata["stage"] == "semantic"
    assert c.stats()["stale_candidates_removed"] == 1
    assert policy.counts["served"] == 1
    assert policy._window_n == 1
    assert sum(policy._window_cells.values()) == 1


def test_a_lookup_whose_every_pick_was_stale_counts_one_miss(minilm):
    policy = eager_policy()
    c = Cache(type="faiss-semantic", embedder=minilm, policy=policy, verifier=None,
              similarity_threshold=0.7)
    c.add_cache({"answer": "stale"}, **ask(Q))
    c.store.delete([c.get_cache_key(**ask(Q))])
    out = c.begin("completion", **ask(PARA))
    assert not out.hit
    assert policy.counts["served"] == 0 and policy.counts["below_floor"] == 1
    assert policy._window_n == 1


def test_decide_is_pure_and_record_moves_the_state_on():
    p = eager_policy()
    rng = random.Random(3)
    cands = [Candidate(f"n:{i}", rng.uniform(0.8, 1.0), "p", 0.0, None, ())
             for i in range(3)]
    cands.sort(key=lambda c: -c.similarity)
    counts, draws = dict(p.counts), p._draws
    first = p.decide("q", cands, 0.7)
    assert all(p.decide("q", cands, 0.7) == first for _ in range(20))
    assert p.counts == counts and p._draws == draws and p._window_n == 0
    p.record(first)
    assert p.counts[first.reason] == counts[first.reason] + 1
    assert p._window_n == 1 and p._draws != draws


def test_the_pipeline_records_each_lookup_once(minilm):
    class Counting(DecisionPolicy):
        name = "counting"

        def __init__(self) -> None:
            self.decided: list[Decision] = []
            self.recorded: list[Decision] = []

        def decide(self, query, candidates, threshold, *, target_error_rate=None):
            d = Decision("serve", candidates[0], "served")
            self.decided.append(d)
            return d

        def record(self, decision):
            self.recorded.append(decision)

    policy = Counting()
    c = Cache(type="faiss-semantic", embedder=minilm, policy=policy, verifier=None)
    c.add_cache({"answer": "a"}, **ask(Q))
    c.add_cache({"answer": "b"}, **ask(PARA))
    c.store.delete([c.get_cache_key(**ask(PARA))])
    assert c.begin("completion", **ask(PARA)).hit
    assert len(policy.decided) == 2 and len(policy.recorded) == 1
    assert not c.begin("completion", **ask("Bake a chocolate cake at home")).hit \
        or len(policy.recorded) == 2


def test_recent_hits_are_a_bounded_lru(minilm):
    c = Cache(type="faiss-semantic", embedder=minilm, target_error_rate=0.05)
    recent = c._learning.teacher.recent_hits
    assert isinstance(recent, LRUCache) and recent.maxsize == 4096
    for i in range(5000):
        c._learning.remember_hit(f"e{i}", f"r{i}", 0.9)
    assert len(recent) == 4096 and "r4999" in recent and "r0" not in recent
