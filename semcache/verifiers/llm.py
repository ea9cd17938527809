"""An LLM verifier: ask a small model whether a cached answer fits the new question.

Structural features see that two prompts *differ* (a word on the other side of "to", a
negation, another number); they never see that two differently worded prompts mean the
same. A language model does both, at the price of one upstream call per lookup that has
candidates above the floor (all of the lookup's candidates go in one request), and of
its latency. Its answers are kept in-process (a TTL cache keyed by the pair), so a
popular question pays once.

It fails closed: a timeout, a transport or HTTP error, or an answer that is not one
yes/no per candidate raises ``BackendError``; the pipeline turns that into a miss,
counts it (``stats()["errors"]["verifier"]``, ``verifier_failed``) and logs it once per
burst. A candidate is never served on an answer the verifier could not read.

The client is configured like the call layer's: ``api_base`` / ``api_key`` default to
``$OPENAI_BASE_URL`` / ``$OPENAI_API_KEY``, ``timeout`` bounds each attempt. Its ``openai``
clients come from ``semcache/_connections/openai.py`` (made on first use, one per process
and per event loop), shared with the OpenAI embedder.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from cachetools import TTLCache

from .._connections.openai import OpenAIClients
from .._errors import BackendError, ConfigError
from .base import Verifier, check_probability

__all__ = ["QUESTION", "LLMVerifier", "parse_answer", "verifier_messages"]

#: the question the model is asked, once per lookup, about every candidate
QUESTION = ("You decide whether a cached answer can be reused. Would the answer to "
            "question A also correctly answer question B? Answer for each B, one line "
            "each, as '<number>: yes' or '<number>: no', and nothing else.")

_LINE = re.compile(r"^\s*(?:b\s*)?(\d+)\s*[:.)\-]\s*(yes|no)\b[\s.!]*$", re.IGNORECASE)
_BARE = re.compile(r"^\s*(yes|no)\b[\s.!]*$", re.IGNORECASE)


def verifier_messages(query: str, prompts: Sequence[str]) -> list[dict[str, str]]:
    """The chat messages for one lookup. Each text is a JSON string literal, so a cached
    prompt cannot fake a line of the question's structure (a newline and "B2: ...")."""
    lines = [f"A: {json.dumps(query, ensure_ascii=False)}"]
    lines += [f"B{i}: {json.dumps(p, ensure_ascii=False)}" for i, p in enumerate(prompts, 1)]
    return [{"role": "system", "content": QUESTION},
            {"role": "user", "content": "\n".join(lines)}]


def parse_answer(text: str | None, n: int) -> list[bool]:
    """One yes/no per candidate, in order; ``ValueError`` on anything else (a missing or
    repeated number, a "maybe", prose). A single candidate may be answered bare."""
    if not isinstance(text, str):
        raise ValueError("no text in the answer")
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if n == 1 and len(lines) == 1 and (m := _BARE.match(lines[0])):
        return [m.group(1).lower() == "yes"]
    got: dict[int, bool] = {}
    for ln in lines:
        m = _LINE.match(ln)
        if m is None:
            raise ValueError(f"not a '<number>: yes|no' line: {ln[:80]!r}")
        i = int(m.group(1))
        if i in got or not 1 <= i <= n:
            raise ValueError(f"candidate number {i} repeated or out of range 1-{n}")
        got[i] = m.group(2).lower() == "yes"
    if len(got) != n:
        raise ValueError(f"{len(got)} verdicts for {n} candidates")
    return [got[i] for i in range(1, n + 1)]


