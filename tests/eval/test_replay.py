from __future__ import annotations

import numpy as np
import pytest

from semcache import Cache
from semcache.embedders.base import Embedder
from semcache.eval import (
    Pairs,
    PrecomputedEmbedder,
    Prices,
    estimate_tokens,
    evaluate_multiturn,
    load_conversations,
    replay_pairs,
)


class AngleEmbedder(Embedder):
    """A real Embedder whose similarities the test chooses: each text is a unit vector
    at a given angle in a plane, so cos(a - b) is the similarity of two texts."""

    model_id = "angles"

    def __init__(self, angles: dict[str, float]) -> None:
        super().__init__(cache_size=0)
        self.angles = angles

    @property
    def dim(self) -> int:
        return 2

    def _embed(self, texts: list[str]) -> np.ndarray:
        a = np.array([self.angles[t] for t in texts])
        return np.stack([np.cos(a), np.sin(a)], axis=1)


def deg(similarity: float) -> float:
    return float(np.arccos(similarity))


def test_replay_counts_correct_false_cross_and_missed_hits():
    emb = AngleEmbedder({
        "c1": 0.0, "q1": deg(0.95),            # own candidate, labeled same: correct
        "c2": 1.0, "q2": 1.0 + deg(0.97),      # own candidate, labeled different: false
        "c3": 2.0, "q3": 0.0 + deg(0.93),      # nearest is c1, not its own: cross
        "c4": 2.6, "q4": 2.6 + deg(0.5),       # labeled same but too far: missed
        "c5": -1.5, "q5": -1.5 - deg(0.2),     # labeled different, far: correct miss
    })
    pairs = Pairs(["q1", "q2", "q3", "q4", "q5"], ["c1", "c2", "c3", "c4", "c5"],
                  np.array([1, 0, 1, 1, 0], dtype=np.int8))
    # the counting is checked on cosine geometry alone: no verifier on synthetic texts
    cache = Cache(type="faiss-semantic", embedder=emb, verifier=None,
                  similarity_threshold=0.9)
    rep = replay_pairs(cache, pairs, prices=Prices(1.0, 2.0), show_progress=False)
    assert (rep.seeds, rep.probes) == (5, 5)
    assert (rep.correct_hits, rep.false_hits, rep.cross_hits) == (1, 1, 1)
    assert (rep.missed_hits, rep.correct_misses) == (1, 1)
    assert rep.stages == {"semantic": 3}
    assert rep.hit_rate == pytest.approx(0.6) and rep.precision == pytest.approx(1 / 3)
    assert sorted(round(s, 3) for s in rep.hit_similarities) == [0.93, 0.95, 0.97]
    # each hit saves the query's input ("qN": 1 token + 4 per message) and the served
    # answer's completion tokens ("cN": 1 token)
    assert (rep.input_tokens_saved, rep.output_tokens_saved) == (15, 3)
    assert rep.money_saved == pytest.approx(15 / 1000 * 1.0 + 3 / 1000 * 2.0)
    d = rep.to_dict()
    assert d["wrong_hits"] == 2 and d["misses"] == 2
    for stage in ("embed", "search", "total"):
        assert d["latency_ms"][stage]["n"] == 5 and d["latency_ms"][stage]["p50"] >= 0


def test_threshold_moves_the_counts():
    emb = AngleEmbedder({"c": 0.0, "q": deg(0.85)})
    pairs = Pairs(["q"], ["c"], np.array([1], dtype=np.int8))
    lo = replay_pairs(Cache(type="faiss-semantic", embedder=emb, verifier=None,
                            similarity_threshold=0.8),
                      pairs, show_progress=False)
    hi = replay_pairs(Cache(type="faiss-semantic", embedder=emb, verifier=None,
                            similarity_threshold=0.9),
                      pairs, show_progress=False)
    assert (lo.correct_hits, hi.correct_hits, hi.missed_hits) == (1, 0, 1)


def test_exact_only_cache_hits_identical_text_only():
    pairs = Pairs(["same", "other"], ["same", "different"], np.array([1, 1], dtype=np.int8))
    rep = replay_pairs(Cache(type="local"), pairs, show_progress=False)
    assert rep.stages == {"exact": 1} and rep.correct_hits == 1 and rep.missed_hits == 1
    assert rep.threshold is None


