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

from .._calls._responses_api import is_response
from .._sse import SSEReader

__all__ = ["Assembler", "replay", "sse", "storable"]

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
    if endpoint == "embeddings":
        data = value.get("data")
        return isinstance(data, list) and bool(data) and all(
            isinstance(d, dict) and isinstance(d.get("embedding"), (list, str)) for d in data)
    if endpoint == "audio/transcriptions":
        return isinstance(value.get("text"), str)
    return False


async def sse(events: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for ev in events:
        yield b"data: " + orjson.dumps(ev) + b"\n\n"
    yield b"data: [DONE]\n\n"


def replay(endpoint: str, value: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """A stored complete response as the chunks a streaming upstream would have sent."""
    base: dict[str, Any] = {k: value[k] for k in ("id", "created", "model",
                                                  "system_fingerprint") if k in value}
    chunks: list[dict[str, Any]] = []
    choices = value.get("choices") or []
    if endpoint == "chat/completions":
        base["object"] = "chat.completion.chunk"
        for c in choices:
            msg = c.get("message") or {}
            delta: dict[str, Any] = {"role": msg.get("role", "assistant"),
                                     "content": msg.get("content")}
            if msg.get("tool_calls"):
                delta["tool_calls"] = [{**tc, "index": i}
                                       for i, tc in enumerate(msg["tool_calls"])]
            if msg.get("refusal"):
                delta["refusal"] = msg["refusal"]
            chunks.append({**base, "choices": [{"index": c.get("index", 0), "delta": delta,
                                                "logprobs": None, "finish_reason": None}]})
        for c in choices:
            chunks.append({**base, "choices": [{"index": c.get("index", 0), "delta": {},
                                                "logprobs": None,
                                                "finish_reason": c.get("finish_reason")}]})
    else:
        base["object"] = "text_completion"
        for c in choices:
            chunks.append({**base, "choices": [{"index": c.get("index", 0),
                                                "text": c.get("text", ""), "logprobs": None,
                                                "finish_reason": c.get("finish_reason")}]})
    if include_usage and value.get("usage") is not None:
        chunks.append({**base, "choices": [], "usage": value["usage"]})
    return chunks


class Assembler(SSEReader):
    """Rebuilds the complete response from a stream's SSE events, as they pass through.

    ``result()`` is the response JSON, or None when the stream was incomplete (no
    ``[DONE]``, a choice without ``finish_reason``) or carried an error: never stored.
    """

    def __init__(self, endpoint: str) -> None:
        self.chat = endpoint == "chat/completions"
        super().__init__()
        self.done = False
        self.bad = False
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: Any = None

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
            self._merge(ev)
        except (AttributeError, TypeError):  # a malformed chunk: the stream is not stored
            self.bad = True

    def _merge(self, ev: dict[str, Any]) -> None:
        if not self.head:
            self.head = {k: ev[k] for k in ("id", "created", "model", "system_fingerprint")
                         if k in ev}
        if ev.get("usage"):
            self.usage = ev["usage"]
        for c in ev.get("choices") or ():
            idx = c.get("index", 0)
            acc = self.choices.setdefault(idx, {"index": idx, "finish_reason": None,
                                                "role": None, "content": None, "text": "",
                                                "tool_calls": {}, "refusal": None})
            if c.get("finish_reason") is not None:
                acc["finish_reason"] = c["finish_reason"]
            if not self.chat:
                acc["text"] += c.get("text") or ""
                continue
            delta = c.get("delta") or {}
            if delta.get("role"):
                acc["role"] = delta["role"]
            if delta.get("content") is not None:
                acc["content"] = (acc["content"] or "") + delta["content"]
            if delta.get("refusal") is not None:
                acc["refusal"] = (acc["refusal"] or "") + delta["refusal"]
            for tc in delta.get("tool_calls") or ():
                t = acc["tool_calls"].setdefault(tc.get("index", 0), {
                    "id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                if tc.get("id"):
                    t["id"] = tc["id"]
                if tc.get("type"):
                    t["type"] = tc["type"]
                fn = tc.get("function") or {}
                t["function"]["name"] += fn.get("name") or ""
                t["function"]["arguments"] += fn.get("arguments") or ""

    def result(self) -> dict[str, Any] | None:
        if not self.done or self.bad or not self.choices or \
                any(not isinstance(c["finish_reason"], str) for c in self.choices.values()):
            return None
        choices = []
        for idx in sorted(self.choices):
            c = self.choices[idx]
            if self.chat:
                msg: dict[str, Any] = {"role": c["role"] or "assistant", "content": c["content"]}
                if c["tool_calls"]:
                    msg["tool_calls"] = [c["tool_calls"][i] for i in sorted(c["tool_calls"])]
                if c["refusal"] is not None:
                    msg["refusal"] = c["refusal"]
                choices.append({"index": idx, "message": msg, "logprobs": None,
                                "finish_reason": c["finish_reason"]})
            else:
                choices.append({"index": idx, "text": c["text"], "logprobs": None,
                                "finish_reason": c["finish_reason"]})
        out = {**self.head, "object": "chat.completion" if self.chat else "text_completion",
               "choices": choices}
        if self.usage is not None:
            out["usage"] = self.usage
        return out

