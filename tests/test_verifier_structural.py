"""The shipped structural verifier: in the default Cache it refuses what the cosine cannot
see (a reversal at cosine 0.98, a negation, another number) and still serves a
rewording; its model file is small JSON that refuses to load against other features."""

from __future__ import annotations

import json
import time
from importlib import resources

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semcache import Cache, ConfigError
from semcache.verifiers import resolve_verifier
from semcache.verifiers.features import FEATURES, parse
from semcache.verifiers.structural import MODEL_FILE, StructuralVerifier

MODEL = resources.files("semcache") / "data" / MODEL_FILE


def _req(text: str) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


@pytest.fixture
def default_cache(minilm):
    return Cache(type="faiss-semantic", embedder=minilm)


# none of these prompts is in the must-not-hit suite the model was fitted on
STORED = "How do I convert Celsius to Kelvin?"
MUST_NOT = [  # each above the old default cosine threshold (0.93): the cosine serves them
    "How do I convert Kelvin to Celsius?",          # reversal, cosine 0.996
    "How do I not convert Celsius to Kelvin?",      # negation, cosine 0.945
]
REWORDED = "how do i convert celsius to kelvin"


def test_default_cache_refuses_what_the_cosine_serves(default_cache, minilm) -> None:
    c = default_cache
    assert c.verifier is not None and c.verifier.name == "structural"
    c.add_cache({"a": "K = C + 273.15"}, **_req(STORED))
    alone = Cache(type="faiss-semantic", embedder=minilm, verifier=None)
    alone.add_cache({"a": "K = C + 273.15"}, **_req(STORED))
    for text in MUST_NOT:
        hit, meta = c.lookup_with_metadata(**_req(text))
        assert hit is None, (text, meta)
        assert meta["decision"] == "verifier_rejected"
        assert meta["near_miss_verifier_score"] < meta["verifier_threshold"]
    # the cosine alone serves the reversal: it is what the verifier is for
    for text in MUST_NOT:
        assert alone.lookup(**_req(text)) is not None, text
    hit, meta = c.lookup_with_metadata(**_req(REWORDED))
    assert hit is not None and meta["stage"] == "semantic"
    assert meta["verifier"] == "structural"
    assert meta["verifier_score"] >= meta["verifier_threshold"]


def test_the_same_words_are_always_the_same_question() -> None:
    v = StructuralVerifier()
    p = v.verify(STORED, ["how do i convert celsius to kelvin", MUST_NOT[0]], [0.99, 0.996])
    assert p[0] == 1.0 and p[1] < v.threshold


def test_model_file_is_small_json_fitted_on_these_features() -> None:
    raw = MODEL.read_bytes()
    assert len(raw) < 400_000
    doc = json.loads(raw)
    assert doc["kind"] == "structural" and tuple(doc["features"]) == FEATURES
    assert 0.0 < doc["threshold"] < 1.0 and 0.5 <= doc["floor"] < 0.95
    # the default point: more right hits and fewer wrong ones than the cosine's old
    # default, within the must-not-hit budget on the suite's tune half
    t = doc["tuning"]
    assert t["precision"] > t["cosine_alone"]["precision"]
    assert t["recall"] > t["cosine_alone"]["recall"]
    assert t["must_not_hit_tune_served"] <= t["max_must_not_hit"] * t["must_not_hit_tune"]
    # the veto point keeps `keep` of the cosine's right hits at its old default
    veto = doc["veto"]
    assert veto["recall"] >= veto["keep"] * t["cosine_alone"]["recall"] - 1e-9
    # the wide point: more right hits and fewer wrong ones than the cosine's default
    assert doc["wide"]["precision"] > t["cosine_alone"]["precision"]
    assert doc["wide"]["recall"] > t["cosine_alone"]["recall"]
    strict = doc["strict"]
    assert strict["precision"] >= strict["precision_reached"] > t["precision"]