def test_estimate_tokens():
    assert (estimate_tokens(""), estimate_tokens("abc"), estimate_tokens("a" * 9)) == (0, 1, 3)


def test_precomputed_embedder_matches_the_model_and_falls_back(minilm):
    pre = PrecomputedEmbedder.build(minilm, ["How old are you?", "What is your age?"],
                                    show_progress=False)
    assert pre.model_id == minilm.model_id and pre.dim == minilm.dim
    np.testing.assert_allclose(pre.embed(["What is your age?"]),
                               minilm.embed(["What is your age?"]), atol=1e-5)
    assert pre.misses == 0
    pre.embed(["Something new"])
    assert pre.misses == 1


def test_multiturn_scoping_prevents_cross_conversation_hits(minilm):
    convs = load_conversations("tests/data/multiturn_sample.json")
    texts = [t for c in convs for t in (c.query, c.follow_up)]
    emb = PrecomputedEmbedder.build(minilm, texts, show_progress=False)
    rep = evaluate_multiturn(
        convs, lambda: Cache(type="faiss-semantic", embedder=emb, namespace="mt"),
        show_progress=False)
    d = rep.to_dict()
    assert d["conversations"] == 64 and d["repeated_follow_ups"] == 34
    assert d["modes"]["scoped"]["false_hits"] == 0
    # identical follow-ups under different main queries hit at the exact stage already
    assert d["modes"]["off"]["false_hits"] >= 17
    assert d["modes"]["off"]["hits_by_stage"]["exact"] >= 17


def test_an_identical_request_is_a_correct_hit_whoever_stored_it():
    # PAWS reuses sentences across pairs: a query may be another pair's candidate
    pairs = Pairs(["b", "x"], ["a", "b"], np.array([0, 1], dtype=np.int8))
    rep = replay_pairs(Cache(type="local"), pairs, show_progress=False)
    assert (rep.correct_hits, rep.cross_hits, rep.stages) == (1, 0, {"exact": 1})


def test_prices_must_be_finite_and_not_negative(tmp_path):
    """--price-per-1k-input nan printed '$nan' saved and wrote NaN into the JSON report
    (not JSON); a negative price reported money lost as 'saved'."""
    import json

    from semcache import InvalidRequestError
    from semcache.eval.replay import Prices, load_price_table

    for bad in (float("nan"), float("inf"), -0.15):
        with pytest.raises(InvalidRequestError, match="price"):
            Prices(bad, 0.0)
        with pytest.raises(InvalidRequestError, match="price"):
            Prices(0.0, bad)
    table = tmp_path / "prices.json"
    table.write_text(json.dumps({"m": {"input_per_1k": "nan", "output_per_1k": 1}}))
    with pytest.raises(InvalidRequestError, match="m"):
        load_price_table(table, "m")
    assert Prices(0.15, 0.6).cost(1000, 2000) == pytest.approx(1.35)


def test_case_and_spacing_variants_of_a_question_are_one_answer_class():
    """The split merges questions that differ only in case or spacing (``split._norm``);
    the streams must too, or under strict truth a hit between "What is X?" and
    "what is  x?" counted as a wrong answer (two classes)."""
    from semcache.eval.streams import build_stream, groups_from_pairs

    pairs = [("What is X?", "What's X", 1), ("what is  x?", "How is X defined", 1),
             ("What is X?", "what is x?", 0), ("What is Y?", "What's Y", 1)]
    groups, negatives = groups_from_pairs(pairs, min_size=2)
    assert sorted(map(sorted, groups)) == [
        sorted(["What is X?", "What's X", "what is  x?", "How is X defined", "what is x?"]),
        sorted(["What is Y?", "What's Y"])]
    stream = build_stream(groups, negatives, seed=0, truth="strict")
    # the "not duplicate" label between two spellings is noise: no negative is asked
    assert all(q.kind != "negative" for q in stream.queries)
    cls = {q.text: q.answer_class for q in stream.queries}
    assert cls["What is X?"] == cls["what is  x?"]
    assert stream.truth(cls["What is X?"], cls["what is  x?"]) is True
