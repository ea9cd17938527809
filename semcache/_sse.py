"""Streamed answers, both ways, for the call layer and the proxy alike (issue #19).

- ``SSEReader`` splits a relayed byte stream into events' ``data:`` payloads (the
  proxy's chat/text assembler and the Responses API's event stream use it).
- ``StreamAssembler`` rebuilds the complete chat or text completion from its chunks
  (JSON dicts: the proxy's parsed events, the call layer's chunks dumped).
- ``replay_events`` turns a stored complete response back into the chunks a streaming
  upstream sends.

One copy, because two had drifted (the proxy dropped logprobs and sent a whole answer in
one chunk; the call layer defaulted a missing ``finish_reason`` to "stop"). Both now
follow the OpenAI streaming format: a first chunk with the role (and ``content`` ""
or, for a tool-call answer, null), the content in a few chunks, each carrying the
``logprobs`` of its own tokens, the refusal, one chunk per tool call (with its
``index``) or for the legacy ``function_call``, a final chunk per choice with an empty
delta and the ``finish_reason``;
a search model's URL citations come as ``delta.annotations`` (a list of objects, in a
chunk with the text or one of their own; some upstreams send the whole set again, so an
exact repeat is dropped) and an audio answer as ``delta.audio`` (``id``, base64 ``data``
and ``transcript`` in pieces, then an update with only ``expires_at``, which may come
after the ``finish_reason``): assembled as ``message.annotations`` and ``message.audio``;
with ``stream_options.include_usage`` every chunk has ``"usage": null`` and one last
chunk with no choices carries the usage. A stream in which a choice never got a
``finish_reason`` did not complete: it is not an answer and is never stored.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ._errors import IntegrityError

__all__ = ["REPLAY_PIECES", "SSEReader", "StreamAssembler", "replay_events"]

_PIECE = re.compile(r"\S+\s*|\s+")
REPLAY_PIECES = 4  #: a replayed answer's content arrives in (at most) this many chunks
_HEAD = ("id", "created", "model", "system_fingerprint", "service_tier")


class SSEReader:
    """Feed raw bytes as they arrive; each complete event's joined ``data:`` payload goes
    to ``_event``. Events end with a blank line (``\\n\\n`` or ``\\r\\n\\r\\n``); a
    partial event waits for the rest of its bytes."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            for sep in (b"\n\n", b"\r\n\r\n"):
                i = self.buf.find(sep)
                if i >= 0:
                    break
            else:
                return
            event, self.buf = self.buf[:i], self.buf[i + len(sep):]
            payload = b"\n".join(line[5:].lstrip() for line in event.splitlines()
                                 if line.startswith(b"data:"))
            if payload:
                self._event(payload)

    def _event(self, payload: bytes) -> None:
        raise NotImplementedError


# -- assembling ---------------------------------------------------------------------------

