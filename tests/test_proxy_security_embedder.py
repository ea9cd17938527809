"""The local embedders cut a text before tokenizing it (issue #18, item 5): a 5 MB prompt
took 13 s to tokenize, holding the GIL, before the tokenizer truncated it to the model's
256 word-pieces. The cut (``onnx.max_chars``: 32 characters per token of the window)
must not change any vector: the token ids of the cut text are the full text's."""

from __future__ import annotations

import random
import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semcache.embedders.onnx import OnnxEmbedder, max_chars

# words of several scripts, code and numbers: word-pieces per character vary from about
# one per word (English) to several per character (Hangul, split into jamo)
WORDS = ["the", "cache", "semantic", "réponse", "naïve", "Straße", "東京", "日本語の文章",
         "한국어", "문장입니다", "привет", "мир", "مرحبا", "שלום", "नमस्ते", "🙂", "x=1;",
         "def f(a, b):", "{\"k\": [1, 2]}", "3.14159", "https://example.com/a?b=c",
         "supercalifragilisticexpialidocious", "e\u0301", "ﬁ", "\u200b"]
SPACES = [" ", "  ", "\n", "\t", "\n\n    ", " " * 8]


@st.composite
def long_texts(draw: st.DrawFn) -> str:
    seed = draw(st.integers(0, 2**32 - 1))
    space_bias = draw(st.floats(0.0, 0.9))  # from prose to heavily indented code
    rng = random.Random(seed)
    target = max_chars(256) + draw(st.integers(1, 20_000))
    parts: list[str] = []
    n = 0
    while n < target:
        piece = rng.choice(SPACES) if rng.random() < space_bias else rng.choice(WORDS)
        if not piece.isspace():
            piece += " "
        parts.append(piece)
        n += len(piece)
    return "".join(parts)


def _tokenizer(e: OnnxEmbedder):
    rt = e.load()._rt
    assert rt is not None
    return rt.tokenizer, rt.manifest["max_seq_length"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=long_texts())
def test_cutting_before_tokenizing_keeps_every_token(minilm, text):
    tok, window = _tokenizer(minilm)
    cap = max_chars(window)
    assert len(text) > cap
    assert tok.encode(text).ids == tok.encode(text[:cap]).ids


def test_a_5mb_text_is_embedded_as_fast_as_its_window(minilm):
    text = ("The quick brown fox jumps over the lazy dog. " * 120_000)[:5_000_000]
    t = time.perf_counter()
    v = minilm.embed([text + " tail"])
    took = time.perf_counter() - t
    # uncut, the tokenizer alone took 13 s on this machine; cut, about 10 ms
    assert took < 3.0, took
    np.testing.assert_allclose(v, minilm.embed([text[:max_chars(256)]]), atol=1e-6)
