"""A learning policy's state is per namespace: one ``Cache`` serves many namespaces
(the proxy's tenants), and what one namespace's judged outcomes and feedback teach,
and the decisions it spends its error budget on, must not change what another is
served (docs/proxy.md)."""

from __future__ import annotations

from semcache import Cache
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