class StreamAssembler:
    """The complete response of one chat (``kind="chat"``) or text completion stream,
    from its chunks as JSON dicts. ``add`` raises ``TypeError``/``AttributeError`` on a
    malformed chunk (a text piece that is not a str included: it must not be found only
    when ``result()`` joins them); ``result()`` is None until every choice has a
    ``finish_reason``."""

    def __init__(self, kind: str) -> None:
        self.chat = kind == "chat"
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: Any = None

    def add(self, ev: dict[str, Any]) -> None:
        for k in _HEAD:  # per field: a blank first chunk (Azure's content-filter
            v = ev.get(k)  # chunk: id "", model "", created 0) must not stick
            if v is not None and (k not in self.head or (v and not self.head[k])):
                self.head[k] = v
        if ev.get("usage"):
            self.usage = ev["usage"]
        for c in ev.get("choices") or ():
            idx = c.get("index", 0)
            acc = self.choices.get(idx)
            if acc is None:  # text pieces are joined once, at the end (no O(n^2) +=)
                acc = self.choices[idx] = {"finish": None, "role": None, "content": None,
                                           "refusal": None, "tools": {}, "lp": {},
                                           "fn": None, "notes": None, "audio": None}
            if c.get("finish_reason") is not None:
                acc["finish"] = c["finish_reason"]
            lp = c.get("logprobs")
            if lp:  # chat: {"content": [...], "refusal": [...]}; text: parallel lists
                for k, v in lp.items():
                    if isinstance(v, list):
                        acc["lp"].setdefault(k, []).extend(v)
            if not self.chat:
                if c.get("text") is not None:
                    _append(acc, "content", c["text"])
                continue
            delta = c.get("delta") or {}
            if delta.get("role"):
                acc["role"] = delta["role"]
            # "" and None differ: a text answer starts with "", a tool-call answer has None
            if delta.get("content") is not None:
                _append(acc, "content", delta["content"])
            if delta.get("refusal") is not None:
                _append(acc, "refusal", delta["refusal"])
            if delta.get("annotations") is not None:
                _annotations(acc, delta["annotations"])
            if delta.get("audio") is not None:
                _audio(acc, delta["audio"])
            for tc in delta.get("tool_calls") or ():
                t = acc["tools"].setdefault(tc.get("index", 0), {
                    "id": None, "type": "function", "name": [], "arguments": []})
                if tc.get("id"):
                    t["id"] = tc["id"]
                if tc.get("type"):
                    t["type"] = tc["type"]
                fn = tc.get("function") or {}
                if fn.get("name"):
                    t["name"].append(_text(fn["name"]))
                if fn.get("arguments"):
                    t["arguments"].append(_text(fn["arguments"]))
            # the legacy ``functions`` answer: one call, its name and arguments in pieces
            fc = delta.get("function_call")
            if fc is not None:
                f = acc["fn"]
                if f is None:
                    f = acc["fn"] = {"name": [], "arguments": []}
                if fc.get("name"):
                    f["name"].append(_text(fc["name"]))
                if fc.get("arguments"):
                    f["arguments"].append(_text(fc["arguments"]))

    def result(self, expected: int = 1) -> dict[str, Any] | None:
        """The response object, or None when a choice has no ``finish_reason`` or one of
        the ``expected`` choices (``n``, times the prompts of a batched text completion)
        never came: a stream cut between choices is not the answer to the request."""
        if not self.choices or any(not isinstance(c["finish"], str)
                                   for c in self.choices.values()):
            return None
        if any(i not in self.choices for i in range(expected)):
            return None
        choices = []
        for idx in sorted(self.choices):
            c = self.choices[idx]
            lp = c["lp"] or None
            content = None if c["content"] is None else "".join(c["content"])
            if not self.chat:
                choices.append({"index": idx, "text": content or "", "logprobs": lp,
                                "finish_reason": c["finish"]})
                continue
            msg: dict[str, Any] = {"role": c["role"] or "assistant", "content": content,
                                   "refusal": None if c["refusal"] is None
                                   else "".join(c["refusal"])}
            if c["notes"] is not None:
                msg["annotations"] = list(c["notes"].values())
            if c["audio"] is not None:
                msg["audio"] = {k: "".join(v) if isinstance(v, list) else v
                                for k, v in c["audio"].items()}
            if c["tools"]:
                msg["tool_calls"] = [
                    {"id": t["id"], "type": t["type"], "function": {
                        "name": "".join(t["name"]), "arguments": "".join(t["arguments"])}}
                    for t in (c["tools"][i] for i in sorted(c["tools"]))]
            if c["fn"] is not None:
                msg["function_call"] = {"name": "".join(c["fn"]["name"]),
                                        "arguments": "".join(c["fn"]["arguments"])}
            if lp is not None:
                lp = {"content": lp.get("content"), "refusal": lp.get("refusal")}
            choices.append({"index": idx, "message": msg, "logprobs": lp,
                            "finish_reason": c["finish"]})
        out: dict[str, Any] = {**self.head, "object": "chat.completion" if self.chat
                               else "text_completion", "choices": choices}
        if self.usage is not None:
            out["usage"] = self.usage
        return out


def _text(piece: Any) -> str:
    if not isinstance(piece, str):
        raise TypeError(f"a streamed text piece is a {type(piece).__name__}, not a str")
    return piece


def _append(acc: dict[str, Any], field: str, text: Any) -> None:
    """Add a piece to a text field; None (no piece yet) stays distinct from ""."""
    _text(text)
    if acc[field] is None:
        acc[field] = [text]
    else:
        acc[field].append(text)


def _annotations(acc: dict[str, Any], notes: Any) -> None:
    """Citations in order, an exact repeat (the whole set sent again) kept once."""
    if not isinstance(notes, list) or not all(isinstance(n, dict) for n in notes):
        raise TypeError("streamed annotations are not a list of objects")
    if acc["notes"] is None:
        acc["notes"] = {}
    for n in notes:
        acc["notes"].setdefault(orjson.dumps(n, option=orjson.OPT_SORT_KEYS), n)


def _audio(acc: dict[str, Any], audio: Any) -> None:
    """``data`` and ``transcript`` are pieces to join; ``id``, ``expires_at`` (and any
    other field) take the latest value sent."""
    if not isinstance(audio, dict):
        raise TypeError(f"streamed audio is a {type(audio).__name__}, not an object")
    if acc["audio"] is None:
        acc["audio"] = {}
    a = acc["audio"]
    for k, v in audio.items():
        if v is None:
            continue
        if k in ("data", "transcript"):
            a.setdefault(k, []).append(_text(v))
        else:
            a[k] = v


# -- replaying ----------------------------------------------------------------------------

