"""Contract every Embedder passes, unchanged.

Use it by subclassing in a backend's test module and providing an ``embedder`` fixture:

    class TestOnnxFp32(RealModelEmbedderContract):   # a trained model: semantics too
        @pytest.fixture
        def embedder(self): ...

``EmbedderContract`` alone (a fake server's deterministic vectors) leaves the semantic
check out: it does not apply, so it is not collected at all rather than skipped.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from semcache import InvalidRequestError
from semcache.embedders.base import Embedder

TEXTS = [
    "How do I reset my password?",
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain the difference between TCP and UDP.",
    "",  # an empty text is a text
    "Ünïcödé, emoji 🚀 and 中文 are text too.",
]
PARAPHRASES = [
    ("How do I reset my password?", "What is the way to change a forgotten password?",
     "Recommend a good pizza place in Naples."),
    ("What is the capital of France?", "Which city is France's capital?",
     "How many legs does a spider have?"),
    ("How can I lose weight quickly?", "What is the fastest way to lose weight?",
     "How do I compile a C program with gcc?"),
]


class EmbedderContract:
    #: a trained model (paraphrases must be closer than unrelated texts)
    #: elementwise tolerance between batched and one-by-one embeddings (padding in a
    #: batch changes float summation order; int8 activation scales are per batch)
    batch_atol = 1e-4

    def test_dim_matches_output(self, embedder: Embedder) -> None:
        dim = embedder.dim
        assert isinstance(dim, int) and dim > 0
        assert embedder.embed(TEXTS[:2]).shape == (2, dim)

    def test_model_id_is_a_nonempty_string(self, embedder: Embedder) -> None:
        assert isinstance(embedder.model_id, str) and embedder.model_id not in ("", "unknown")

    def test_float32_contiguous_unit_norm(self, embedder: Embedder) -> None:
        v = embedder.embed(TEXTS)
        assert v.dtype == np.float32
        assert v.flags["C_CONTIGUOUS"]
        assert np.all(np.isfinite(v))
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)

    def test_deterministic(self, embedder: Embedder) -> None:
        a = embedder.embed(TEXTS)
        embedder._lru.clear()  # recompute, not a cache hit
        b = embedder.embed(TEXTS)
        np.testing.assert_allclose(a, b, atol=1e-6)

    def test_batch_equals_one_by_one(self, embedder: Embedder) -> None:
        batched = embedder.embed(TEXTS)
        embedder._lru.clear()
        single = np.stack([embedder.embed([t])[0] for t in TEXTS])
        np.testing.assert_allclose(batched, single, atol=self.batch_atol)

    def test_empty_list(self, embedder: Embedder) -> None:
        out = embedder.embed([])
        assert out.shape == (0, embedder.dim) and out.dtype == np.float32

    def test_duplicates_in_one_call(self, embedder: Embedder) -> None:
        v = embedder.embed(["same", "other", "same"])
        np.testing.assert_array_equal(v[0], v[2])

    @pytest.mark.parametrize("bad", [[1], ["ok", None], [b"bytes"], "a string", None, 7,
                                     b"bytes", {"a": 1}])
    def test_non_str_input_rejected(self, embedder: Embedder, bad: object) -> None:
        with pytest.raises(InvalidRequestError):
            embedder.embed(bad)  # type: ignore[arg-type]

    @pytest.mark.parametrize("bad", [["\ud800"], ["ok", "lone \udfff surrogate"]])
    async def test_lone_surrogate_is_the_callers_error(self, embedder: Embedder,
                                                       bad: list[str]) -> None:
        # JSON can spell one ("\ud800"), and no tokenizer or HTTP client can encode it:
        # the caller's error, named as such, not a failure of the embedder (a "backend
        # down" miss, logged as an outage, that fails a whole batch of other callers)
        for call in (embedder.embed, embedder.aembed):
            with pytest.raises(InvalidRequestError, match="surrogate") as info:
                result = call(bad)
                if asyncio.iscoroutine(result):
                    await result
            assert "text " in str(info.value)

    def test_nul_and_control_characters_are_text(self, embedder: Embedder) -> None:
        v = embedder.embed(["a\x00b", "\x07\x1b[0m", " \t\n "])
        assert v.shape == (3, embedder.dim) and np.all(np.isfinite(v))

    async def test_async_twin_equal(self, embedder: Embedder) -> None:
        sync = embedder.embed(TEXTS)
        embedder._lru.clear()
        asyn = await embedder.aembed(TEXTS)
        assert asyn.dtype == np.float32 and asyn.shape == sync.shape
        np.testing.assert_allclose(asyn, sync, atol=1e-6)

    async def test_async_rejects_non_str(self, embedder: Embedder) -> None:
        with pytest.raises(InvalidRequestError):
            await embedder.aembed([1])  # type: ignore[list-item]

    def test_returned_array_is_the_callers(self, embedder: Embedder) -> None:
        a = embedder.embed(["mutate me"])
        a[:] = 0  # must not poison the LRU
        b = embedder.embed(["mutate me"])
        np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)



class RealModelEmbedderContract(EmbedderContract):
    def test_paraphrase_closer_than_unrelated(self, embedder: Embedder) -> None:
        for query, para, unrelated in PARAPHRASES:
            q, p, u = embedder.embed([query, para, unrelated])
            assert float(q @ p) > float(q @ u) + 0.2, (query, float(q @ p), float(q @ u))
