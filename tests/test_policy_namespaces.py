"""A learning policy's state is per namespace: one ``Cache`` serves many namespaces
(the proxy's tenants), and what one namespace's judged outcomes and feedback teach,
and the decisions it spends its error budget on, must not change what another is
served (docs/proxy.md)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semcache import Cache
from semcache._errors import ConfigError
from semcache._policies_by_ns import NoSemanticHits, PoliciesByNamespace
from semcache.policies.base import Decision, DecisionPolicy, StaticThreshold
from semcache.policies.learning import POLICY_STATE, SAVE_EVERY
from semcache.policies.verified import VerifiedPolicy

Q = "How do I learn Python quickly?"
PARA = "What is the fastest way to learn Python?"
#: serves at once once taught (no audits, no budget warm-up)
EAGER = dict(min_judged=10, audit_rate=0.0, min_audits=0, min_budget_samples=0, seed=0)


def ask(q: str, ns: str | None = None) -> dict:
    kw: dict = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": q}]}
    if ns is not None:
        kw["cache"] = {"namespace": ns}
    return kw


def cache(minilm, **kw) -> Cache:
    kw.setdefault("policy", VerifiedPolicy(0.5, **EAGER))
    return Cache(type="faiss-semantic", embedder=minilm, namespace="a", verifier=None,
                 similarity_threshold=0.7, **kw)


def teach_a(c: Cache) -> None:
    """Feedback on namespace a's own hits: every candidate from 0.7 up was right."""
    for i in range(60):
        c.feedback({"key": f"a:k{i}", "similarity": 0.7 + 0.3 * i / 60,
                    "stage": "semantic", "request_key": f"a:r{i}"}, True)


def test_feedback_in_one_namespace_does_not_change_another_namespaces_decision(minilm):
    c = cache(minilm)
    teach_a(c)
    c.add_cache({"answer": "practice"}, **ask(Q))
    c.add_cache({"answer": "practice"}, **ask(Q, "b"))
    in_a = c.begin("completion", **ask(PARA))
    in_b = c.begin("completion", **ask(PARA, "b"))
    assert in_a.hit and in_a.metadata["decision"] == "served"  # a's teaching works...
    assert not in_b.hit  # ... for a only: b has judged nothing, it serves nothing
    assert in_b.metadata["decision"] != "served"
    assert in_b.metadata["estimated_error"] != in_a.metadata["estimated_error"]
    assert c.stats()["policy_stats"]["judged"] > 0
    assert c.stats()["policy_stats_by_namespace"]["b"]["judged"] == 0


def test_one_namespaces_decisions_do_not_spend_anothers_budget(minilm):
    c = cache(minilm)
    teach_a(c)
    c.add_cache({"answer": "practice"}, **ask(Q, "b"))
    before = c.stats()["policy_stats"]
    for _ in range(20):
        c.begin("completion", **ask(PARA, "b"))
    after = c.stats()
    assert after["policy_stats"] == before  # a's counts, window and budget untouched
    b = after["policy_stats_by_namespace"]["b"]
    decided = sum(b[k] for k in ("served", "explored", "unexplored", "below_floor",
                                 "audited", "verifier_rejected"))
    assert decided == 20


def test_a_static_cache_has_no_per_namespace_policies(minilm):
    c = Cache(type="faiss-semantic", embedder=minilm, namespace="a")
    c.add_cache({"answer": "practice"}, **ask(Q, "b"))
    c.lookup(**ask(PARA, "b"))
    assert c.stats()["policy_stats_by_namespace"] == {}


def test_saved_policy_state_round_trips_per_namespace(minilm):
    never_serves = dict(EAGER, min_judged=10_000)
    c = cache(minilm, policy=VerifiedPolicy(0.5, **never_serves), judge=lambda *a: True)
    for i in range(SAVE_EVERY):
        c.add_cache({"answer": "practice"}, **ask(f"{Q} ({i})", "b"))
        out = c.begin("completion", **ask(f"{PARA} ({i})", "b"))
        assert out.metadata["decision"] == "explored"
        out.store({"answer": "practice daily"})
    assert c.stats()["policy_stats_by_namespace"]["b"]["judged"] == SAVE_EVERY
    assert c.stats()["policy_stats"]["judged"] == 0
    saved = c.store.get(f"b:{POLICY_STATE}")
    assert saved is not None  # saved under b's own namespace ...
    assert c.store.get(f"a:{POLICY_STATE}") is None  # ... not the cache's
    # a restart: b's state comes back to b, and to b only
    d = cache(minilm, policy=VerifiedPolicy(0.5, **never_serves))
    d.store.set(f"b:{POLICY_STATE}", saved, None)
    d.lookup(**ask(PARA, "b"))
    d.lookup(**ask(PARA, "c"))
    d.lookup(**ask(PARA))
    assert d._policies.get("b").state() == c._policies.get("b").state()
    assert d._policies.get("c").state() == VerifiedPolicy(0.5).state()
    assert d.policy.state() == VerifiedPolicy(0.5).state()


@given(st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=30),
       st.integers(0, 4))
def test_each_namespace_gets_one_policy_of_its_own_up_to_the_cap(names, cap):
    home = VerifiedPolicy(0.1, per="hit", audit_rate=0.2, seed=3)
    by_ns = PoliciesByNamespace("a", home, cap=cap)
    got = {}
    refused = 0
    for ns in names:
        p = by_ns.for_namespace(ns, home)
        if ns == "a":
            assert p is home
        elif isinstance(p, NoSemanticHits):
            refused += 1
            assert len(got) == cap and ns not in got
        else:
            assert got.setdefault(ns, p) is p  # the same instance every time
            assert p is not home and (p.target_error_rate, p.per, p.audit_rate) == (
                0.1, "hit", 0.2)
            assert p.state() == VerifiedPolicy(0.1).state()  # nothing learned
    assert by_ns.refused == refused
    assert set(by_ns.stats()) == set(got)
    assert StaticThreshold().fresh() is not None
    assert PoliciesByNamespace("a", StaticThreshold(), cap=0).for_namespace(
        "b", home := StaticThreshold()) is home  # a static policy is shared


def test_a_namespace_past_the_cap_is_served_no_semantic_hit(minilm):
    c = cache(minilm)
    c._policies = PoliciesByNamespace("a", c.policy, cap=1)
    for ns in ("b", "c"):
        c.add_cache({"answer": "practice"}, **ask(Q, ns))
        c.lookup(**ask(PARA, ns))
    out = c.begin("completion", **ask(PARA, "c"))
    assert not out.hit and out.metadata["decision"] == "no_policy"
    assert c.lookup(**ask(Q, "c")).stage == "exact"  # exact hits are served as ever
    s = c.stats()
    assert set(s["policy_stats_by_namespace"]) == {"b"}
    assert s["policy_namespaces_refused"] >= 2


def test_a_learning_policy_without_fresh_is_refused_when_the_cache_is_made(minilm):
    class Learner(DecisionPolicy):
        learns = True

        def decide(self, query, candidates, threshold, *, target_error_rate=None):
            return Decision("miss", None, "no_candidate")

    with pytest.raises(ConfigError, match="fresh"):
        Cache(type="faiss-semantic", embedder=minilm, policy=Learner())
