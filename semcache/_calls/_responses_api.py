"""OpenAI's Responses API (``POST /v1/responses``) in the cache (issue #22).

A Responses request is keyed as a chat request in its own key space, so both stages
work unchanged and no chat answer is ever served to a Responses request (or back):

- ``input`` becomes ``messages``: a string is one user message; each message item
  keeps its role and its content (``input_text`` parts as text parts, so the semantic
  query is the text of the latest user input); every other item (function calls and
  their outputs, reasoning, item references) is a message of role ``$item`` holding the
  whole item, so it is part of the context, never of the query.
- everything else the request carries stays as it is and so is part of the key and of
  the semantic context: ``instructions``, ``previous_response_id``, ``tools``,
  ``tool_choice``, ``text`` (the output format), ``reasoning``, ``max_output_tokens``,
  ``temperature``, ``include``, ``truncation``, ... A different value of any of them
  is a different entry.
- ``$api: "responses"`` separates the key space from chat's.
- a request in a ``conversation`` (mutable server-side state, unlike the immutable
  ``previous_response_id`` chain) is not cached at all.

An answer is stored only when it is a complete Response object (``status`` is
``"completed"``); streams are stored from their ``response.completed`` event, and a
hit is replayed to a streaming client as the events a streaming upstream would send.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from .._sse import SSEReader

__all__ = ["ResponsesAssembler", "is_response", "key_kwargs", "replay_events"]

API_MARK = "$api"


def key_kwargs(body: Mapping[str, Any]) -> dict[str, Any]:
    """The chat-shaped kwargs the cache keys a Responses request by (see the module)."""
    out = {k: v for k, v in body.items() if k not in ("input", "stream")}
    out[API_MARK] = "responses"
    if body.get("conversation") is not None:
        # a conversation is server-side state each turn appends to: the same input is
        # another request once it has moved on, and a turn served from the cache would
        # never be recorded in it. Neither looked up nor stored.
        out["caching"] = False
    inp = body.get("input")
    if isinstance(inp, str):
        out["messages"] = [{"role": "user", "content": inp}]
    elif isinstance(inp, list):
        out["messages"] = [_message(item) for item in inp]
    else:
        out["input"] = inp  # not a shape we split: keyed as it is, exact stage only
    return out


def _message(item: Any) -> Any:
    if not isinstance(item, Mapping):
        return {"role": "$item", "content": item}
    role = item.get("role")
    if isinstance(role, str) and item.get("type", "message") == "message":
        content = item.get("content")
        if isinstance(content, list):
            content = [{**p, "type": "text"} if isinstance(p, Mapping) and
                       p.get("type") in ("input_text", "output_text") else p
                       for p in content]
            if all(isinstance(p, Mapping) and p.get("type") == "text" and
                   isinstance(p.get("text"), str) and len(p) == 2 for p in content):
                # text parts alone are the string the model reads: "hi" and
                # [{"type": "input_text", "text": "hi"}] are one request
                content = "\n".join(p["text"] for p in content)
        rest = {k: v for k, v in item.items() if k not in ("role", "content")}
        return {"role": role, "content": content, **rest}
    return {"role": "$item", "content": dict(item)}


def is_response(value: Any) -> bool:
    """A complete Response object: only these are stored."""
    return isinstance(value, dict) and value.get("object") == "response" and \
        value.get("status") == "completed" and isinstance(value.get("output"), list) \
        and not value.get("error")


def replay_events(value: dict[str, Any]) -> list[dict[str, Any]]:
    """A stored Response as the event stream of a streaming upstream."""
    seq = iter(range(1_000_000))
    events: list[dict[str, Any]] = []
    started = {**value, "status": "in_progress", "output": []}
    events.append({"type": "response.created", "response": started,
                   "sequence_number": next(seq)})
    events.append({"type": "response.in_progress", "response": started,
                   "sequence_number": next(seq)})
    for i, item in enumerate(value.get("output") or ()):
        if not isinstance(item, dict):
            continue
        base = {"output_index": i, "item_id": item.get("id")}
        parts = item.get("content") if item.get("type") == "message" else None
        shell = {**item, "status": "in_progress", "content": []} if parts is not None \
            else item
        events.append({"type": "response.output_item.added", "output_index": i,
                       "item": shell, "sequence_number": next(seq)})
        for j, part in enumerate(parts or ()):
            if not isinstance(part, dict):
                continue
            text = part.get("text") if part.get("type") == "output_text" else None
            empty = {**part, "text": ""} if text is not None else part
            events.append({"type": "response.content_part.added", **base,
                           "content_index": j, "part": empty,
                           "sequence_number": next(seq)})
            if text is not None:
                events.append({"type": "response.output_text.delta", **base,
                               "content_index": j, "delta": text, "logprobs": [],
                               "sequence_number": next(seq)})
                events.append({"type": "response.output_text.done", **base,
                               "content_index": j, "text": text, "logprobs": [],
                               "sequence_number": next(seq)})
            events.append({"type": "response.content_part.done", **base,
                           "content_index": j, "part": part,
                           "sequence_number": next(seq)})
        events.append({"type": "response.output_item.done", "output_index": i,
                       "item": item, "sequence_number": next(seq)})
    events.append({"type": "response.completed", "response": value,
                   "sequence_number": next(seq)})
    return events


def sse_bytes(ev: dict[str, Any]) -> bytes:
    """One Responses event as SSE: named, as OpenAI sends them (no ``[DONE]``)."""
    return b"event: " + str(ev["type"]).encode() + b"\ndata: " + orjson.dumps(ev) + b"\n\n"


class ResponsesAssembler(SSEReader):
    """The complete Response from a relayed event stream: its ``response.completed``
    event carries it whole. None when the stream ended without one (or with an error)."""

    def __init__(self) -> None:
        super().__init__()
        self.value: dict[str, Any] | None = None
        self.bad = False

    def _event(self, payload: bytes) -> None:
        try:
            ev = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.bad = True
            return
        if not isinstance(ev, dict) or ev.get("type") in ("error", "response.failed",
                                                          "response.incomplete"):
            self.bad = True
        elif ev.get("type") == "response.completed":
            self.value = ev.get("response")

    def result(self) -> dict[str, Any] | None:
        return self.value if not self.bad and is_response(self.value) else None
