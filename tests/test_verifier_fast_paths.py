"""The structural verifier's shortcuts give what their plain definitions give (issue 20's
0.3 ms budget for the verify step inside a hit, where every step runs after the query's
embedding has pushed the CPU caches out).

``parse`` skips the unit pass when no word is a unit, the bindings when there is no
number, the question-word head when there is no question word; it reads the positive
forms of comparatives from a precomputed table; ``features`` computes each Jaccard from
one intersection and skips the antonym look-up when a side has no word with an
opposite; the tree ensemble scores one candidate on its own path with ``math.exp``.
Each is checked here against the definition it replaces, on texts built to reach the
cases each shortcut skips.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semcache.verifiers import features as F
from semcache.verifiers._words import (
    _ANTONYMS,
    _DO,
    _LETTER_UNITS,
    _NUMBER_WORDS,
    _STOP,
    _UNIT_CANON,
    _WH,
)
from semcache.verifiers.structural import StructuralVerifier
from semcache.verifiers.trees import TreeEnsemble

# words that reach every shortcut: units and single-letter units after numbers,
# "degrees", numbers and number words, question words and "did", comparatives and
# antonyms, negations, currency signs, capitalised names, plain words
_COMPARATIVE_LIKE = sorted({w + s for w in list(_ANTONYMS)[::7] for s in ("er", "est", "r")}
                           | {"bigger", "easier", "cheapest", "thinner", "closest", "nicer"})
_VOCAB = sorted(set(list(_UNIT_CANON)[::3]) | set(_LETTER_UNITS) | {"degree", "degrees"}
                | set(_NUMBER_WORDS) | set(_WH) | set(_DO) | set(list(_STOP)[::4])
                | set(list(_ANTONYMS)[::9]) | set(_COMPARATIVE_LIKE)
                | {"5", "2.4", "1,200", "%", "$", "$5M", "not", "can't", "won't", "twelven't",
                   "Paris", "Napoleon", "convert", "soup", "kneading", "C++", "3x", "+", "-"})
# and a few of them often, so that the pairs each shortcut looks for ("5 c", "who did",
# "happier" / "sad") come up among a few hundred examples
_DENSE = ["5", "200", "c", "f", "g", "degrees", "celsius", "kilometers", "who", "did",
          "what", "does", "happier", "sad", "cheapest", "not", "can't", "twelven't", "twelve",
          "$", "Paris", "%", "dog"]
TEXTS = (st.lists(st.sampled_from(_VOCAB) | st.text("abcxyz", min_size=1, max_size=6),
                  min_size=0, max_size=14)
         | st.lists(st.sampled_from(_DENSE), min_size=0, max_size=8)).map(" ".join)


def _plain_fields(text: str, p: F.Parsed) -> dict:
    """What each shortcut field is by its definition, from the parse's own words."""
    low = list(p.words)
    first: dict[str, int] = {}
    for i, s in enumerate(p.content):
        first.setdefault(s, i)
    return {
        "bindings": F._bindings(low), "wh_head": F._wh_head(low),
        "do_support": any(a in _WH and b in _DO for a, b in zip(low, low[1:])),
        "bases": {w: b for w in p.words if (b := F._base_form_raw(w)) != w},
        "first_pos": first, "symbols": tuple(F._SYMBOL.findall(text)),
        "negations": sum(n for _, n in F._words_of(text)[1]),
    }


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_the_parse_shortcuts_agree_with_their_definitions(text) -> None:
    p = F.parse(text)
    for field, want in _plain_fields(text, p).items():
        assert getattr(p, field) == want, field
    # the words a text without units keeps are those the unit pass would give it
    low = [F._word_raw(t)[0] for t in F._TOKEN.findall(text)]
    low = ["percent" if w == "%" else w for w in low]
    if F._UNITISH.isdisjoint(low):
        assert F._units_named(low) == (low, list(range(len(low))))


def test_the_comparatives_table_holds_every_word_with_another_positive_form() -> None:
    """Every word ``_base_form_raw`` reads as another word's comparative is in the
    table, under the same word: built from the antonym list, tried against all the
    forms the reading accepts, and against words that only look like comparatives."""
    tried = set(_COMPARATIVE_LIKE) | {"later", "lesser", "greater", "water", "tester",
                                      "sadder", "happiest", "prettier", "est", "er"}
    for b in _ANTONYMS:
        for stem in (b, b + b[-1], b[:-1], b[:-1] + "i", b + "e"):
            tried |= {stem + "er", stem + "est"}
    assert len(tried) > 2000
    for w in tried:
        assert F._COMPARATIVES.get(w, w) == F._base_form_raw(w), w


