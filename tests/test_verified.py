"""The verified decision policy (target_error_rate), its judges and feedback."""

from __future__ import annotations

import random

import pytest

from semcache import Cache, ConfigError
from semcache._judges import EmbeddingJudge, ExactJudge, answer_text
from semcache.indexes.base import Candidate, Observation
from semcache.policies.verified import VerifiedPolicy, wilson_upper


def ask(q, **kw):
    return dict(model="m", messages=[{"role": "user", "content": q}], **kw)


Q = "How do I learn Python quickly?"
PARA = "What is the fastest way to learn Python?"


def test_wilson_upper_bound():
    assert wilson_upper(0.0, 0, 1.64) == 1.0
    assert 0.0 < wilson_upper(0.0, 1000, 1.64) < 0.005
    assert wilson_upper(0.1, 100, 1.64) > 0.1
    assert wilson_upper(0.1, 10_000, 1.64) == pytest.approx(0.1, abs=0.006)


def simulate(target, n=30_000, seed=0):
    """Entries with hidden per-entry thresholds; queries at random similarities."""
    rng = random.Random(seed)
    policy = VerifiedPolicy(target, seed=seed)
    thresholds = [rng.choice([0.75, 0.8, 0.85, 0.9, 0.97, 1.01]) for _ in range(300)]
    obs: list[list[Observation]] = [[] for _ in thresholds]
    served = wrong = 0
    for t in range(n):
        e = rng.randrange(len(thresholds))
        s = rng.uniform(0.7, 1.0)
        c = Candidate(f"n:{e}", s, "p", 0.0, None, tuple(obs[e]))
        d = policy.decide("q", [c], 0.7)
        right = s >= thresholds[e]
        if d.action == "serve":
            if t > n // 3:
                served += 1
                wrong += not right
        elif d.action == "explore":
            o = Observation(s, right)
            policy.observe(o, obs[e], audited=d.reason == "audited")
            obs[e].append(o)
    return served, wrong, policy