def _pieces(text: str) -> list[str]:
    words = _PIECE.findall(text)
    if not words:
        return [text] if text else []
    per = -(-len(words) // REPLAY_PIECES)
    return ["".join(words[i:i + per]) for i in range(0, len(words), per)]


def _content_chunks(text: str, tokens: list[Any] | None) -> list[tuple[str, list[Any] | None]]:
    """``(content, its logprobs)`` per chunk. With logprobs whose tokens spell the text,
    chunks are cut at token boundaries so each carries exactly its tokens' logprobs;
    otherwise (tokens that do not spell it) the first chunk carries them all."""
    if tokens and "".join(str(t.get("token", "")) for t in tokens) == text:
        per = -(-len(tokens) // REPLAY_PIECES)
        groups = [tokens[i:i + per] for i in range(0, len(tokens), per)]
        return [("".join(t["token"] for t in g), g) for g in groups]
    parts: list[tuple[str, list[Any] | None]] = [(p, None) for p in _pieces(text)]
    if tokens:
        parts = [(parts[0][0] if parts else "", tokens), *parts[1:]]
    return parts


def replay_events(kind: str, value: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """A stored complete chat (``kind="chat"``) or text completion as the chunks a
    streaming upstream would have sent (JSON dicts). A stored value of another shape
    (``choices: [1]``) is an ``IntegrityError``, never a raw TypeError mid-reply."""
    try:
        if not isinstance(value, dict) or not isinstance(value.get("choices"), list):
            raise TypeError("no list of choices")
        return _replay_events(kind, value, include_usage)
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        raise IntegrityError(f"stored value is not a {kind} completion: {exc}") from exc


def _replay_events(kind: str, value: dict[str, Any], include_usage: bool
                   ) -> list[dict[str, Any]]:
    head: dict[str, Any] = {k: value[k] for k in _HEAD if value.get(k) is not None}
    head["object"] = "chat.completion.chunk" if kind == "chat" else "text_completion"
    events: list[dict[str, Any]] = []

    def ev(choice: dict[str, Any]) -> None:
        events.append({**head, "choices": [choice]})

    for c in value.get("choices") or ():
        idx, lp = c.get("index", 0), c.get("logprobs") or None
        if kind != "chat":
            pieces = _pieces(c.get("text") or "")
            if lp is not None:  # parallel lists with offsets: one chunk keeps them whole
                pieces = ["".join(pieces)] if pieces else []
            for p in pieces:
                ev({"index": idx, "text": p, "logprobs": lp, "finish_reason": None})
            ev({"index": idx, "text": "", "logprobs": None,
                "finish_reason": c.get("finish_reason")})
            continue
        m = c.get("message") or {}
        content = m.get("content")
        ev({"index": idx, "delta": {"role": m.get("role") or "assistant",
                                    "content": None if content is None else ""},
            "logprobs": None, "finish_reason": None})
        for text, tokens in _content_chunks(content or "", (lp or {}).get("content")):
            ev({"index": idx, "delta": {"content": text},
                "logprobs": None if tokens is None else {"content": tokens, "refusal": None},
                "finish_reason": None})
        if m.get("refusal"):
            rlp = (lp or {}).get("refusal")
            ev({"index": idx, "delta": {"refusal": m["refusal"]},
                "logprobs": {"content": None, "refusal": rlp} if rlp else None,
                "finish_reason": None})
        if m.get("annotations"):  # the citations, in one chunk after the text
            if not isinstance(m["annotations"], list):
                raise TypeError("annotations are not a list")
            ev({"index": idx, "delta": {"annotations": m["annotations"]},
                "logprobs": None, "finish_reason": None})
        audio = m.get("audio")
        if audio:  # id, data and transcript, then an update with only the expiry
            ev({"index": idx, "delta": {"audio": {k: v for k, v in audio.items()
                                                  if k != "expires_at" and v is not None}},
                "logprobs": None, "finish_reason": None})
            if audio.get("expires_at") is not None:
                ev({"index": idx, "delta": {"audio": {"expires_at": audio["expires_at"]}},
                    "logprobs": None, "finish_reason": None})
        for k, tc in enumerate(m.get("tool_calls") or ()):
            ev({"index": idx, "delta": {"tool_calls": [{"index": k, **tc}]},
                "logprobs": None, "finish_reason": None})
        if m.get("function_call"):  # the legacy ``functions`` answer
            ev({"index": idx, "delta": {"function_call": m["function_call"]},
                "logprobs": None, "finish_reason": None})
        ev({"index": idx, "delta": {}, "logprobs": None,
            "finish_reason": c.get("finish_reason")})
    if include_usage:
        for e in events:
            e["usage"] = None
        if value.get("usage") is not None:  # a stream stored without usage has none
            events.append({**head, "choices": [], "usage": value["usage"]})
    return events
