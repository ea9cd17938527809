"""BatchingEmbedder: concurrent aembed calls share model calls and get their own rows."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from semcache import BackendError, InvalidRequestError
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
