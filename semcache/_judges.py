"""Judges: was a cached answer right for a new query? (the verified policy's teacher)

A judge compares the candidate's cached answer with the fresh answer the LLM gave to the
new query. ``"exact"`` suits deterministic tasks (classification, extraction); the
``"embedding"`` judge compares the two answers' embeddings; any callable
``(query, cached_prompt, cached_answer, fresh_answer) -> bool | None`` can be given, an
LLM judge for example (sync or async; None abstains: nothing is learned).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import unicodedata
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from ._errors import ConfigError
from .embedders.base import Embedder

__all__ = [
    "CallableJudge",
    "EmbeddingJudge",
    "ExactJudge",
    "Judge",
    "answer_text",
    "resolve_judge",
]

#: cosine between two answers' MiniLM embeddings above which they count as the same
#: answer. Chosen on PAWS/QQP-like pairs: paraphrased answers of one question sit
#: mostly above 0.9, answers to merely related questions mostly below.
EMBEDDING_JUDGE_CUTOFF = 0.9


def answer_text(value: Any) -> str:
    """The text of a stored response: chat/text completions, transcriptions, or JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        choices = value.get("choices")
        if isinstance(choices, list) and choices:
            texts = []
            for ch in choices:
                if not isinstance(ch, dict):
                    continue
                msg = ch.get("message") or ch.get("delta") or {}
                content = msg.get("content") if isinstance(msg, dict) else None
                if content is None:
                    content = ch.get("text")
                if isinstance(content, str):
                    texts.append(content)
                if isinstance(msg, dict) and msg.get("tool_calls"):
                    texts.append(orjson.dumps(msg["tool_calls"],
                                              option=orjson.OPT_SORT_KEYS).decode())
            if texts:
                return "\n".join(texts)
        if isinstance(value.get("text"), str):
            return value["text"]
        if isinstance(value.get("answer"), str):
            return value["answer"]
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"\s+", " ", text).strip(" \t\n.!?;:,\"'")


class Judge:
    name = "judge"

    def judge(self, query: str, cached_prompt: str, cached_answer: Any,
              fresh_answer: Any) -> bool:
        raise NotImplementedError

    async def ajudge(self, query: str, cached_prompt: str, cached_answer: Any,
                     fresh_answer: Any) -> bool:
        return await asyncio.to_thread(self.judge, query, cached_prompt, cached_answer,
                                       fresh_answer)


class ExactJudge(Judge):
    """Normalised text equality (case, Unicode form, whitespace, end punctuation)."""

    name = "exact"

    def judge(self, query: str, cached_prompt: str, cached_answer: Any,
              fresh_answer: Any) -> bool:
        return _normalise(answer_text(cached_answer)) == _normalise(answer_text(fresh_answer))

    async def ajudge(self, *args: Any) -> bool:
        return self.judge(*args)


class EmbeddingJudge(Judge):
    name = "embedding"

    def __init__(self, embedder: Embedder, cutoff: float = EMBEDDING_JUDGE_CUTOFF) -> None:
        self.embedder = embedder
        self.cutoff = cutoff

    def judge(self, query: str, cached_prompt: str, cached_answer: Any,
              fresh_answer: Any) -> bool:
        a, b = answer_text(cached_answer), answer_text(fresh_answer)
        if _normalise(a) == _normalise(b):
            return True
        va, vb = self.embedder.embed([a, b])
        return float(va @ vb) >= self.cutoff


class CallableJudge(Judge):
    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "callable")
        self._async = inspect.iscoroutinefunction(fn)

    # A judge may abstain by returning None: no observation is recorded then.
    def judge(self, *args: Any) -> bool | None:  # type: ignore[override]
        out = self.fn(*args)
        if inspect.isawaitable(out):
            raise ConfigError("an async judge needs the async API (acompletion, "
                              "async_add_cache)", parameter="judge")
        return self._verdict(out)

    async def ajudge(self, *args: Any) -> bool | None:  # type: ignore[override]
        if self._async:
            return self._verdict(await self.fn(*args))
        return await asyncio.to_thread(self.judge, *args)

    def _verdict(self, out: Any) -> bool | None:
        """True, False (numpy's too) or None; anything else is refused, not read as
        truthy: an LLM judge's raw reply "no" would have taught the policy that a wrong
        cached answer was right. The pipeline counts and logs the refusal as a failed
        judgement, and nothing is learned from it."""
        if out is None or isinstance(out, bool):
            return out
        if isinstance(out, np.bool_):
            return bool(out)
        raise ConfigError(f"judge {self.name!r} returned {out!r} ({type(out).__name__}); "
                          "a judge returns True (the cached answer was right for the "
                          "query), False, or None to abstain", parameter="judge")


def resolve_judge(judge: str | Judge | Callable[..., Any], embedder: Embedder | None) -> Judge:
    if isinstance(judge, Judge):
        return judge
    if judge == "exact":
        return ExactJudge()
    if judge == "embedding":
        if embedder is None:
            raise ConfigError("the embedding judge needs a semantic cache", parameter="judge")
        return EmbeddingJudge(embedder)
    if callable(judge):
        return CallableJudge(judge)
    raise ConfigError(f"judge must be 'exact', 'embedding' or a callable, got {judge!r}",
                      parameter="judge")
