"""The structural verifier on huge prompts: its cost is bounded whatever the prompt's
size (a 4 MB prompt took 2 s of pure Python holding the GIL, stalling every other
request of a proxy), yet two huge prompts that differ where the verifier does not parse
(the middle of a long context) are never served each other's answer, and identical huge
prompts and ordinary short ones score exactly as before."""

from __future__ import annotations

import gc
import itertools
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semcache import Cache
from semcache.embedders.base import Embedder
from semcache.verifiers.features import parse
from semcache.verifiers.structural import StructuralVerifier

# real prose with a real vocabulary (docs/*.md), repeated to the length a test needs
_PROSE = " ".join(p.read_text() for p in sorted(
    (Path(__file__).resolve().parents[1] / "docs").glob("*.md")))
_RUN = itertools.count()


def _context(n: int, seed: int = 0) -> str:
    """``n`` characters of prose, a different rotation per seed."""
    start = (seed * 7919) % len(_PROSE)
    text = _PROSE[start:] + " " + _PROSE[:start]
    return (text * (n // len(text) + 1))[:n]


class Same(Embedder):
    """Every prompt is one vector: the embedding cannot tell any two prompts apart,
    as MiniLM cannot tell two prompts that share their first ~8k characters."""

    model_id = "same"
    dim = 4

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), 4), np.float32)


def _req(text: str) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


@pytest.fixture(scope="module")
def verifier() -> StructuralVerifier:
    return StructuralVerifier()


# -- (1) the cost is bounded ----------------------------------------------------------
def _cost(v: StructuralVerifier, size: int, cands: int) -> float:
    """The best of three lookups' verifier time, each with texts never seen before (the
    parse cache must not hide the cost): a query of ``size`` characters against
    ``cands`` candidates that share its context and ask another question."""
    best = float("inf")
    for _ in range(3):
        run = next(_RUN)
        ctx = f"run {run}. " + _context(size, run)
        query = ctx + " How do I convert Celsius to Kelvin?"
        prompts = [ctx + f" How do I convert {i} Kelvin to Celsius?" for i in range(cands)]
        t0 = time.perf_counter()
        v.verify(query, prompts, [0.99] * cands)
        best = min(best, time.perf_counter() - t0)
    return best


def test_a_huge_lookup_costs_about_what_an_ordinary_long_one_costs(verifier) -> None:
    small = _cost(verifier, 8_000, 4)
    huge = _cost(verifier, 1_000_000, 4)  # the proxy's default max_prompt_chars
    # generous: the bounded rule costs about the same; parsing it all cost ~80x
    assert huge < 10 * small, (huge, small)


