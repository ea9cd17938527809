"""Answers: which upstream replies may be stored, and streams in both directions.

- ``storable``: only a well-formed answer is stored (issue #18, item 7): status 200,
  the endpoint's content type, and a body that parses as the endpoint's response object
  (chat and text completions: choices, each with a finish reason; embeddings: data rows
  with an embedding; transcriptions: a ``text``). A 202, an HTML page or a 200 whose
  JSON is ``{"error": ...}`` passes through to its client and is never replayed to
  anyone else.
- ``Assembler`` rebuilds the complete response from a relayed stream (stored only when
  the stream completed); ``replay`` turns a stored response back into SSE chunks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from .._calls._embeddings import stored_problem
from .._calls._responses_api import is_response, sse_bytes
from .._calls._responses_api import replay_events as response_events
from .._errors import IntegrityError
from .._sse import SSEReader, StreamAssembler, replay_events

__all__ = ["Assembler", "chunks", "encode_hit", "is_answer", "replay", "sse", "storable"]

#: ``response_format`` values of a transcription whose answer is plain text
_TEXT_TYPES = ("text/plain", "text/vtt", "text/srt", "application/x-subrip")


def storable(endpoint: str, status: int, content_type: str, content: bytes) -> Any:
    """The value to store for this upstream reply, or None when it is not an answer."""
    if status != 200:
        return None
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        if endpoint == "audio/transcriptions" and ctype in _TEXT_TYPES and content:
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError:
                return None
            return {"$text": text, "$content_type": content_type}
        return None
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    return value if is_answer(endpoint, value) else None


def is_answer(endpoint: str, value: Any) -> bool:
    """Whether ``value`` is a complete response object of ``endpoint``."""
    if endpoint == "responses":  # a complete Response ("error": null is part of it)
        return is_response(value)
    if not isinstance(value, dict) or "error" in value:
        return False
    if endpoint in ("chat/completions", "completions"):
        choices = value.get("choices")
        if not isinstance(choices, list) or not choices:
            return False
        chat = endpoint == "chat/completions"
        for c in choices:
            if not isinstance(c, dict) or not isinstance(c.get("finish_reason"), str):
                return False
            if chat and not isinstance(c.get("message"), dict):
                return False
            if not chat and not isinstance(c.get("text"), str):
                return False
        return True
    if endpoint == "embeddings":  # the per-item path's check (and the library's)
        data = value.get("data")
        return isinstance(data, list) and bool(data) and \
            stored_problem(value, len(data), b64=True) is None
    if endpoint == "audio/transcriptions":
        return isinstance(value.get("text"), str)
    return False


async def sse(events: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for ev in events:
        yield b"data: " + orjson.dumps(ev) + b"\n\n"
    yield b"data: [DONE]\n\n"


def replay(endpoint: str, value: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """A stored complete response as the chunks a streaming upstream would have sent
    (the call layer replays the same ones: ``semcache._sse.replay_events``)."""
    return replay_events("chat" if endpoint == "chat/completions" else "text", value,
                         include_usage)


class Assembler(SSEReader):
    """Rebuilds the complete response from a stream's SSE events, as they pass through
    (``semcache._sse.StreamAssembler``, shared with the call layer).

    ``result()`` is the response JSON, or None when the stream was incomplete (no
    ``[DONE]``, a choice without ``finish_reason``) or carried an error: never stored.
    """

    def __init__(self, endpoint: str, expected: int = 1) -> None:
        super().__init__()
        self.done = False
        self.bad = False
        self.expected = expected  #: the choices the request asked for (``choices_of``)
        self._asm = StreamAssembler("chat" if endpoint == "chat/completions" else "text")

    def _event(self, payload: bytes) -> None:
        if payload.strip() == b"[DONE]":
            self.done = True
            return
        try:
            ev = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.bad = True
            return
        if not isinstance(ev, dict) or "error" in ev:
            self.bad = True
            return
        try:
            self._asm.add(ev)
        except (AttributeError, TypeError):  # a malformed chunk: the stream is not stored
            self.bad = True

    def result(self) -> dict[str, Any] | None:
        if not self.done or self.bad:
            return None
        try:
            return self._asm.result(self.expected)
        except (AttributeError, TypeError, ValueError):  # never a crash mid-relay
            return None


async def chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    """``encode_hit``'s SSE chunks as a streamed body."""
    for c in parts:
        yield c


def encode_hit(endpoint: str, value: Any, stream: bool, body: dict[str, Any]
                ) -> tuple[bytes | str | list[bytes], str]:
    """A stored value as the body (or SSE chunks) of a hit, encoded before the reply
    starts, so that what cannot be served raises here rather than mid-stream."""
    if endpoint == "audio/transcriptions" and isinstance(value, dict) and "$text" in value:
        text, ctype = value["$text"], value.get("$content_type") or "text/plain"
        if not isinstance(text, str) or not isinstance(ctype, str):
            raise IntegrityError("stored transcription text is malformed")
        if not (ctype.isascii() and ctype.isprintable()) or len(ctype) > 255:
            # a header value: CR/LF would add headers (or drop the reply), a character
            # outside Latin-1 failed encoding it (a 500)
            raise IntegrityError("stored transcription content type is not a header value")
        return text, ctype  # a non-JSON transcription
    if endpoint == "audio/transcriptions" and isinstance(value, str):
        return value, "text/plain"  # the library's response_format="text" answer
    if not is_answer(endpoint, value):
        raise IntegrityError("not a complete response object")
    if stream and endpoint == "responses":
        return [sse_bytes(ev) for ev in response_events(value)], ""
    if stream and endpoint in ("chat/completions", "completions"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return [b"data: " + orjson.dumps(ev) + b"\n\n"
                for ev in replay(endpoint, value, include_usage)] + [b"data: [DONE]\n\n"], ""
    return orjson.dumps(value), "application/json"