def test_a_model_fitted_on_other_features_is_refused(tmp_path) -> None:
    doc = json.loads(MODEL.read_text())
    doc["features"] = doc["features"][:-1]
    bad = tmp_path / "old.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="other features"):
        resolve_verifier(str(bad))
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a structural"):
        StructuralVerifier(tmp_path / "junk.json")


def _nan_rows(rows: list) -> None:
    for row in rows:
        row[:] = [float("nan")] * len(row)


# each of these loaded (or raised a bare KeyError / TypeError / ValueError), then scored
# every lookup wrongly, failed it, or looped for ever (depth 10**12)
BROKEN_FILES = {
    "no model": lambda d: d.pop("model"),
    "no threshold": lambda d: d.pop("threshold"),
    "no floor": lambda d: d.pop("floor"),
    "floor not a number": lambda d: d.__setitem__("floor", "x"),
    "floor NaN": lambda d: d.__setitem__("floor", float("nan")),
    "threshold NaN": lambda d: d.__setitem__("threshold", float("nan")),
    "features not a list": lambda d: d.__setitem__("features", 5),
    "tree thresholds NaN": lambda d: _nan_rows(d["model"]["threshold"]),
    "leaf values NaN": lambda d: _nan_rows(d["model"]["value"]),
    "baseline NaN": lambda d: d["model"].__setitem__("baseline", float("nan")),
    "depth 0": lambda d: d["model"].__setitem__("depth", 0),
    "depth negative": lambda d: d["model"].__setitem__("depth", -3),
    "depth huge": lambda d: d["model"].__setitem__("depth", 10**12),
    "more features than the verifier computes": lambda d: (
        d["model"].__setitem__("n_features", 200),
        d["model"]["feature"][0].__setitem__(0, 150)),
    "a fractional feature index": lambda d: d["model"]["feature"][0].__setitem__(0, 1.5),
    "a fractional child index": lambda d: d["model"]["left"][0].__setitem__(0, 1.5),
}


