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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

from .._sse import StreamAssembler, replay_events
from ._litellm import itemize

log = logging.getLogger("semcache")

__all__ = ["Accumulator", "AsyncStream", "SyncStream", "choices_of", "replay_chunks"]


class Accumulator:
    """Builds the complete response from the chunks of one stream (``semcache._sse``'s
    assembler, shared with the proxy, over the chunks' JSON)."""

    def __init__(self, kind: str, expected: int = 1) -> None:
        self.kind = kind  # "chat" | "text"
        self.expected = expected  #: the choices the request asked for (see choices_of)
        self._asm = StreamAssembler(kind)
        self.broken = False  #: a chunk could not be assembled: nothing is stored

    def add(self, chunk: Any) -> None:
        """Add a chunk; one the assembler cannot take (the client passes chunks on
        unvalidated: ``choices: ["x"]``, a content piece that is not text) marks the
        stream as not storable, and the caller still gets every chunk."""
        if self.broken:
            return
        try:
            # warnings off: a lenient server's value outside the SDK's Literal (the
            # client accepted it) must not turn into a warning, or an error under -W error
            self._asm.add(chunk.model_dump(mode="json", exclude_unset=True, warnings=False))
        except Exception as exc:  # noqa: BLE001 - the caller's stream goes on regardless
            self.broken = True
            log.warning("semcache: a streamed chunk could not be assembled (%s: %s); "
                        "the answer is not cached", type(exc).__name__, exc)

    def result(self) -> Any:
        """The assembled ``ChatCompletion`` / ``Completion``, or None when a choice never
        got a ``finish_reason`` (the stream did not complete: nothing to store) or a
        chunk could not be assembled."""
        if self.broken:
            return None
        value = self._asm.result(self.expected)
        if value is None:
            return None
        if self.kind == "text":
            from openai.types import Completion

            return build(Completion, value)
        from openai.types.chat import ChatCompletion

        return build(ChatCompletion, value)


def choices_of(kind: str, kwargs: Mapping[str, Any]) -> int:
    """How many choices a complete answer to this request has: ``n``, times the
    prompts of a batched text completion (a list of str or of token-id lists)."""
    n = kwargs.get("n")
    count = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    prompt = kwargs.get("prompt")
    if kind == "text" and isinstance(prompt, list) and prompt and \
            all(isinstance(p, (str, list)) for p in prompt):
        count *= len(prompt)
    return count


def build(cls: Any, data: dict[str, Any]) -> Any:
    """``cls.model_validate(data)``, or, for what a lenient server sent and the client
    accepted (a finish_reason outside the spec, say), the client's own recursive
    ``model_construct``, which is how it parses every response."""
    try:
        return cls.model_validate(data)
    except ValueError:  # pydantic's ValidationError
        return cls.model_construct(**data)


def replay_chunks(kind: str, response: Any, include_usage: bool) -> list[Any]:
    """A cached response as the chunks a streaming upstream would have sent: the same
    events as the proxy's (``semcache._sse.replay_events``), as the SDK's chunk types."""
    if kind == "text":
        from openai.types import Completion as Chunk
    else:
        from openai.types.chat import ChatCompletionChunk as Chunk  # type: ignore[assignment]
    # exclude_unset: the fields the upstream sent, not the SDK's defaults (the proxy
    # replays the JSON it stored, and both must send the same chunks)
    events = replay_events(kind, response.model_dump(mode="json", exclude_unset=True,
                                                     warnings=False), include_usage)
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