class LLMVerifier(Verifier):
    """``model`` answers "Would the answer to A also correctly answer B?" for every
    candidate of a lookup in one request; yes scores 1.0, no 0.0.

    ``floor`` (the default ``similarity_threshold`` under it) is lower than the
    structural verifier's: the model can accept rewordings the cosine ranks low, and
    only candidates above the floor cost a call. ``max_chars`` bounds each text sent: a
    longer prompt is refused (scored 0) rather than truncated, since two prompts that
    differ only past the cut would look the same. ``cache_size`` / ``cache_ttl``: the
    in-process answers, keyed by the (query, prompt) pair."""

    name = "llm"

    def __init__(self, model: str = "gpt-4o-mini", *, api_base: str | None = None,
                 api_key: str | None = None, timeout: float = 10.0, max_retries: int = 0,
                 threshold: float | None = None, floor: float = 0.8,
                 max_chars: int = 4000, cache_size: int = 10_000,
                 cache_ttl: float = 3600.0) -> None:
        model = model.removeprefix("openai/")
        if not model:
            raise ConfigError("the LLM verifier needs a model name", parameter="model")
        if timeout <= 0:
            raise ConfigError("timeout must be > 0 seconds", parameter="timeout")
        if max_retries < 0:
            raise ConfigError("max_retries must be >= 0", parameter="max_retries")
        if max_chars < 1 or cache_size < 1 or cache_ttl <= 0:
            raise ConfigError("max_chars and cache_size must be >= 1, cache_ttl > 0",
                              parameter="verifier")
        api_base = api_base or os.environ.get("OPENAI_BASE_URL") or None
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if api_key is None:
            if api_base is None:
                raise ConfigError(f"the LLM verifier's model {model!r} on OpenAI needs an "
                                  "API key: pass api_key or set OPENAI_API_KEY (or point "
                                  "api_base at a server that needs none)",
                                  parameter="api_key")
            api_key = "not-needed"  # self-hosted servers ignore it; the client wants one
        self.model = model
        self.api_base = api_base
        self._api_key = api_key
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.threshold = check_probability(0.5 if threshold is None else threshold,
                                           "verifier_threshold")
        self.floor = check_probability(floor, "floor")
        self.max_chars = max_chars
        # cachetools caches are not thread-safe; lookups run on many threads
        self._lock = threading.Lock()
        self._answers: TTLCache[tuple[str, str], bool] = TTLCache(cache_size, cache_ttl)
        self.requests = 0  #: upstream requests made (cache misses of whole lookups)
        self._clients = OpenAIClients(self._client_kwargs())

    # -- clients, made on first use (no network in the constructor) --------------------
    def _client_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"api_key": self._api_key, "timeout": self.timeout,
                              "max_retries": self.max_retries}
        if self.api_base:
            kw["base_url"] = self.api_base
        return kw

    # -- the seam ------------------------------------------------------------------
    def _plan(self, query: str, prompts: Sequence[str]
              ) -> tuple[np.ndarray, list[int]]:
        """Scores known without a call (cached answers, over-long texts: 0) and the
        indices still to ask about."""
        scores = np.zeros(len(prompts), np.float64)
        ask: list[int] = []
        if len(query) > self.max_chars:
            return scores, ask
        with self._lock:
            for i, p in enumerate(prompts):
                if len(p) > self.max_chars:
                    continue
                got = self._answers.get((query, p))
                if got is None:
                    ask.append(i)
                else:
                    scores[i] = 1.0 if got else 0.0
        return scores, ask

    def _request(self, query: str, prompts: Sequence[str]) -> dict[str, Any]:
        return {"model": self.model, "messages": verifier_messages(query, prompts),
                "temperature": 0, "max_tokens": 8 * len(prompts) + 8}

    def _read(self, response: Any, query: str, prompts: Sequence[str], ask: list[int],
              scores: np.ndarray) -> np.ndarray:
        try:
            text = response.choices[0].message.content
            verdicts = parse_answer(text, len(ask))
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise BackendError(f"LLM verifier {self.model!r} did not answer yes/no per "
                               f"candidate: {exc}", backend=self.name) from exc
        with self._lock:
            for i, ok in zip(ask, verdicts):
                self._answers[(query, prompts[i])] = ok
                scores[i] = 1.0 if ok else 0.0
        return scores

    def _failed(self, exc: Exception) -> BackendError:
        return BackendError(f"LLM verifier {self.model!r} failed: {type(exc).__name__}: "
                            f"{exc}", backend=self.name)

    def _score(self, query: str, prompts: Sequence[str],
               similarities: np.ndarray) -> np.ndarray:
        scores, ask = self._plan(query, prompts)
        if not ask:
            return scores
        import openai

        sub = [prompts[i] for i in ask]
        with self._lock:
            self.requests += 1
        try:
            response = self._clients.sync().chat.completions.create(
                **self._request(query, sub))
        except openai.APIError as exc:  # timeouts, connection and HTTP errors
            raise self._failed(exc) from exc
        return self._read(response, query, prompts, ask, scores)

    async def averify(self, query: str, prompts: Sequence[str],
                      similarities: Sequence[float]) -> np.ndarray:
        # real async I/O: the event loop serves other requests while the model thinks
        if not prompts:
            return np.zeros(0, np.float64)
        scores, ask = self._plan(query, prompts)
        if ask:
            import openai

            sub = [prompts[i] for i in ask]
            with self._lock:
                self.requests += 1
            try:
                response = await self._clients.async_().chat.completions.create(
                    **self._request(query, sub))
            except openai.APIError as exc:
                raise self._failed(exc) from exc
            scores = self._read(response, query, prompts, ask, scores)
        return self._checked(scores, len(prompts))

    def close(self) -> None:
        self._clients.close()

    async def aclose(self) -> None:
        await self._clients.aclose()

    def __repr__(self) -> str:
        return (f"LLMVerifier(model={self.model!r}, api_base={self.api_base!r}, "
                f"threshold={self.threshold}, floor={self.floor}, timeout={self.timeout})")
