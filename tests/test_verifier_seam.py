"""The Verifier seam inside a real Cache (FAISS + the local MiniLM embedder): the best
*verified* candidate is served, not the nearest; a broken verifier fails closed (a
counted miss); hit metadata carries the verifier's name, score and the near miss."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from semcache import BackendError, Cache, ConfigError
from semcache.policies.base import Decision, DecisionPolicy
from semcache.verifiers import Verifier, rank, resolve_verifier

Q = "How do I convert a PDF to a Word document?"
NEAR = "How do I convert a Word document to a PDF?"  # the nearest, and the wrong one
PARA = "What's the best way to turn a PDF into a Word doc?"


def _req(text: str) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


class KeywordVerifier(Verifier):
    """A real, deterministic verifier: a candidate is right unless it mentions a banned
    phrase. Records what it was asked, so tests can see what reached it."""

    name = "keyword"

    def __init__(self, banned: str, threshold: float = 0.5, floor: float = 0.3) -> None:
        self.banned, self.threshold, self.floor = banned, threshold, floor
        self.calls: list[tuple[str, list[str], list[float]]] = []

    def _score(self, query: str, prompts: Sequence[str], similarities: np.ndarray):
        self.calls.append((query, list(prompts), list(similarities)))
        return np.array([0.1 if self.banned in p else 0.9 for p in prompts])


class BrokenVerifier(Verifier):
    name = "broken"
    floor = 0.3

    def __init__(self, answer) -> None:
        self.answer = answer

    def _score(self, query, prompts, similarities):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
def filled(minilm):
    def make(verifier, **kw) -> Cache:
        c = Cache(type="faiss-semantic", embedder=minilm, verifier=verifier, **kw)
        c.add_cache({"a": "word-to-pdf"}, **_req(NEAR))
        c.add_cache({"a": "pdf-to-word"}, **_req(PARA))
        return c
    return make


def test_serves_the_best_verified_candidate_not_the_nearest(filled) -> None:
    v = KeywordVerifier(banned="Word document to a PDF")
    c = filled(v)
    hit, meta = c.lookup_with_metadata(**_req(Q))
    assert hit is not None and hit.value == {"a": "pdf-to-word"}
    assert meta["matched_prompt"] == PARA and meta["stage"] == "semantic"
    assert meta["verifier"] == "keyword" and meta["verifier_score"] == pytest.approx(0.9)
    assert meta["near_miss_prompt"] == NEAR
    assert meta["near_miss_verifier_score"] == pytest.approx(0.1)
    # the nearest by cosine is the rejected one: the verifier, not the index, decided
    assert meta["near_miss_similarity"] > meta["similarity"]
    # one batched call with both candidates
    assert len(v.calls) == 1 and sorted(v.calls[0][1]) == sorted([NEAR, PARA])


@pytest.mark.parametrize("kind", ["qdrant-semantic", "redis-semantic", "faiss-semantic"])
def test_every_index_serves_the_verified_candidate(kind, request, tmp_path) -> None:
    import uuid

    if kind == "qdrant-semantic":
        params = {"qdrant_collection_name": "v", "qdrant_path": str(tmp_path / "q")}
    elif kind == "redis-semantic":
        params = {"redis_url": request.getfixturevalue("redis_stack_url"),
                  "redis_semantic_cache_index_name": "v" + uuid.uuid4().hex[:6]}
    else:
        params = {"disk_cache_dir": str(tmp_path / "f")}
    v = KeywordVerifier(banned="Word document to a PDF")
    c = Cache(type=kind, verifier=v, namespace="v" + uuid.uuid4().hex[:8], **params)
    try:
        c.add_cache({"a": "word-to-pdf"}, **_req(NEAR))
        c.add_cache({"a": "pdf-to-word"}, **_req(PARA))
        hit, meta = asyncio.run(c.alookup_with_metadata(**_req(Q)))
        assert hit is not None and hit.value == {"a": "pdf-to-word"}
        assert meta["near_miss_prompt"] == NEAR and meta["verifier"] == "keyword"
    finally:
        if kind == "redis-semantic":
            c.index.drop()
        c.close()


def test_all_rejected_is_a_counted_miss_with_the_near_miss(filled) -> None:
    c = filled(KeywordVerifier(banned="PDF"))
    hit, meta = c.lookup_with_metadata(**_req(Q))
    assert hit is None and meta["decision"] == "verifier_rejected"
    assert meta["near_miss_verifier_score"] == pytest.approx(0.1)
    assert meta["nearest_prompt"] in (NEAR, PARA)
    assert c.stats()["verifier_rejected"] == 1


def test_only_candidates_above_the_cosine_floor_are_scored(filled) -> None:
    v = KeywordVerifier(banned="zzz")
    c = filled(v, similarity_threshold=0.99)
    hit, meta = c.lookup_with_metadata(**_req("What is the capital of France?"))
    assert hit is None and v.calls == []
    assert meta["decision"] == "below_floor" and meta["verifier"] == "keyword"


def test_a_per_request_error_target_still_asks_the_verifier(filled, monkeypatch) -> None:
    """``cache={"target_error_rate": ...}`` on a static cache decides with a verified
    policy; it must see the verifier's scores like the cache-wide one, or a reversal at
    cosine 0.99 is judged on the cosine alone (it was: the verifier ran for the cache's
    own policy only)."""
    from semcache.policies.verified import VerifiedPolicy

    v = KeywordVerifier(banned="Word document to")
    c = filled(v)
    seen = []
    real = VerifiedPolicy.decide

    def spy(self, query, candidates, threshold, **kw):  # type: ignore[no-untyped-def]
        seen.extend(cand.score for cand in candidates)
        return real(self, query, candidates, threshold, **kw)

    monkeypatch.setattr(VerifiedPolicy, "decide", spy)
    c.lookup_with_metadata(**_req(Q), cache={"target_error_rate": 0.05})
    assert v.calls and v.calls[0][0] == Q
    assert seen and None not in seen and pytest.approx(0.1) in seen


@pytest.mark.parametrize("answer", [
    RuntimeError("model file vanished"),
    np.array([0.5]),                 # one score for two prompts
    np.array([0.9, float("nan")]),   # not a probability
    np.array([1.5, 0.9]),
])
def test_a_broken_verifier_fails_closed(filled, answer) -> None:
    c = filled(BrokenVerifier(answer))
    hit, meta = c.lookup_with_metadata(**_req(Q))
    assert hit is None and meta["decision"] == "verifier_failed"
    assert any(e.startswith("verifier:") for e in meta["errors"])
    s = c.stats()
    assert s["errors"]["verifier"] == 1 and s["verifier_failed"] == 1
    # the exact stage is untouched by a broken verifier
    assert c.lookup(**_req(PARA)) is not None


class OwnTwinsVerifier(Verifier):
    """A verifier that does I/O overrides ``averify`` (docs/verifier.md), and may
    override ``verify`` too: its answers must be checked all the same."""

    name = "own-twins"
    floor = 0.3

    def __init__(self, answer) -> None:
        self.answer = answer

    def _score(self, query, prompts, similarities):
        raise AssertionError("not called: both twins are overridden")

    def verify(self, query, prompts, similarities):
        return self.answer

    async def averify(self, query, prompts, similarities):
        return self.answer


@pytest.mark.parametrize("path", ["sync", "async"])
@pytest.mark.parametrize("answer", [
    np.array([0.9]),                 # one score for two prompts
    np.array([0.9, 0.9, 0.9]),       # three
    [0.9, float("nan")],             # a list, and not a probability
    [1.5, 0.9],
    None,
])
def test_an_overridden_twin_is_checked_and_fails_closed(filled, answer, path) -> None:
    # unchecked, a short answer served on the scores it had, a long one or a list
    # crashed the lookup with a raw IndexError / TypeError, 1.5 served
    c = filled(OwnTwinsVerifier(answer))
    if path == "sync":
        hit, meta = c.lookup_with_metadata(**_req(Q))
    else:
        hit, meta = asyncio.run(c.alookup_with_metadata(**_req(Q)))
    assert hit is None and meta["decision"] == "verifier_failed"
    s = c.stats()
    assert s["errors"]["verifier"] == 1 and s["verifier_failed"] == 1


class AsyncIOVerifier(KeywordVerifier):
    """The documented pattern for a verifier that does I/O: ``_score`` for the sync
    path, ``averify`` overridden for real async I/O; here its async twin is broken."""

    name = "async-io"

    async def averify(self, query, prompts, similarities):
        return np.array([0.9])  # one score for two candidates


def test_the_async_twin_fails_closed_as_the_sync_one_does(filled) -> None:
    # the sync path checked the answer and served the right candidate; the async one
    # served the nearest (the reversal) on the one score it got
    c = filled(AsyncIOVerifier(banned="Word document to a PDF"))
    hit, _ = c.lookup_with_metadata(**_req(Q))
    assert hit is not None and hit.value == {"a": "pdf-to-word"}
    hit, meta = asyncio.run(c.alookup_with_metadata(**_req(Q)))
    assert hit is None and meta["decision"] == "verifier_failed"
    assert c.stats()["errors"]["verifier"] == 1


def test_on_error_raise_surfaces_the_verifier_fault(filled) -> None:
    c = filled(BrokenVerifier(RuntimeError("boom")), on_error="raise")
    with pytest.raises(BackendError):
        c.lookup(**_req(Q))


def test_async_path_decides_like_the_sync_one(filled) -> None:
    c = filled(KeywordVerifier(banned="Word document to a PDF"))
    hit, meta = asyncio.run(c.alookup_with_metadata(**_req(Q)))
    assert hit is not None and hit.value == {"a": "pdf-to-word"}
    assert meta["verifier_score"] == pytest.approx(0.9)


def test_verifier_none_is_the_cosine_alone(filled) -> None:
    c = filled(None, similarity_threshold=0.85)
    hit, meta = c.lookup_with_metadata(**_req(Q))
    # the reversal is the nearest and the cosine serves it: what the verifier is for
    assert hit is not None and hit.value == {"a": "word-to-pdf"}
    assert "verifier" not in meta


def test_config_errors_name_the_parameter(minilm) -> None:
    with pytest.raises(ConfigError, match="unknown verifier 'nope'") as e:
        Cache(type="faiss-semantic", embedder=minilm, verifier="nope")
    assert e.value.parameter == "verifier"
    with pytest.raises(ConfigError, match="probability") as e:
        Cache(type="faiss-semantic", embedder=minilm, verifier_threshold=1.5)
    assert e.value.parameter == "verifier_threshold"
    with pytest.raises(ConfigError, match="semantic types only") as e:
        Cache(type="local", verifier="structural")
    with pytest.raises(ConfigError, match="needs a verifier"):
        Cache(type="faiss-semantic", embedder=minilm, verifier=None, verifier_threshold=0.5)
    with pytest.raises(ConfigError, match="Verifier"):
        resolve_verifier(42)


def test_verifier_threshold_never_changes_another_caches_verifier(filled) -> None:
    # one verifier instance shared by two caches (a loaded model, an LLM client): the
    # second cache's verifier_threshold used to be written onto the shared instance,
    # so the first cache, built strict, served at the second's lax threshold
    v = KeywordVerifier(banned="Word document to a PDF", threshold=0.5)
    strict = filled(v, verifier_threshold=0.95)
    lax = filled(v, verifier_threshold=0.05)
    assert strict.verifier is not None and lax.verifier is not None
    assert strict.verifier.threshold == 0.95 and lax.verifier.threshold == 0.05
    assert v.threshold == 0.5  # the caller's instance is not rewritten
    hit, meta = strict.lookup_with_metadata(**_req(Q))
    assert hit is None and meta["verifier_threshold"] == 0.95
    hit, meta = lax.lookup_with_metadata(**_req(Q))
    assert hit is not None and meta["verifier_threshold"] == 0.05


def test_rank_keeps_the_index_order_of_what_passes_and_the_near_miss() -> None:
    from semcache.indexes.base import Candidate

    cands = [Candidate(k, s, k, 0.0, None) for k, s in (("a", 0.99), ("b", 0.95),
                                                         ("c", 0.9))]
    passed, v = rank(cands, np.array([0.2, 0.7, 0.9]), 0.5)
    # both pass: the closer one first, not the higher score
    assert [c.key for c in passed] == ["b", "c"]
    assert v is not None and v.near_miss is not None and v.near_miss.key == "a"
    assert v.scores == {"a": 0.2, "b": 0.7, "c": 0.9}
    _, v = rank(cands, np.array([0.3, 0.1, 0.9]), 0.5)
    assert v is not None and v.near_miss is not None and v.near_miss.key == "a"
    assert rank(cands, None, 0.5) == ([], None)


class ServesTheNearest(DecisionPolicy):
    """A learning policy that draws no line of its own: it serves the nearest candidate
    it is handed (what a young or lax verified policy does with a reversal at 0.99)."""

    name = "nearest"
    learns = True

    def decide(self, query, candidates, threshold, *, target_error_rate=None):
        return Decision("serve", candidates[0], "served") if candidates else \
            Decision("miss", None, "no_candidate")

    def fresh(self):  # another namespace's: a learning policy must say how to make one
        return ServesTheNearest()


def test_an_explicit_verifier_threshold_is_a_veto_under_a_learning_policy(filled) -> None:
    """``verifier_threshold=`` is "the probability needed to serve" (docs/verifier.md).
    A learning policy was handed every scored candidate, so with target_error_rate= or
    a policy= the threshold the user set was silently ignored, while the hit metadata
    still reported it: the reversal the verifier scored 0.1 was served."""
    v = KeywordVerifier(banned="Word document to a PDF")
    c = filled(v, policy=ServesTheNearest(), verifier_threshold=0.5)
    hit, meta = c.lookup_with_metadata(**_req(Q))
    assert hit is not None and hit.value == {"a": "pdf-to-word"}
    assert meta["verifier_score"] >= meta["verifier_threshold"] == 0.5
    # nothing passes: a counted miss with the near miss, as under the static policy
    c = filled(KeywordVerifier(banned="PDF"), policy=ServesTheNearest(),
               verifier_threshold=0.5)
    hit, meta = c.lookup_with_metadata(**_req(Q))
    assert hit is None and meta["decision"] == "verifier_rejected"
    assert c.stats()["verifier_rejected"] == 1


def test_an_explicit_verifier_threshold_holds_for_a_per_request_target(filled) -> None:
    # the per-request verified policy of a static cache is a learning one too: a 0.3
    # clears its own min_score (0.25), not the 0.5 the cache was built with, so it was
    # explored (the first step to being served) instead of refused
    class Lukewarm(KeywordVerifier):
        def _score(self, query, prompts, similarities):
            return np.full(len(prompts), 0.3)

    c = filled(Lukewarm(banned=""), verifier_threshold=0.5)
    hit, meta = c.lookup_with_metadata(**_req(Q), cache={"target_error_rate": 0.4})
    assert hit is None and meta["decision"] == "verifier_rejected"


class UnpreparedVerifier(KeywordVerifier):
    """Its work on a stored prompt fails: the store must not."""

    def _prepare(self, prompt: str) -> None:
        raise RuntimeError(f"cannot prepare {prompt!r}")


def test_a_verifier_that_cannot_prepare_a_stored_prompt_leaves_the_store_alone(
        minilm, caplog) -> None:
    """``prepare`` runs when a prompt is stored, off the hit path; a verifier failing
    there is logged, and the entry is stored, indexed and served as before."""
    c = Cache(type="faiss-semantic", embedder=minilm, verifier=UnpreparedVerifier("zzz"))
    with caplog.at_level("WARNING", logger="semcache.verifiers"):
        key = c.add_cache({"a": "pdf-to-word"}, **_req(PARA))
    assert key is not None and "could not prepare" in caplog.text
    hit, meta = c.lookup_with_metadata(**_req(PARA + " please"))
    assert hit is not None and hit.value == {"a": "pdf-to-word"}
    assert meta["stage"] == "semantic"