@pytest.mark.parametrize("name", list(BROKEN_FILES))
def test_a_broken_model_file_is_a_config_error_at_load(tmp_path, name) -> None:
    doc = json.loads(MODEL.read_text())
    BROKEN_FILES[name](doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as info:
        StructuralVerifier(bad)
    assert info.value.parameter == "verifier"
    assert str(bad) in str(info.value)


def test_a_model_path_and_threshold_are_honoured(tmp_path) -> None:
    copy = tmp_path / "m.json"
    copy.write_text(MODEL.read_text())
    v = resolve_verifier(str(copy), threshold=0.99)
    assert isinstance(v, StructuralVerifier) and v.threshold == 0.99


WORDS = st.sampled_from("how do I convert miles to km not the best cheap flight from "
                        "Paris London 5 10 why is a cat smarter than dog".split())


@settings(max_examples=80, deadline=None)
@given(st.lists(WORDS, min_size=1, max_size=12), st.lists(WORDS, min_size=1, max_size=12),
       st.floats(0.0, 1.0))
def test_scores_are_probabilities_and_symmetric(a, b, cos) -> None:
    v = StructuralVerifier()
    qa, qb = " ".join(a), " ".join(b)
    ab = v.verify(qa, [qb], [cos])
    ba = v.verify(qb, [qa], [cos])
    assert ab.shape == (1,) and 0.0 <= ab[0] <= 1.0
    # every feature is symmetric: whichever prompt was stored first, the verdict is one
    assert ab[0] == pytest.approx(ba[0], abs=1e-12)


def test_scoring_a_hit_costs_well_under_a_millisecond() -> None:
    v = StructuralVerifier()
    prompts = [f"How do I convert {i} miles to kilometers quickly?" for i in range(4)]
    sims = np.array([0.95, 0.93, 0.91, 0.9])
    v.verify("How many km are in 5 miles?", prompts, sims)  # warm the parse cache
    times = []
    for i in range(300):
        t = time.perf_counter()
        v.verify(f"How many km are in {i} miles?", prompts, sims)
        times.append(time.perf_counter() - t)
    # the budget is 0.3 ms p50 (issue 20; measured in benchmarks/verifier_eval.py); a
    # loose bound here catches a per-tree Python loop, not machine noise
    assert float(np.median(times)) < 1e-3


def test_order_features_see_a_to_b_against_b_to_a() -> None:
    from semcache.verifiers.features import features, parse

    col = {f: i for i, f in enumerate(FEATURES)}
    a = parse("Translate 'good morning' from English to Spanish.")
    rows = features(a, [parse("Translate 'good morning' from Spanish to English."),
                        parse("Please translate 'good morning' from English to Spanish")],
                    [0.99, 0.97])
    assert rows[0, col["side_swaps"]] == 2 and rows[0, col["order_discordance"]] > 0
    assert rows[1, col["side_swaps"]] == 0 and rows[1, col["order_discordance"]] == 0
    n = features(parse("Is 5 GHz faster than 2.4 GHz?"),
                 [parse("Is 2.4 GHz faster than 5 GHz?")], [0.99])
    assert n[0, col["number_order"]] == 1


def test_role_features_see_the_unknown_move() -> None:
    """The same numbers and words, another unknown: what the question word asks about
    and which number carries the unit (a "%" is the word "percent")."""
    from semcache.verifiers.features import features, parse

    col = {f: i for i, f in enumerate(FEATURES)}
    asked = parse("35 is what percent of 240?")
    rows = features(asked, [parse("What is 35% of 240?"),
                            parse("What percent of 240 is 35?"),
                            parse("How much is 35 percent of 240")], [0.96, 0.98, 0.9])
    assert rows[0, col["wh_head_diff"]] == 1 and rows[0, col["unit_binding_diff"]] == 2
    # the same unknown, words moved: nothing to see
    assert rows[1, col["wh_head_diff"]] == 0 and rows[1, col["unit_binding_diff"]] == 0
    # another question word: nothing to compare
    assert rows[2, col["wh_head_diff"]] == -1
    assert features(parse("Who hired Alice?"), [parse("Whom did Alice hire?")],
                    [0.95])[0, col["wh_head_diff"]] == 1
    km = features(parse("Convert 5 km to miles"), [parse("Convert 5 miles to km")], [0.99])
    assert km[0, col["unit_binding_diff"]] == 2


def _scored(minilm, rows) -> tuple[np.ndarray, np.ndarray, StructuralVerifier]:
    """Each pair's cosine and the shipped verifier's probability, and that verifier."""
    v = StructuralVerifier()
    q = minilm.embed([r["query"] for r in rows])
    c = minilm.embed([r["candidate"] for r in rows])
    cos = np.einsum("ij,ij->i", q, c)
    p = np.array([v.verify(r["query"], [r["candidate"]], [s])[0]
                  for r, s in zip(rows, cos)])
    return cos, p, v


def test_role_swap_test_half_serves_fewer_role_moves_than_the_cosine(minilm) -> None:
    """The role-swap set's test half (never fitted on) at the default point: the figures
    docs/verifier.md reports. Structure alone cannot read word problems, so this is a
    reduction, not the suite's "none" (benchmarks/results/verifier_eval.json)."""
    from semcache.eval.fitting import load_role_swaps

    rows = load_role_swaps("test")
    cos, p, v = _scored(minilm, rows)
    served = (cos >= v.floor) & (p >= v.threshold)
    neg = np.array([r["label"] == 0 for r in rows])
    assert (cos >= 0.93)[neg].sum() >= 100  # the cosine alone serves most role moves
    assert served[neg].sum() <= 0.15 * neg.sum()
    assert served[~neg].sum() >= 0.3 * (~neg).sum()


def test_must_not_hit_test_half_through_the_default(minilm) -> None:
    """The suite's test half (never fitted on), pair by pair at the default operating
    point: the figures docs/verifier.md reports from benchmarks/results/."""
    from semcache.eval.fitting import load_must_not_hit

    rows = load_must_not_hit("test")
    cos, p, v = _scored(minilm, rows)
    served = (cos >= v.floor) & (p >= v.threshold)
    cosine = cos >= 0.93  # the old default
    neg = np.array([r["label"] == 0 for r in rows])
    rev = np.array([r["kind"] == "reversal" for r in rows])
    assert cosine[rev].sum() >= 15  # the cosine alone serves most reversals
    # issue 20's goals at the default: no reversal, at most 2% of the must-not-hit,
    # at least a quarter of the true paraphrases
    assert served[rev].sum() == 0
    assert served[neg].sum() <= 0.02 * neg.sum() < cosine[neg].sum()
    assert served[~neg].sum() >= max(cosine[~neg].sum(), 0.25 * (~neg).sum())
    # the wide point (the Quora budget alone) serves as many
    wide = v.info["wide"]
    served = (cos >= wide["floor"]) & (p >= wide["threshold"])
    assert served[rev].sum() <= 2 and served[neg].sum() <= 6
    assert served[~neg].sum() >= max(cosine[~neg].sum(), 0.25 * (~neg).sum())


def test_features_see_comparatives_roles_and_what_a_negation_governs() -> None:
    from semcache.eval.fitting import role_swaps
    from semcache.verifiers.features import features, parse

    col = {f: i for i, f in enumerate(FEATURES)}

    def row(a: str, b: str) -> np.ndarray:
        return features(parse(a), [parse(b)], [0.95])[0]

    # a comparative against its antonym, with or without "more"
    assert row("Is it cheaper to fly?", "Is it more expensive to fly?")[col["antonym"]] == 1
    assert row("Is a cat smarter than a dog?", "Is a cat dumber than a dog?")[col["antonym"]] == 1
    assert row("Which is bigger?", "Which is the biggest?")[col["antonym"]] == 0
    # who acts on whom: the same words, the question word asks for the other side
    swap = role_swaps(["Who defeated Napoleon at Waterloo?"])
    assert swap == [("Who defeated Napoleon at Waterloo?",
                     "Who did Napoleon defeat at Waterloo?", "reversal")]
    assert row(*swap[0][:2])[col["do_support_diff"]] == 1
    assert row("Who defeated Napoleon?", "Who beat Napoleon?")[col["do_support_diff"]] == 0
    # one negation each, on different words
    r = row("Why are my plants not producing fruit?",
            "Why are my plants producing fruit but no leaves?")
    assert r[col["negation_diff"]] == 0 and r[col["negated_diff"]] == 2
    # (crude on purpose: the next content word, so "isn't my laptop charging" negates
    # "laptop"; the trees weigh it as evidence beside the rest)
    assert row("Why is my laptop not charging?",
               "Why is the laptop not charging when plugged in?")[col["negated_diff"]] == 0


def test_units_are_read_under_one_name() -> None:
    """"200 degrees Celsius", "200 °C" and "200 C" are one quantity; "C" after "in" is a
    language unless the text names a temperature scale. So a conversion asked the other
    way round is the same words in another order, which the order features see."""
    from semcache.verifiers.features import features, parse

    col = {f: i for i, f in enumerate(FEATURES)}
    same = [parse(t) for t in ("Convert 200 degrees Celsius to Fahrenheit",
                               "convert 200°C to F", "Convert 200 C into fahrenheit")]
    assert {p.bindings for p in same} == {frozenset({("200", "celsius")})}
    assert all(p.units == {"celsius", "fahrenheit"} for p in same)
    assert parse("How do I sort a list in C?").units == {"c"}
    assert parse("5 kilometres in miles").bindings == parse("5 km in mi").bindings
    a = parse("What oven temperature in Fahrenheit is 200°C?")
    b = parse("What oven temperature in Celsius is 200°F?")
    row = features(a, [b], [0.95])[0]
    assert row[col["unit_diff"]] == 0 and row[col["unit_binding_diff"]] == 2
    assert row[col["order_discordance"]] > 0  # the two scales swapped places
    v = StructuralVerifier()
    assert v.verify("What oven temperature in Fahrenheit is 200°C?",
                    ["What oven temperature in Celsius is 200°F?"], [0.95])[0] < v.threshold
    paraphrase = v.verify("Convert 200 degrees Celsius to Fahrenheit",
                          ["convert 200°C to F"], [0.9])[0]
    assert paraphrase >= v.threshold


@pytest.mark.parametrize("a, b", [
    ("Solve for x: 3x + 7 = 22", "Solve for x: 3x - 7 = 22"),
    ("How do I sort a list in C++?", "How do I sort a list in C#?"),
    ("Is 5 > 3?", "Is 5 < 3?"),
    ("What is -5 squared?", "What is 5 squared?"),
    ("what is 2*3", "what is 2/3"),
])
def test_same_words_with_other_operators_are_another_question(a: str, b: str) -> None:
    """The features read words, so these pairs were "the same words in the same order"
    and scored 1.0 by rule: a certain wrong answer. Only the operators differ, and the
    operators are the question."""
    v = StructuralVerifier()
    assert v.verify(a, [b], [0.97])[0] == 0.0
    assert v.verify(b, [a], [0.97])[0] == 0.0


@pytest.mark.parametrize("a, b", [
    ("What is 2+2?", "What is 2 + 2?"), ("Is it well-known?", "Is it well known?"),
    ("What is **Python**?", "What is Python?"), ("- item one", "item one"),
    ("> what is python", "what is python"), ("what is 2*3", "what is 2 * 3"),
])
def test_spacing_markdown_and_hyphenated_words_are_not_operators(a: str, b: str) -> None:
    v = StructuralVerifier()
    assert v.verify(a, [b], [0.97])[0] == 1.0


def test_a_prompt_of_many_distinct_words_costs_about_its_parse() -> None:
    """The word-order feature compared every pair of shared words: 2,000 distinct
    words in 8k characters made 2 million pairs per candidate (90 ms, 9x the parse).
    It costs no more than parsing the texts now, with a wide margin."""
    v = StructuralVerifier()
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = [a + b + c for a in letters for b in letters for c in letters]
    spent, parsing = float("inf"), float("inf")
    for run in range(3):
        q = " ".join(words[run * 2000:(run + 1) * 2000])
        p = q + " again"  # the same words and one more: scored by the model
        t0 = time.perf_counter()
        parse(q), parse(p)
        t1 = time.perf_counter()
        v.verify(q, [p], [0.99])
        parsing, spent = min(parsing, t1 - t0), min(spent, time.perf_counter() - t1)
    assert spent < 3 * parsing, (spent, parsing)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from("abcdefghij"), max_size=10, unique=True),
       st.permutations(list("abcdefghij")))
