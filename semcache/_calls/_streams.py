"""Streams: assembling a streamed answer for the cache, and replaying a cached one.

A streamed miss is passed to the caller chunk by chunk as it arrives while an
accumulator builds the complete response; only when the upstream stream ends normally
is that response stored (an abandoned or failed stream stores nothing). A hit on a
streaming request is replayed as chunks of the same shape the upstream sends.

Both kinds are handled: chat (``ChatCompletionChunk``) and text completion (``Completion``
chunks). ``SyncStream`` and ``AsyncStream`` repeat only the iteration; what happens at
the end is a flow the call layer's drivers run (``on_done``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from ._litellm import itemize

log = logging.getLogger("semcache")

__all__ = ["Accumulator", "AsyncStream", "SyncStream", "replay_chunks"]

_PIECE = re.compile(r"\S+\s*|\s+")
REPLAY_PIECES = 4  #: a replayed answer's content arrives in (at most) this many chunks


class Accumulator:
    """Builds the complete response from the chunks of one stream."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "chat" | "text"
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: Any = None

    def add(self, chunk: Any) -> None:
        if not self.head:
            self.head = {"id": chunk.id, "created": chunk.created, "model": chunk.model,
                         "system_fingerprint": getattr(chunk, "system_fingerprint", None)}
            tier = getattr(chunk, "service_tier", None)
            if tier is not None:
                self.head["service_tier"] = tier
        if getattr(chunk, "usage", None) is not None:
            self.usage = chunk.usage
        for ch in chunk.choices or ():
            c = self.choices.setdefault(ch.index, {"parts": [], "refusal": [], "tools": {},
                                                   "role": None, "finish": None,
                                                   "logprobs": []})
            if ch.finish_reason is not None:
                c["finish"] = ch.finish_reason
            if self.kind == "text":
                if ch.text:
                    c["parts"].append(ch.text)
                continue
            d = ch.delta
            if d is None:
                continue
            if d.role:
                c["role"] = d.role
            if d.content is not None:
                c["parts"].append(d.content)
            if getattr(d, "refusal", None):
                c["refusal"].append(d.refusal)
            for tc in d.tool_calls or ():
                t = c["tools"].setdefault(tc.index, {"id": None, "type": "function",
                                                     "name": [], "arguments": []})
                if tc.id:
                    t["id"] = tc.id
                if tc.type:
                    t["type"] = tc.type
                if tc.function is not None:
                    if tc.function.name:
                        t["name"].append(tc.function.name)
                    if tc.function.arguments:
                        t["arguments"].append(tc.function.arguments)
            lp = getattr(ch, "logprobs", None)
            if lp is not None and lp.content:
                c["logprobs"].extend(x.model_dump(mode="json") for x in lp.content)

    def result(self) -> Any:
        """The assembled ``ChatCompletion`` / ``Completion``."""
        usage = None if self.usage is None else self.usage.model_dump(mode="json")
        if self.kind == "text":
            from openai.types import Completion

            return build(Completion, {
                **self.head, "object": "text_completion", "usage": usage,
                "choices": [{"index": i, "text": "".join(c["parts"]), "logprobs": None,
                             "finish_reason": c["finish"] or "stop"}
                            for i, c in sorted(self.choices.items())]})
        from openai.types.chat import ChatCompletion

        choices = []
        for i, c in sorted(self.choices.items()):
            msg: dict[str, Any] = {"role": c["role"] or "assistant",
                                   "content": "".join(c["parts"]) if c["parts"] else None,
                                   "refusal": "".join(c["refusal"]) or None}
            if c["tools"]:
                msg["tool_calls"] = [{"id": t["id"], "type": t["type"], "function": {
                    "name": "".join(t["name"]), "arguments": "".join(t["arguments"])}}
                    for _, t in sorted(c["tools"].items())]
            choices.append({"index": i, "message": msg, "finish_reason": c["finish"] or "stop",
                            "logprobs": {"content": c["logprobs"]} if c["logprobs"] else None})
        return build(ChatCompletion, {**self.head, "object": "chat.completion",
                                              "usage": usage, "choices": choices})


def build(cls: Any, data: dict[str, Any]) -> Any:
    """``cls.model_validate(data)``, or, for what a lenient server sent and the client
    accepted (a finish_reason outside the spec, say), the client's own recursive
    ``model_construct``, which is how it parses every response."""
    try:
        return cls.model_validate(data)
    except ValueError:  # pydantic's ValidationError
        return cls.model_construct(**data)


