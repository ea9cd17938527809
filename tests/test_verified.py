"""The verified decision policy (target_error_rate), its judges and feedback."""

from __future__ import annotations

import bisect
import itertools
import math
import random

import pytest

from semcache import Cache, ConfigError
from semcache._judges import EmbeddingJudge, ExactJudge, answer_text
from semcache._keys import semantic_split
from semcache.indexes.base import Candidate, Observation
from semcache.policies.verified import VerifiedPolicy


def ask(q, **kw):
    return dict(model="m", messages=[{"role": "user", "content": q}], **kw)


Q = "How do I learn Python quickly?"
PARA = "What is the fastest way to learn Python?"


THRESHOLDS = [0.75, 0.8, 0.85, 0.9, 0.97, 1.01]
#: how far a query's own boundary strays from its entry's (a normal spread): an entry
#: right once at s can be wrong at a higher s, so its history never makes a candidate
#: certain, and an error budget is what keeps wrong answers out (with sharp boundaries,
#: as this stream had before, the history alone did: 0 wrong answers, with or without
#: the budget)
NOISE = 0.03


def simulate(target, n=20_000, seed=0, levels=THRESHOLDS, **kw):
    """300 entries with hidden boundaries (``levels``), queries at random similarities,
    each right when its similarity is at or above its entry's boundary plus noise.
    Returns (served, wrong, decisions) counted after the first third, and the policy."""
    rng = random.Random(seed)
    policy = VerifiedPolicy(target, seed=seed, **kw)
    thresholds = [rng.choice(levels) for _ in range(300)]
    obs: list[list[Observation]] = [[] for _ in thresholds]
    served = wrong = decisions = 0
    for t in range(n):
        e = rng.randrange(len(thresholds))
        s = rng.uniform(0.7, 1.0)
        right = s >= thresholds[e] + rng.gauss(0.0, NOISE)
        d = policy.decide("q", [Candidate(f"n:{e}", s, "p", 0.0, None, tuple(obs[e]))], 0.7)
        policy.record(d)
        if t > n // 3:
            decisions += 1
            if d.action == "serve":
                served += 1
                wrong += not right
        if d.action == "explore":
            o = Observation(s, right)
            policy.observe(o, obs[e], audited=d.reason == "audited")
            obs[e].append(o)
    return served, wrong, decisions, policy


def static_curve(seed=0, levels=THRESHOLDS):
    """For each static threshold of a 0.001 grid: (share of queries served, expected
    wrong answers per query) on ``simulate``'s population, computed exactly from the
    stream's law (queries uniform over entries and over similarities in [0.7, 1])."""
    rng = random.Random(seed)
    thresholds = [rng.choice(levels) for _ in range(300)]
    weights = {t: thresholds.count(t) / len(thresholds) for t in set(thresholds)}
    sims = [0.7 + 0.3 * (i + 0.5) / 3000 for i in range(3000)]
    # P(wrong | s) = P(s < boundary + noise), averaged over the entries
    wrong_at = [sum(w * 0.5 * (1 - math.erf((s - t) / (NOISE * math.sqrt(2))))
                    for t, w in weights.items()) for s in sims]
    tail = list(itertools.accumulate(reversed(wrong_at)))[::-1]  # wrong at >= sims[i]
    out = []
    for th in [0.7 + x / 1000 for x in range(301)]:
        i = bisect.bisect_left(sims, th)
        out.append((th, (len(sims) - i) / len(sims), tail[i] / len(sims) if i < len(sims)
                    else 0.0))
    return out


def best_static(target, per="request", seed=0, levels=THRESHOLDS):
    """The largest share of queries a static threshold serves with its error (per
    query, or per hit) within ``target``, on the same population: the best threshold
    with hindsight, which a deployment cannot pick."""
    best = 0.0
    for _, served, wrong in static_curve(seed, levels):
        err = wrong if per == "request" else (wrong / served if served else 0.0)
        if err <= target:
            best = max(best, served)
    return best


#: the verified policy's hits over the best static threshold's, at least: the budget
#: pools the uncertainty of everything it serves; a per-candidate bound (serve when a
#: candidate's own upper bound is under the target) made 2.8x, 1.9x and 1.1x on this
#: stream. Seeds 0-2 of the pooled budget: 3.2-3.7x, 2.5-2.6x and 1.5-1.6x since
#: exploring has a budget (issue 20: about 8% of the decisions here); with every
#: candidate not served explored (about half the decisions) they were 4.6-5.2x,
#: 3.1-3.3x and 1.7-1.8x: judging fewer candidates leaves the model less sure where
#: it serves, and it serves less (the error stays at a fifth to two fifths of target)
MIN_HIT_RATIO = {0.01: 3.0, 0.02: 2.3, 0.05: 1.4}