def test_the_parse_cache_keeps_no_huge_text_alive(verifier) -> None:
    texts = [f"run {next(_RUN)}. " + _context(1_000_000, i) for i in range(3)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for t in texts:
            verifier.verify(t, ["How do I convert Celsius to Kelvin?"], [0.9])
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # what a parse keeps per text is bounded by the parsed window, not the text: the
    # 3 MB of text (and their far larger word lists) are not kept by the cache
    assert kept < 1_500_000, kept


# -- (2) never served each other's answer --------------------------------------------
CTX = _context(200_000)
MID = len(CTX) // 2
QUESTION = "\n\nHow do I convert Celsius to Kelvin?"
DIFFERENT = {
    # a word changed deep inside the context: beyond any parsed head and tail
    "middle word": CTX[:MID] + " Rome " + CTX[MID:] + QUESTION,
    "middle number": CTX[:MID] + " 50 " + CTX[MID:] + QUESTION,
    # another question at the end: what a cut to the first characters would lose
    "reversed question": CTX + "\n\nHow do I convert Kelvin to Celsius?",
    "other operator": CTX + "\n\nSolve 3x - 7 = 22",
}
STORED = {"other operator": CTX + "\n\nSolve 3x + 7 = 22"}


@pytest.mark.parametrize("name", sorted(DIFFERENT))
def test_huge_prompts_differing_beyond_the_parse_are_never_served(name) -> None:
    stored, asked = STORED.get(name, CTX + QUESTION), DIFFERENT[name]
    assert stored != asked and stored[:50_000] == asked[:50_000]
    cache = Cache(type="faiss-semantic", embedder=Same(), similarity_threshold=0.5)
    cache.add_cache({"answer": "for the stored prompt"}, **_req(stored))
    hit, meta = cache.lookup_with_metadata(**_req(asked))
    assert hit is None, (name, meta)
    assert meta["decision"] == "verifier_rejected", meta
    # and the other way round
    other = Cache(type="faiss-semantic", embedder=Same(), similarity_threshold=0.5)
    other.add_cache({"answer": "for the asked prompt"}, **_req(asked))
    assert other.lookup(**_req(stored)) is None, name


_EDIT = st.text(alphabet="abcxyz 0123456789+-=.", min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(at=st.floats(0.0, 1.0), cut=st.integers(0, 12), insert=_EDIT,
       size=st.sampled_from([9_000, 20_000, 200_000]))
def test_an_edit_outside_the_parsed_windows_scores_zero(verifier, at, cut, insert,
                                                        size) -> None:
    """Any one edit (a cut and an insertion) at any place of a long prompt: the pair is
    scored only if what differs lies where both texts are parsed, and otherwise is 0."""
    from semcache.verifiers.structural import HEAD_CHARS, TAIL_CHARS

    base = _context(size, 3) + QUESTION
    i = int(at * (len(base) - cut))
    edited = base[:i] + insert + base[i + cut:]
    if edited == base:
        return
    # where they differ: [pre, len - suf) in each
    pre = len(os.path.commonprefix([base, edited]))
    suf = len(os.path.commonprefix([base[pre:][::-1], edited[pre:][::-1]]))
    n, m = len(base), len(edited)
    seen = (pre >= n - TAIL_CHARS and pre >= m - TAIL_CHARS) or (
        n - suf <= HEAD_CHARS and m - suf <= HEAD_CHARS) or (
        max(n, m) <= HEAD_CHARS + TAIL_CHARS)
    score = float(verifier.verify(base, [edited], [1.0])[0])
    if not seen:
        assert score == 0.0, (pre, n - suf, m - suf, n, m)


# -- (3) what was right before stays exactly as it was --------------------------------
def test_identical_huge_prompts_are_the_same_question(verifier) -> None:
    big = "How do I convert 200 degrees Celsius to F? " * 100_000
    assert verifier.verify(big, [big, str(big)], [0.9, 0.9]).tolist() == [1.0, 1.0]
    cache = Cache(type="faiss-semantic", embedder=Same(), similarity_threshold=0.5)
    cache.add_cache({"answer": "a"}, **_req(CTX + QUESTION))
    # another exact key, the same prompt but for a trailing newline: a semantic hit
    hit, meta = cache.lookup_with_metadata(**_req(CTX + QUESTION + "\n"))
    assert hit is not None and meta["stage"] == "semantic", meta
    assert meta["verifier_score"] == 1.0


def test_a_huge_prompt_differing_in_its_tail_is_left_to_the_model(verifier) -> None:
    # the rule does not refuse everything long: a difference in the tail, where the
    # features see it, is scored by the model; whitespace at either end is no difference
    asked = CTX + "\n\nhow do I convert celsius to kelvin please"
    assert 0.0 < verifier.verify(CTX + QUESTION, [asked], [0.99])[0] < 1.0
    assert verifier.verify(CTX + QUESTION, [f"  {CTX}{QUESTION}\n"], [0.99]).tolist() \
        == [1.0]


_WORDS = st.sampled_from("how do I convert Celsius to Kelvin not 200 miles km what is "
                         "the capital of France Paris 3x + 7 = 22 - C++ C# ? .".split())


def _before(v: StructuralVerifier, q: str, prompts: list[str], sims: list[float]
            ) -> list[float]:
    """The scores as computed before the bounded rule: the whole texts parsed."""
    p = v.score_pairs([q] * len(prompts), prompts, sims)
    pq = parse(q)
    out = []
    for prompt, s in zip(prompts, p):
        c = parse(prompt)
        out.append((1.0 if c.operators == pq.operators else 0.0)
                   if c.words == pq.words else float(s))
    return out


@settings(max_examples=80, deadline=None)
@given(q=st.lists(_WORDS, min_size=1, max_size=30).map(" ".join),
       ps=st.lists(st.lists(_WORDS, min_size=1, max_size=30).map(" ".join),
                   min_size=1, max_size=4),
       sims=st.lists(st.floats(0.5, 1.0), min_size=4, max_size=4))
def test_ordinary_prompts_score_exactly_as_before(verifier, q, ps, sims) -> None:
    sims = sims[:len(ps)]
    assert verifier.verify(q, ps, sims).tolist() == _before(verifier, q, ps, sims)


def test_prompts_up_to_the_window_score_exactly_as_before(verifier) -> None:
    q = _context(7_000, 1) + QUESTION
    ps = [_context(7_000, 1) + " How do I convert Kelvin to Celsius?",
          _context(6_000, 2) + QUESTION, q.lower()]
    assert verifier.verify(q, ps, [0.9] * 3).tolist() == _before(verifier, q, ps, [0.9] * 3)