_PAIRS = st.tuples(TEXTS, TEXTS, st.floats(0.5, 1.0))


@settings(max_examples=300, deadline=None)
@given(_PAIRS)
def test_the_feature_shortcuts_agree_with_their_definitions(pair) -> None:
    a, b, cos = pair
    p, q = F.parse(a), F.parse(b)
    row = F.features(p, [q], [cos])[0]
    col = {name: float(row[i]) for i, name in enumerate(F.FEATURES)}

    def jaccard(x: frozenset, y: frozenset) -> float:
        return len(x & y) / len(x | y) if x | y else 1.0

    want = {"jaccard": jaccard(p.tokens, q.tokens),
            "content_jaccard": jaccard(p.content_set, q.content_set),
            "bigram_jaccard": jaccard(p.bigrams, q.bigrams),
            "order_discordance": F._discordance(p, q, p.content_set & q.content_set),
            "unit_binding_diff": F._binding_diff(p, q),
            "number_diff": len(p.numbers ^ q.numbers), "name_diff": len(p.names ^ q.names)}
    for name, value in want.items():
        assert col[name] == np.float32(value), name
    # the antonym look-up, without the test of whether either side has an opposite
    diff_p, diff_q = p.lowered - q.lowered, q.lowered - p.lowered
    only_p = diff_p | {p.bases[w] for w in diff_p if w in p.bases}
    only_q = diff_q | {q.bases[w] for w in diff_q if w in q.bases}
    found = any(not _ANTONYMS.get(w, set()).isdisjoint(only_q - only_p)
                for w in only_p - only_q)
    assert col["antonym"] == float(found)


def test_an_antonym_is_found_through_a_comparative_on_one_side() -> None:
    """The shortcut skips a side with no word that has an opposite: "happier" has one
    only through its positive form, so the side counts its comparatives too."""
    p, q = F.parse("Why is my dog happier at home"), F.parse("Why is my dog sad at home")
    assert F._antonym(p, q) == 1.0 == F._antonym(q, p)


def test_one_candidate_and_a_batch_score_the_same_probability() -> None:
    """A lookup with one candidate takes ``math.exp``; a batch takes ``np.exp``: the
    same float64 on the same raw score, including where the exponent overflows (the
    raw scores themselves differ in the last bits: the trees' values summed in another
    order)."""
    ens = StructuralVerifier()._ensemble
    X = np.random.default_rng(3).uniform(-1, 3, (64, ens.n_features)).astype(np.float32)
    alone = np.concatenate([ens.predict_proba(X[i:i + 1]) for i in range(len(X))])
    raw = np.concatenate([ens.raw(X[i:i + 1]) for i in range(len(X))])
    assert np.array_equal(alone, 1.0 / (1.0 + np.exp(-raw)))
    assert alone == pytest.approx(ens.predict_proba(X), abs=1e-12)
    d = ens.to_json()
    for sign in (1.0, -1.0):
        d["baseline"] = sign * 1e4  # far past math.exp's range: 1.0, or 0.0 where it overflows
        big = TreeEnsemble.from_json(d)
        with np.errstate(over="ignore"):
            assert big.predict_proba(X[:1])[0] == big.predict_proba(X[:2])[0]
        assert big.predict_proba(X[:1])[0] == (1.0 if sign > 0 else 0.0)
    assert math.isfinite(float(ens.predict_proba(X[:1])[0]))


@pytest.mark.parametrize("n", [1, 3, 40])
def test_a_score_outside_zero_and_one_is_refused_for_any_number_of_candidates(n) -> None:
    """The check reads a few scores as Python floats and many with numpy: NaN and out of
    range fail both ways."""
    from semcache._errors import BackendError

    v = StructuralVerifier()
    for bad in (float("nan"), 1.5, -0.1):
        scores = np.full(n, 0.5)
        scores[n // 2] = bad
        with pytest.raises(BackendError):
            v._checked(scores, n)
    assert v._checked(np.full(n, 1.0), n).shape == (n,)