def test_the_order_feature_counts_exactly_the_discordant_pairs(shared, order) -> None:
    """The fast count against the pair-by-pair definition."""
    from semcache.verifiers.features import _discordance

    p, q = parse(" ".join(f"x{w}" for w in "abcdefghij")), parse(
        " ".join(f"x{w}" for w in order))
    words = frozenset(f"x{w}" for w in shared)
    first = sorted(words, key=p.first_pos.__getitem__)
    pos = [q.first_pos[w] for w in first]
    n = len(pos)
    want = (sum(pos[i] > pos[j] for i in range(n) for j in range(i + 1, n))
            / (n * (n - 1) / 2)) if n >= 2 else 0.0
    assert _discordance(p, q, words) == want


def test_the_model_files_points_are_presets_by_name(tmp_path) -> None:
    """``point=`` (and ``Cache(verifier="structural-strict")``) takes the floor and the
    threshold of one of the model file's recorded points, so a user's "strict" follows
    every refit instead of numbers copied from the docs."""
    doc = json.loads((resources.files("semcache") / "data" / MODEL_FILE).read_text())
    for point in ("strict", "wide", "veto"):
        v = StructuralVerifier(point=point)
        assert (v.floor, v.threshold) == (doc[point]["floor"], doc[point]["threshold"])
        assert v.name == f"structural-{point}"
    v = StructuralVerifier()
    assert (v.floor, v.threshold, v.name) == (doc["floor"], doc["threshold"], "structural")
    c = Cache(type="faiss-semantic", verifier="structural-strict")
    assert c.similarity_threshold == doc["strict"]["floor"]
    assert c.verifier is not None and c.verifier.threshold == doc["strict"]["threshold"]
    c = Cache(type="faiss-semantic", verifier="structural-strict", verifier_threshold=0.99)
    assert c.verifier is not None and c.verifier.threshold == 0.99
    for point in ("wide", "veto"):  # each recorded point has a name a user can pass
        c = Cache(type="faiss-semantic", verifier=f"structural-{point}")
        assert c.verifier is not None and c.verifier.name == f"structural-{point}"
        assert c.similarity_threshold == doc[point]["floor"]
        assert c.verifier.threshold == doc[point]["threshold"]
    with pytest.raises(ConfigError, match="unknown verifier point 'loose'"):
        StructuralVerifier(point="loose")
    # a strict point the fitting could not reach is recorded without floor and threshold
    doc["strict"] = {"reached": False, "reason": "no point reaches precision 0.95"}
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="no usable 'strict' point"):
        StructuralVerifier(path, point="strict")


