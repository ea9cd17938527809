"""The structural verifier reads any text a client sends without failing.

A verifier that raises fails closed (the lookup misses, ``verifier_failed`` counts it),
so a crash on some spelling is never a wrong answer, but it is a prompt that can never
hit, and a logged error on every lookup of it. "n't" written apart from its verb ("do
n't", as tokenised corpora such as the Penn Treebank write it) was one: its head word was
empty, and the parse read its first letter.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semcache import Cache
from semcache.verifiers.features import parse
from semcache.verifiers.structural import StructuralVerifier

# pieces that reach the parse's branches: contractions and a bare "n't", numbers and
# units, question words, operators, other scripts and symbols
_PIECES = st.sampled_from(list("abnt'5%$C-+=#<>*/^é北😀×°,.?") + [
    "n't", "N'T", "'t", "do", "who", "did", "degrees", "c", "km", "twelve", "not", "can't"])
TEXT = st.one_of(st.text(max_size=60), st.lists(_PIECES, max_size=20).map("".join),
                 st.lists(_PIECES, max_size=12).map(" ".join))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT, TEXT, st.floats(0.0, 1.0))
def test_any_pair_of_texts_gets_a_probability(a, b, cos) -> None:
    v = StructuralVerifier()
    for scores in (v.score_pairs([a], [b], [cos]), v.checked(a, [b, a], [cos, 1.0])):
        assert np.all((scores >= 0.0) & (scores <= 1.0))


def test_n_t_apart_from_its_verb_is_a_negation() -> None:
    apart, joined = parse("Why do n't cats like water?"), parse("Why don't cats like water?")
    assert apart.negations == joined.negations == 1
    assert apart.content == joined.content
    assert parse("Why do cats like water?").negations == 0


def test_a_prompt_with_n_t_apart_is_scored_and_served(minilm) -> None:
    c = Cache(type="faiss-semantic", embedder=minilm)
    req = {"model": "m", "messages": [{"role": "user", "content": "Why do n't cats like water?"}]}
    c.add_cache({"a": "their fur"}, **req)
    hit, meta = c.lookup_with_metadata(
        model="m", messages=[{"role": "user", "content": "why do n't cats like water"}])
    assert c.stats()["verifier_failed"] == 0
    assert hit is not None and meta["verifier"] == "structural"