@pytest.mark.parametrize("target", [0.01, 0.02, 0.05])
def test_error_stays_under_target_and_hits_beat_the_best_static_threshold(target):
    """Without the budget every target runs over (serving anything the model does not
    call certainly wrong: 29% wrong answers); with only the ``max_serve_error``
    cap left, 2.1% wrong, over the 1% target."""
    # the stream has wrong candidates to keep out: serving every one would be wrong
    # more than half the time, far over either target
    assert static_curve()[0][2] > 5 * target
    served, wrong, decisions, policy = simulate(target)
    assert wrong / decisions <= target * 1.1  # the bound holds after warm-up
    assert served / decisions >= MIN_HIT_RATIO[target] * best_static(target)
    s = policy.stats()
    assert s["per"] == "request" and s["audited"] > 0
    assert s["observed_error_rate"] == pytest.approx(
        s["observed_hit_error_rate"] * s["served_share"])


#: per hit: no entry that is never right (1.01), else no static threshold reaches a 5%
#: share of wrong hits at all and the baseline would be 0
HIT_LEVELS = THRESHOLDS[:-1]


def test_per_hit_targets_bound_the_share_of_wrong_hits():
    """Over three streams: the share of wrong hits is within the target, and the hits
    are many times the best static threshold's at that share (3.7x with exploring
    under its budget, 1.1% wrong hits; 7.6x when every candidate not served was
    explored; a per-candidate bound made 5.1x; without the error budget, 7.2% wrong
    hits)."""
    served = wrong = decisions = 0
    static = 0.0
    for seed in range(3):
        s, w, d, _ = simulate(0.05, per="hit", seed=seed, levels=HIT_LEVELS)
        served, wrong, decisions = served + s, wrong + w, decisions + d
        static += best_static(0.05, per="hit", seed=seed, levels=HIT_LEVELS) / 3
    assert static > 0.03  # a baseline that serves
    assert wrong / served <= 0.05 * 1.1
    assert served / decisions >= 3.3 * static
    with pytest.raises(ConfigError, match="per"):
        VerifiedPolicy(0.05, per="query")
    for bad in ({"memory": -1}, {"max_serve_error": 0}, {"budget_window": 0},
                {"confidence": 1.0}, {"audit_rate": 1.0}):
        with pytest.raises(ConfigError):
            VerifiedPolicy(0.05, **bad)


def test_the_bound_holds_after_the_population_drifts():
    """Half-way, every entry's boundary moves up by 0.1 (answers went stale, say): the
    evidence gathered before now says "right" where it is wrong. The explorations and
    audits see it and older outcomes fade, so the policy relearns: once it has (a few
    thousand decisions later), the error is back under the target."""
    rng = random.Random(1)
    policy = VerifiedPolicy(0.02, seed=1)
    thresholds = [rng.choice(THRESHOLDS) for _ in range(300)]
    obs: list[list[Observation]] = [[] for _ in thresholds]
    n, shift, served, wrong, decisions = 40_000, 0.0, 0, 0, 0
    for t in range(n):
        if t == n // 2:
            shift = 0.1
        e, s = rng.randrange(300), rng.uniform(0.7, 1.0)
        d = policy.decide("q", [Candidate(f"n:{e}", s, "p", 0.0, None, tuple(obs[e]))], 0.7)
        policy.record(d)
        right = s >= thresholds[e] + shift
        if t > n // 2 + n // 4:
            decisions += 1
            served += d.action == "serve"
            wrong += d.action == "serve" and not right
        if d.action == "explore":
            o = Observation(s, right)
            policy.observe(o, obs[e], audited=d.reason == "audited")
            obs[e].append(o)
    assert served > 0.02 * decisions
    assert wrong / decisions <= 0.02


def test_the_model_fit_survives_separable_evidence():
    """A first batch with no wrong answer (or only wrong ones) must not make the
    logistic fit diverge (it once did, and then served everything)."""
    p = VerifiedPolicy(0.02, min_judged=10)
    for i in range(40):
        p.observe(Observation(0.7 + i * 0.007, True))
    est, ucb = p.estimate(0.9)
    assert 0 <= est <= ucb <= 1 and est < 0.2
    assert all(abs(b) < 50 for b in p._beta)
    q = VerifiedPolicy(0.02, min_judged=10)
    for i in range(40):
        q.observe(Observation(0.7 + i * 0.007, False))
    assert q.estimate(0.9)[0] > 0.8


