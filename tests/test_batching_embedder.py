"""BatchingEmbedder: concurrent aembed calls share model calls and get their own rows."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from semcache import BackendError, BackendUnavailable, InvalidRequestError
from semcache.embedders.base import Embedder
from semcache.embedders.batching import BatchingEmbedder


class Gate(Embedder):
    """A real (hash-based) embedder whose model calls block until released, so a test
    controls what arrives while an embedding is running, without sleeping."""

    model_id = "gate"

    def __init__(self) -> None:
        super().__init__(cache_size=0)
        self.calls: list[list[str]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail = False

    @property
    def dim(self) -> int:
        return 8

    def _embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        self.entered.set()
        assert self.release.wait(10)
        if self.fail:
            raise RuntimeError("model crashed")
        return np.array([[hash(t) % 97 + 1, len(t) + 1, 1, 2, 3, 4, 5, 6] for t in texts],
                        dtype=np.float32)


async def test_callers_arriving_during_an_embedding_share_the_next_call():
    inner = Gate()
    emb = BatchingEmbedder(inner)
    first = asyncio.ensure_future(emb.aembed(["first"]))
    assert await asyncio.to_thread(inner.entered.wait, 10)  # the first call is running
    rest = [asyncio.ensure_future(emb.aembed([f"q{i}", f"r{i}"])) for i in range(31)]
    await asyncio.sleep(0)  # let them queue (no timing: they cannot finish before release)
    inner.release.set()
    out = await asyncio.gather(first, *rest)
    assert inner.calls[0] == ["first"]
    assert len(inner.calls) == 2 and len(inner.calls[1]) == 62  # one call for 31 callers
    assert emb.batches == 2 and emb.batched_texts == 63
    for i, vecs in enumerate(out[1:]):
        np.testing.assert_array_equal(vecs, inner.embed([f"q{i}", f"r{i}"]))
    np.testing.assert_array_equal(out[0], inner.embed(["first"]))


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_batch_runs():
    inner = Gate()
    inner.fail = True
    inner.release.set()
    emb = BatchingEmbedder(inner)
    results = await asyncio.gather(*(emb.aembed([f"t{i}"]) for i in range(5)),
                                   return_exceptions=True)
    assert all(isinstance(r, BackendError) for r in results)
    inner.fail = False
    vecs = await emb.aembed(["ok"])
    assert vecs.shape == (1, 8)


async def test_real_model_rows_match_one_at_a_time_embedding(minilm):
    emb = BatchingEmbedder(minilm, max_batch=16)
    texts = [f"how do I reset password number {i}" for i in range(40)]
    out = await asyncio.gather(*(emb.aembed([t]) for t in texts))
    assert emb.batches < len(texts)
    for t, v in zip(texts, out):
        np.testing.assert_allclose(v[0], minilm.embed([t])[0], atol=1e-5)
    assert emb.dim == minilm.dim and emb.model_id == minilm.model_id
    with pytest.raises(InvalidRequestError):
        await emb.aembed("not a list")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        await emb.aembed(["ok", 3])  # type: ignore[list-item]


class Strict(Gate):
    """Gate whose model, like every tokenizer and HTTP client, takes only text that can
    be encoded as UTF-8."""

    def _embed(self, texts: list[str]) -> np.ndarray:
        for t in texts:
            t.encode("utf-8")
        return super()._embed(texts)


async def test_a_lone_surrogate_fails_its_caller_alone():
    inner = Strict()
    inner.release.set()
    emb = BatchingEmbedder(inner)
    good, bad = await asyncio.gather(emb.aembed(["good"]), emb.aembed(["bad \ud800"]),
                                     return_exceptions=True)
    assert isinstance(bad, InvalidRequestError) and "surrogate" in str(bad)
    np.testing.assert_array_equal(good, inner.embed(["good"]))


@pytest.fixture
def picky_server():
    from semcache_testing.fake_openai import FakeOpenAI

    with FakeOpenAI(embedding_dim=8, embedding_max_tokens=50) as s:
        yield s


async def test_a_text_the_server_refuses_fails_its_caller_alone(picky_server):
    from semcache.embedders.openai import OpenAIEmbedder

    inner = OpenAIEmbedder("fake-embed", api_base=picky_server.base_url, dim=8,
                           max_retries=0, cache_size=0)
    emb = BatchingEmbedder(inner)
    texts = ["a short question", "word " * 100, "another short one"]
    try:
        out = await asyncio.gather(*(emb.aembed([t]) for t in texts),
                                   return_exceptions=True)
        # the three shared one request, which the server refused for the long input
        first = picky_server.requests[0]["body"]["input"]
        assert first == texts
        assert isinstance(out[1], BackendError) and "maximum context length" in str(out[1])
        for i in (0, 2):  # the other callers still get their own rows
            np.testing.assert_allclose(out[i], inner.embed([texts[i]]), atol=1e-6)
    finally:
        inner.close()


async def test_an_outage_is_not_retried_caller_by_caller(picky_server):
    from semcache.embedders.openai import OpenAIEmbedder

    picky_server.fail_next, picky_server.fail_status = 1, 503
    inner = OpenAIEmbedder("fake-embed", api_base=picky_server.base_url, dim=8,
                           max_retries=0, cache_size=0)
    emb = BatchingEmbedder(inner)
    try:
        out = await asyncio.gather(*(emb.aembed([f"t{i}"]) for i in range(4)),
                                   return_exceptions=True)
        assert all(isinstance(r, BackendUnavailable) for r in out)
        assert len(picky_server.requests) == 1  # one refused batch, no retry per caller
    finally:
        inner.close()


async def test_a_cancelled_caller_does_not_poison_its_batch():
    inner = Gate()
    emb = BatchingEmbedder(inner)
    first = asyncio.ensure_future(emb.aembed(["first"]))
    assert await asyncio.to_thread(inner.entered.wait, 10)
    gone = asyncio.ensure_future(emb.aembed(["gone"]))
    kept = asyncio.ensure_future(emb.aembed(["kept"]))
    await asyncio.sleep(0)  # both queued behind the running call
    gone.cancel()
    inner.release.set()
    np.testing.assert_array_equal(await kept, inner.embed(["kept"]))
    await first
    assert gone.cancelled()
    (q,) = emb._queues.values()
    assert not q.pending and not q.running  # no waiter left behind
