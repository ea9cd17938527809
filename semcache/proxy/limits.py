"""Reading and checking a request before the cache sees it: size limits and field types.

One large or malformed request must cost its sender a clear 4xx, never the other
clients their latency nor the proxy a 500 (issue #18, items 5 and 6):

- the body is read with a byte limit (``max_body_bytes``; ``Content-Length`` is checked
  before anything is read, a chunked body as it arrives): 413; and a deadline: when no
  part of it arrives for ``body_timeout`` seconds (a client that declared more than it
  sends): 408;
- the prompt's characters are counted before anything is tokenized or hashed
  (``max_prompt_chars``): 413;
- ``stream`` must be a boolean and ``stream_options`` an object: 400 (``"false"``, a
  string, is not taken as streaming);
- a transcription has exactly one file part, named ``file``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from .replies import Reply

__all__ = ["Limits", "check_body", "json_object", "prompt_chars", "read_body", "read_json",
           "read_multipart"]

_MAX_FORM_FIELD = 1024 * 1024  # one non-file form field (starlette's default too)

#: 32 MiB: a 25 MB transcription upload (OpenAI's limit) with its form fields fits
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
#: about 250k tokens of English: above the context window of most models
DEFAULT_MAX_PROMPT_CHARS = 1_000_000
#: seconds to wait for the next part of a request body (nginx's client_body_timeout)
DEFAULT_BODY_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Request limits (413 beyond them, 408 past ``body_timeout``): see above."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS
    body_timeout: float = DEFAULT_BODY_TIMEOUT


def _too_large(what: str, limit: int, unit: str, knob: str) -> Reply:
    return Reply(413, f"{what} is larger than this proxy's limit of {limit} {unit} "
                 f"(semcache_settings.{knob})", "invalid_request_error", "request_too_large")


async def read_body(request: Request, limits: Limits) -> bytes:
    """The raw body, refused with 413 as soon as it exceeds ``max_body_bytes``."""
    limit = limits.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and \
            int(declared) > limit:
        raise _too_large("the request body", limit, "bytes", "max_body_bytes")
    chunks: list[bytes] = []
    size = 0
    wait = limits.body_timeout
    clock = asyncio.get_running_loop().time
    try:
        # one timer for the whole read, pushed back as each part arrives: a client that
        # stops sending (a Content-Length longer than what it sends) is answered, not
        # waited on for as long as it keeps the connection
        async with asyncio.timeout(wait) as deadline:
            async for chunk in request.stream():
                deadline.reschedule(clock() + wait)
                size += len(chunk)
                if size > limit:
                    raise _too_large("the request body", limit, "bytes", "max_body_bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise Reply(408, f"no part of the request body arrived for {wait:g} s "
                    f"(semcache_settings.body_timeout); {size} bytes were received",
                    "invalid_request_error", "request_timeout") from None
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    # starlette's form parser and request.body() read this instead of the spent stream
    request._body = body
    return body


async def read_json(request: Request, limits: Limits) -> dict[str, Any]:
    return json_object(await read_body(request, limits))


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object: 400 naming what is wrong otherwise."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Reply(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Reply(400, "request body must be a JSON object")
    return body


async def read_multipart(request: Request, limits: Limits
                         ) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """(form fields, httpx ``files``, the audio bytes) of a transcription request."""
    await read_body(request, limits)
    try:
        # one file part at most: a second one (or one not named "file") is refused
        # here, instead of reaching the key and the upstream as an object
        form = await request.form(max_files=1, max_fields=1000,
                                  max_part_size=_MAX_FORM_FIELD)
    except Exception as exc:  # noqa: BLE001 - python-multipart raises several types
        raise Reply(400, f"cannot parse the multipart body: {exc}") from None
    body: dict[str, Any] = {}
    upload = None
    try:
        for name, value in form.multi_items():
            if not isinstance(value, str):
                if name != "file":
                    raise Reply(400, f"the file part must be named 'file', got {name!r}")
                upload = value
            elif name == "cache":
                try:
                    body["cache"] = orjson.loads(value)
                except orjson.JSONDecodeError:
                    raise Reply(400, "the 'cache' form field must be JSON") from None
            elif name in ("caching", "stream"):
                if value not in ("true", "false"):
                    raise Reply(400, f"the {name!r} form field must be true or false")
                body[name] = value == "true"
            elif name in body:  # repeated fields (timestamp_granularities[])
                prev = body[name]
                body[name] = [*prev, value] if isinstance(prev, list) else [prev, value]
            else:
                body[name] = value
        if upload is None:
            raise Reply(400, "a transcription needs a 'file' part")
        if body.pop("stream", False):
            raise Reply(400, "streamed transcriptions are not supported by this proxy",
                        param="stream")
        audio = await upload.read()
    finally:
        await form.close()  # the upload's spooled temporary file
    files = {"file": (upload.filename or "audio", audio,
                      upload.content_type or "application/octet-stream")}
    return body, files, audio


def check_body(endpoint: str, body: dict[str, Any], limits: Limits) -> bool:
    """Type-check the fields the proxy itself reads; returns whether the client streams."""
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise Reply(400, f"'stream' must be true or false, got {stream!r}"[:200],
                    param="stream")
    opts = body.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise Reply(400, "'stream_options' must be an object", param="stream_options")
    if prompt_chars(endpoint, body) > limits.max_prompt_chars:
        raise _too_large("the prompt", limits.max_prompt_chars, "characters",
                         "max_prompt_chars")
    return bool(stream)


def prompt_chars(endpoint: str, body: dict[str, Any]) -> int:
    """Characters of text the request asks to be embedded or answered: a loop over the
    messages (or inputs), not over characters."""
    if endpoint == "chat/completions":
        return _content_chars(body.get("messages"))
    if endpoint == "responses" and isinstance(body.get("input"), list):
        return _content_chars(body["input"])  # message items, counted as chat's messages
    field = "prompt" if endpoint == "completions" else "input"
    value = body.get(field)
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(len(v) for v in value if isinstance(v, str))
    return 0


def _content_chars(items: Any) -> int:
    """Characters in the ``content`` of message items (chat messages, Responses input):
    a string, or a list of parts whose ``text`` counts."""
    n = 0
    if not isinstance(items, list):
        return 0
    for m in items:
        c = m.get("content") if isinstance(m, dict) else None
        if isinstance(c, str):
            n += len(c)
        elif isinstance(c, list):
            for part in c:
                t = part.get("text") if isinstance(part, dict) else None
                if isinstance(t, str):
                    n += len(t)
    return n