def test_the_strict_preset_refuses_what_the_default_serves(minilm) -> None:
    """Between the two thresholds: a rewording the default serves and strict does not;
    hit metadata names the preset. Which rewording scores between them moves with each
    refit, so the first of a few that does is taken (one must)."""
    stored = "What is the capital of France?"
    rewordings = ["capital of France?", "what's france's capital?",
                  "Tell me the capital of France", "What's the capital of France?"]
    v = StructuralVerifier()
    strict_v = StructuralVerifier(point="strict")
    sims = [float(a @ b) for a, b in zip(minilm.embed(rewordings),
                                          minilm.embed([stored] * len(rewordings)))]
    scores = v.score_pairs(rewordings, [stored] * len(rewordings), sims)
    between = [r for r, p, c in zip(rewordings, scores, sims)
               if v.threshold <= p < strict_v.threshold and c >= max(v.floor, strict_v.floor)]
    assert between, list(zip(rewordings, scores))
    ask = between[0]

    def lookup(verifier: str) -> tuple[object, dict]:
        c = Cache(type="faiss-semantic", embedder=minilm, verifier=verifier)
        c.add_cache({"answer": "Paris"}, model="m",
                    messages=[{"role": "user", "content": stored}])
        return c.lookup_with_metadata(model="m", messages=[{"role": "user", "content": ask}])

    hit, meta = lookup("structural")
    assert hit is not None and meta["verifier"] == "structural"
    strict_hit, strict_meta = lookup("structural-strict")
    assert strict_hit is None and strict_meta["decision"] == "verifier_rejected"
    assert meta["verifier_score"] < strict_meta["verifier_threshold"]