def test_a_candidate_the_verifier_rejects_is_never_served():
    """The model pools candidates by similarity and score bins. On Quora, candidates at
    similarity 0.99 that the verifier rejects are mostly rewordings it misjudged, so the
    model learned they are safe, and then served reversals the verifier scored 0.01-0.06
    in the same bins (26 of the 31 hand-built reversals on one strict 2% stream of
    verified_replay_split_strict.json). A candidate under ``min_score`` is never served,
    whatever the pooled evidence says."""
    p = VerifiedPolicy(0.05, min_judged=10, audit_rate=0.0, min_audits=0,
                       min_budget_samples=0, min_score=0.0)
    q = VerifiedPolicy(0.05, min_judged=10, audit_rate=0.0, min_audits=0,
                       min_budget_samples=0)
    rejected = Candidate("k", 0.99, "p", 0.0, None, (), score=0.02)
    for policy in (p, q):
        for _ in range(300):
            d = policy.decide("q", [rejected], 0.7)
            policy.record(d)
            if d.action == "explore":  # the pooled evidence: such candidates were right
                policy.observe(Observation(0.99, True, score=0.02))
    assert p.decide("q", [rejected], 0.7).action == "serve"  # what the model alone does
    assert q.decide("q", [rejected], 0.7).action != "serve"
    assert q.min_score == 0.25
    liked = Candidate("k", 0.99, "p", 0.0, None, (), score=0.3)
    assert q.decide("q", [rejected, liked], 0.7).candidate.score == 0.3
    # a vetoed lookup is counted but lends no error budget: the serving window only
    # holds decisions the policy made
    window, vetoed = q._window_n, q.counts["verifier_rejected"]
    q.record(q.decide("q", [rejected], 0.7))
    assert q.counts["verifier_rejected"] == vetoed + 1 and q._window_n == window
    with pytest.raises(ConfigError, match="min_score"):
        VerifiedPolicy(0.05, min_score=1.5)


def test_wrong_at_or_above_the_similarity_is_never_served():
    p = VerifiedPolicy(0.5, min_judged=10, audit_rate=0.0)
    for i in range(200):
        p.observe(Observation(0.95, True))
    hist = (Observation(0.9, False),)
    assert p.estimate(0.85, hist) == (1.0, 1.0)
    d = p.decide("q", [Candidate("k", 0.85, "p", 0.0, None, hist)], 0.7)
    assert d.action == "explore"


def test_policy_state_roundtrip():
    _, _, _, p = simulate(0.05, n=3000)
    q = VerifiedPolicy(0.05)
    q.load_state(p.state())
    assert q.estimate(0.9) == p.estimate(0.9)
    for bad in ({"v": 0}, {"v": 5, "cells": []}, {"v": 6, "cells": [[1, 2]]},
                {"v": 6, "cells": [[0, -1, 0, 0, 0, 0, 1, 2]]},
                {"v": 6, "cells": [[0, 99, 0, 0, 0, 0, 2, 1]]},
                {"v": 6, "cells": [], "beta": [0.0], "cov": [[1.0]]}):
        with pytest.raises(ConfigError):
            q.load_state(bad)


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
    out = c.begin("completion", **ask(PARA))
    assert not out.hit
    m = out.metadata
    assert m["policy"] == "verified" and m["decision"] == "explored"
    assert 0 <= m["estimated_error"] <= 1
    out.store({"answer": "practice daily"})
    assert seen == [(PARA, Q, {"answer": "practice"}, {"answer": "practice daily"})]
    context = semantic_split(c.namespace, "completion", ask(PARA)).context
    (cand,) = [x for x in c.index.search(minilm.embed([PARA])[0], context)
               if x.key == c.get_cache_key(**ask(Q))]
    assert cand.observations == (Observation(pytest.approx(cand.similarity), True),)
    s = c.stats()
    assert s["judged"] == 1 and s["policy_stats"]["explored"] == 1
    # the explored request's own answer was stored: its repeat is an exact hit
    assert c.lookup(**ask(PARA)).stage == "exact"
    # ... and its entry starts with the judgement, seen from its side: its answer is
    # right for the candidate's prompt at the same similarity
    fresh_key = c.get_cache_key(**ask(PARA))
    (mine,) = [x for x in c.index.search(minilm.embed([Q])[0], context)
               if x.key == fresh_key]
    assert mine.observations == (Observation(pytest.approx(cand.similarity), True),)