def _pieces(text: str) -> list[str]:
    words = _PIECE.findall(text)
    if not words:
        return [text] if text else []
    per = -(-len(words) // REPLAY_PIECES)
    return ["".join(words[i:i + per]) for i in range(0, len(words), per)]


def replay_chunks(kind: str, response: Any, include_usage: bool) -> list[Any]:
    """A cached response as the chunks a streaming upstream would have sent."""
    usage = response.usage.model_dump(mode="json") if response.usage is not None else None
    events: list[dict[str, Any]] = []
    if kind == "text":
        from openai.types import Completion as Chunk

        head = {"id": response.id, "object": "text_completion", "created": response.created,
                "model": response.model, "system_fingerprint": response.system_fingerprint}
        for ch in response.choices:
            for p in _pieces(ch.text):
                events.append({**head, "choices": [{"index": ch.index, "text": p,
                                                    "logprobs": None, "finish_reason": None}]})
            events.append({**head, "choices": [{"index": ch.index, "text": "",
                                                "logprobs": None,
                                                "finish_reason": ch.finish_reason}]})
    else:
        from openai.types.chat import ChatCompletionChunk as Chunk  # type: ignore[assignment]

        head = {"id": response.id, "object": "chat.completion.chunk",
                "created": response.created, "model": response.model,
                "system_fingerprint": response.system_fingerprint}
        if response.service_tier is not None:
            head["service_tier"] = response.service_tier

        def ev(index: int, delta: dict[str, Any], finish: str | None = None) -> None:
            events.append({**head, "choices": [{"index": index, "delta": delta,
                                                "logprobs": None, "finish_reason": finish}]})

        for ch in response.choices:
            m = ch.message
            # content "" vs None survives the round trip (a tool-call answer has None)
            ev(ch.index, {"role": m.role, "content": None if m.content is None else ""})
            for p in _pieces(m.content or ""):
                ev(ch.index, {"content": p})
            if m.refusal:
                ev(ch.index, {"refusal": m.refusal})
            for k, tc in enumerate(m.tool_calls or ()):
                ev(ch.index, {"tool_calls": [{"index": k, **tc.model_dump(mode="json")}]})
            ev(ch.index, {}, ch.finish_reason)
    if include_usage:
        for e in events:
            e["usage"] = None
        if usage is not None:  # a stream stored without usage has none to replay
            events.append({**head, "choices": [], "usage": usage})
    # chunks are built the way the client builds the ones it parses (no validation: a
    # streaming chunk legitimately has finish_reason=None, which Completion rejects)
    return [Chunk.model_construct(**e) for e in events]


class _Base:
    """What both stream classes hold: the source, the accumulator and the end hook."""

    _hidden_params: dict[str, Any]

    def __init__(self, source: Any, accumulator: Accumulator | None,
                 on_done: Callable[[Any], Any] | None, hidden: dict[str, Any]) -> None:
        self._source = source
        self._acc = accumulator
        self._on_done = on_done
        self._finished = False
        self._hidden_params = hidden
        #: the assembled response, once the stream has ended normally
        self.response: Any = None

    def _assemble(self) -> Any:
        self._finished = True
        if self._acc is None:  # a replay: the response is known from the start
            return self.response
        try:
            return self._acc.result()
        except Exception:  # an odd chunk shape must not break the caller's stream
            log.exception("semcache: could not assemble the streamed response; not cached")
            return None


class SyncStream(_Base):
    """An iterator of chunks (what ``completion(..., stream=True)`` returns)."""

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._source)
        except StopIteration:
            if not self._finished:
                self.response = self._assemble()
                if self._on_done is not None and self.response is not None:
                    self._on_done(self.response)
            raise
        if self._acc is not None:
            self._acc.add(chunk)
        return itemize(chunk)  # chunk["choices"][0]["delta"], as LiteLLM's chunks allow

    def close(self) -> None:
        close = getattr(self._source, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> SyncStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncStream(_Base):
    """An async iterator of chunks (what ``await acompletion(..., stream=True)`` returns)."""

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._source.__anext__()
        except StopAsyncIteration:
            if not self._finished:
                self.response = self._assemble()
                if self._on_done is not None and self.response is not None:
                    done = self._on_done(self.response)
                    if isinstance(done, Awaitable):
                        await done
            raise
        if self._acc is not None:
            self._acc.add(chunk)
        return itemize(chunk)  # chunk["choices"][0]["delta"], as LiteLLM's chunks allow

    async def close(self) -> None:
        close = getattr(self._source, "close", None) or getattr(self._source, "aclose", None)
        if close is not None:
            await close()

    aclose = close

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def aiter_list(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item