@pytest.mark.parametrize("target", [0.02, 0.05])
def test_error_stays_under_target_and_hits_beat_the_best_static_threshold(target):
    served, wrong, policy = simulate(target)
    assert served > 0
    assert wrong / served <= target * 1.25  # the bound holds after warm-up
    # the best static threshold for this population at that error: a threshold t serves
    # s >= t; compute its hit share and error exactly by simulation of the same draws
    rng = random.Random(0)
    thresholds = [rng.choice([0.75, 0.8, 0.85, 0.9, 0.97, 1.01]) for _ in range(300)]
    best = 0.0
    for th in [x / 100 for x in range(70, 101)]:
        draws = [(rng.randrange(300), rng.uniform(0.7, 1.0)) for _ in range(5000)]
        hits = [(e, s) for e, s in draws if s >= th]
        err = sum(s < thresholds[e] for e, s in hits) / max(len(hits), 1)
        if err <= target:
            best = max(best, len(hits) / len(draws))
    verified_share = served / (30_000 - 30_000 // 3 - 1)
    assert verified_share > best


def test_policy_state_roundtrip():
    _, _, p = simulate(0.05, n=3000)
    q = VerifiedPolicy(0.05)
    q.load_state(p.state())
    assert q.estimate(0.9) == p.estimate(0.9)
    with pytest.raises(ConfigError):
        q.load_state({"v": 0})


def test_judges():
    a = {"choices": [{"message": {"content": "Paris."}}]}
    b = {"choices": [{"message": {"content": "  paris"}}]}
    assert answer_text(a) == "Paris."
    assert ExactJudge().judge("q", "p", a, b)
    assert not ExactJudge().judge("q", "p", a, {"choices": [{"message": {"content": "Rome"}}]})


def test_embedding_judge(minilm):
    j = EmbeddingJudge(minilm)
    assert j.judge("q", "p", "The capital of France is Paris.",
                   "Paris is the capital of France.")
    assert not j.judge("q", "p", "The capital of France is Paris.",
                       "Boil the pasta for ten minutes.")


def test_exploration_judges_the_fresh_answer_and_stores_the_outcome(minilm):
    seen = []

    def judge(query, cached_prompt, cached_answer, fresh_answer):
        seen.append((query, cached_prompt, cached_answer, fresh_answer))
        return True

    c = Cache(type="faiss-semantic", embedder=minilm, target_error_rate=0.05, judge=judge)
    c.add_cache({"answer": "practice"}, **ask(Q))
    out = c._begin("completion", ask(PARA))
    assert out.hit is None
    m = out.metadata
    assert m["policy"] == "verified" and m["decision"] == "explored"
    assert 0 <= m["estimated_error"] <= 1
    c._finish(out, {"answer": "practice daily"})
    assert seen == [(PARA, Q, {"answer": "practice"}, {"answer": "practice daily"})]
    (cand,) = [x for x in c.index.search(minilm.embed([PARA])[0], out.request.split.context)
               if x.key == c.get_cache_key(**ask(Q))]
    assert cand.observations == (Observation(pytest.approx(cand.similarity), True),)
    s = c.stats()
    assert s["judged"] == 1 and s["policy_stats"]["explored"] == 1
    # the explored request's own answer was stored: its repeat is an exact hit
    assert c.lookup(**ask(PARA)).stage == "exact"


def test_an_abstaining_judge_records_nothing(minilm):
    c = Cache(type="faiss-semantic", embedder=minilm, target_error_rate=0.05,
              judge=lambda *a: None)
    c.add_cache({"answer": "x"}, **ask(Q))
    c._finish(c._begin("completion", ask(PARA)), {"answer": "y"})
    assert c.stats()["judged"] == 0


def test_wrong_feedback_is_never_served_again_to_that_query(minilm):
    c = Cache(type="faiss-semantic", embedder=minilm, similarity_threshold=0.6)
    c.add_cache({"answer": "practice"}, **ask(Q))
    hit = c.lookup(**ask(PARA))
    assert hit is not None and hit.stage == "semantic"
    assert c.feedback(hit, correct=False)
    assert c.lookup(**ask(PARA)) is None
    assert c.lookup(**ask("How can I learn Python fast?")) is not None  # others still are
    assert c.stats()["feedback_wrong"] == 1


def test_feedback_by_key_and_on_exact_hits(minilm):
    c = Cache(type="faiss-semantic", embedder=minilm, similarity_threshold=0.6)
    c.add_cache({"answer": "practice"}, **ask(Q))
    hit = c.lookup(**ask(PARA))
    c.feedback(hit.metadata["request_key"], correct=False)  # by the key in the metadata
    assert c.lookup(**ask(PARA)) is None
    exact = c.lookup(**ask(Q))
    c.feedback(exact, correct=False)  # a wrong exact answer is removed
    assert c.lookup(**ask(Q)) is None and c.index.count() == 0
    with pytest.raises(ConfigError):
        c.feedback(exact, correct="no")


def test_observations_survive_a_restart(tmp_path, minilm):
    c = Cache(type="faiss-semantic", embedder=minilm, disk_cache_dir=str(tmp_path),
              similarity_threshold=0.6)
    c.add_cache({"answer": "practice"}, **ask(Q))
    c.feedback(c.lookup(**ask(PARA)), correct=False)
    c.close()
    c2 = Cache(type="faiss-semantic", embedder=minilm, disk_cache_dir=str(tmp_path),
               similarity_threshold=0.6)
    assert c2.lookup(**ask(PARA)) is None
    c2.close()


def test_per_request_target_on_a_static_cache(minilm):
    # the floor is the static threshold; pinned so the test does not track the default
    c = Cache(type="faiss-semantic", embedder=minilm, similarity_threshold=0.9)
    c.add_cache({"answer": "practice"}, **ask(Q))
    hit, meta = c.lookup_with_metadata(**ask(PARA, cache={"target_error_rate": 0.01}))
    assert hit is None and meta["policy"] == "verified" and meta["decision"] == "explored"
    assert c.lookup_with_metadata(**ask(PARA))[1]["policy"] == "static"


def test_configuration_errors(minilm):
    with pytest.raises(ConfigError, match="target_error_rate"):
        Cache(type="faiss-semantic", embedder=minilm, target_error_rate=1.5)
    with pytest.raises(ConfigError, match="semantic types only"):
        Cache(type="local", target_error_rate=0.05)
    with pytest.raises(ConfigError, match="judge"):
        Cache(type="faiss-semantic", embedder=minilm, target_error_rate=0.05, judge="llm")