def test_an_abstaining_judge_records_nothing(minilm):
    c = Cache(type="faiss-semantic", embedder=minilm, target_error_rate=0.05,
              judge=lambda *a: None)
    c.add_cache({"answer": "x"}, **ask(Q))
    c.begin("completion", **ask(PARA)).store({"answer": "y"})
    assert c.stats()["judged"] == 0


@pytest.mark.parametrize("verdict", ["no", "false", 0, 1, 0.0, [], {"correct": False}])
def test_a_judge_answering_other_than_true_false_or_none_teaches_nothing(minilm, verdict):
    """bool("no") is True: read as truthy, an LLM judge's raw reply taught the policy that
    the wrong cached answer was right. Now it is a counted judge error, nothing learned."""
    c = Cache(type="faiss-semantic", embedder=minilm, target_error_rate=0.05,
              judge=lambda *a: verdict)
    c.add_cache({"answer": "x"}, **ask(Q))
    out = c.begin("completion", **ask(PARA))
    assert out.metadata["decision"] == "explored"
    out.store({"answer": "y"})
    s = c.stats()
    assert s["judged"] == 0 and s["errors"].get("judge") == 1, s["errors"]
    context = semantic_split(c.namespace, "completion", ask(PARA)).context
    assert all(not x.observations for x in c.index.search(minilm.embed([PARA])[0], context))


def test_numpy_and_python_booleans_are_verdicts(minilm):
    np = pytest.importorskip("numpy")
    for verdict, seen in ((np.bool_(False), False), (True, True)):
        c = Cache(type="faiss-semantic", embedder=minilm, target_error_rate=0.05,
                  judge=lambda *a, v=verdict: v)
        c.add_cache({"answer": "x"}, **ask(Q))
        c.begin("completion", **ask(PARA)).store({"answer": "y"})
        s = c.stats()
        assert s["judged"] == 1 and s.get("judged_wrong", 0) == (0 if seen else 1)


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


def test_feedback_teaches_the_policy_with_the_entrys_history(minilm):
    from semcache._policy import Decision, DecisionPolicy

    class ServeAndRecord(DecisionPolicy):
        name = "record"

        def __init__(self):
            self.seen = []

        def decide(self, query, candidates, threshold, *, target_error_rate=None):
            return Decision("serve", candidates[0], "served", 0.1)

        def observe(self, observation, history=(), *, audited=False):
            self.seen.append((observation, tuple(history)))

    policy = ServeAndRecord()
    c = Cache(type="faiss-semantic", embedder=minilm, policy=policy)
    c.add_cache({"answer": "practice"}, **ask(Q))
    key = c.get_cache_key(**ask(Q))
    earlier = Observation(0.8, True)
    c.index.observe(key, earlier)
    hit = c.lookup(**ask(PARA))
    assert hit is not None and hit.metadata["key"] == key
    c.feedback(hit, correct=False)
    (obs, history), = policy.seen
    assert not obs.correct and obs.similarity == pytest.approx(hit.metadata["similarity"])
    assert history == (earlier,)  # what the entry knew when it was served


def test_the_learned_model_survives_a_restart(tmp_path, minilm):
    """The policy's model is saved in the exact store every 25 judgements and loaded
    by the next process on its first lookup."""
    def cache():
        return Cache(type="faiss-semantic", embedder=minilm, disk_cache_dir=str(tmp_path),
                     target_error_rate=0.05, judge="exact")

    c = cache()
    c.add_cache({"answer": "practice"}, **ask(Q))
    key = c.get_cache_key(**ask(Q))
    for i in range(50):  # reports teach the policy like judgements do
        c.feedback({"key": key, "similarity": 0.75 + i * 0.004, "stage": "semantic"},
                   correct=i % 10 != 0)
    before = c.policy.estimate(0.9)
    assert c.policy.counts["judged"] == 50
    c.close()
    c2 = cache()
    assert c2.policy.counts["judged"] == 0  # nothing loaded before the first lookup
    c2.lookup(**ask("Something else entirely"))
    assert c2.policy.counts["judged"] == 50
    assert c2.policy.estimate(0.9) == pytest.approx(before)
    c2.close()