def test_queries_do_not_push_stored_prompts_out_of_the_parse_cache() -> None:
    """A query is new at nearly every lookup: its parse must not take a place in the
    stored prompts' cache (16,384 parses), or a stream of one-off queries evicts the
    prompts that come back as candidates again and again. ``explain`` right after the
    scoring still finds the query's parse."""
    from semcache.verifiers import structural

    v = StructuralVerifier()
    stored = "How do I convert Celsius to Kelvin for a lab report?"
    v.verify(stored + " now", [stored], [0.95])  # the prompt's parse is cached here
    before = structural._parse_short.cache_info()
    queries = [f"How do I convert Celsius to Kelvin for lab report number {i}?"
               for i in range(300)]
    for q in queries:
        v.verify(q, [stored], [0.95])
        v.explain(q, stored)
    after = structural._parse_short.cache_info()
    assert after.currsize == before.currsize, "queries entered the prompts' cache"
    assert after.hits - before.hits >= 2 * len(queries)  # the prompt: scored, explained
    query_cache = structural._parse_query_cached.cache_info()
    assert query_cache.hits >= len(queries)  # explain found each query's parse


def test_a_stored_prompt_is_parsed_when_stored_not_at_its_first_hit(minilm) -> None:
    """The parse of a stored prompt (and the first reading of its words) cost most right
    after the query's embedding: the cache does it when the prompt is stored, so even
    the first hit on an entry parses only its query (issue #25)."""
    from semcache.verifiers import structural

    c = Cache(type="faiss-semantic", embedder=minilm)
    stored = "Which household plants tolerate a north-facing windowsill in winter?"
    before = structural._parse_short.cache_info()
    c.add_cache({"a": "pothos, snake plant"}, **_req(stored))
    stored_at = structural._parse_short.cache_info()
    assert stored_at.misses == before.misses + 1  # parsed once, at the store
    hit, meta = c.lookup_with_metadata(
        **_req("which household plants tolerate a north facing windowsill in winter"))
    assert hit is not None and meta["verifier"] == "structural"
    after = structural._parse_short.cache_info()
    assert after.misses == stored_at.misses and after.hits > stored_at.hits


def test_word_readings_are_memoized_for_words_not_for_any_token() -> None:
    """Word readings are memoized (65,536 of each), but prompts are client input: a
    long "word" must not take a place there, or unique 8 KB tokens could hold half a
    gigabyte. Words of ordinary length are still read once."""
    from semcache.verifiers import features

    caches = [getattr(f, "cache_info", None) for f in
              (features._word_memo, features._stem_memo, features._base_form_memo)]
    assert all(caches), "the word readings are not memoized"
    before = [c().currsize for c in caches]
    for i in range(50):
        parse(("x" * 3000) + "abcdefghij"[i % 10] * (i + 1) + " is long")
    grown = [c().currsize - b for c, b in zip(caches, before)]
    assert max(grown) <= 2, grown  # "is", "long": not the 50 long tokens
    parse("How do I convert Celsius to Kelvin?")
    hits = features._word_memo.cache_info().hits
    parse("How do I convert Celsius to Kelvin?!")
    assert features._word_memo.cache_info().hits > hits


def _walk(given: dict, baseline: float, x: np.ndarray) -> float:
    """The ensemble's raw score of one sample, tree by tree from the stored arrays: the
    plain reading of the file that the vectorised evaluation must agree with."""
    total = baseline
    for t in range(len(given["feature"])):
        node = 0
        while int(given["left"][t][node]) != node:
            go_right = x[int(given["feature"][t][node])] > float(given["threshold"][t][node])
            node = int(given["right" if go_right else "left"][t][node])
        total += float(given["value"][t][node])
    return total


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_the_tree_evaluation_agrees_with_walking_each_tree(seed, n) -> None:
    """One candidate (the usual lookup) takes its own path through the trees; both paths
    must give each tree's leaf. Samples sit on split thresholds too, where ``>`` against
    ``>=`` or a float32 rounding would pick the other leaf."""
    ens = StructuralVerifier()._ensemble
    given_ = {k: np.asarray(v) for k, v in ens._given.items()}
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 3, (n, ens.n_features)).astype(np.float32)
    inner = given_["left"] != np.arange(given_["left"].shape[1])
    f, th = given_["feature"][inner], given_["threshold"][inner]
    for row in X:  # a third of the features exactly at a split's threshold (as float32)
        for j in rng.choice(len(f), ens.n_features // 3):
            row[f[j]] = np.float32(th[j])
    want = [_walk(given_, ens.baseline, x.astype(np.float64)) for x in X]
    together = ens.raw(X)
    alone = [float(ens.raw(X[i:i + 1])[0]) for i in range(n)]
    assert together == pytest.approx(want, abs=1e-9)
    assert alone == pytest.approx(want, abs=1e-9)
