"""Reading and checking a request before the cache sees it: size limits and field types.

One large or malformed request must cost its sender a clear 4xx, never the other
clients their latency nor the proxy a 500 (issue #18, items 5 and 6):

- the body is read with a byte limit (``max_body_bytes``; ``Content-Length`` is checked
  before anything is read, a chunked body as it arrives): 413;
- the prompt's characters are counted before anything is tokenized or hashed
  (``max_prompt_chars``): 413;
- ``stream`` must be a boolean and ``stream_options`` an object: 400 (``"false"``, a
  string, is not taken as streaming);
- a transcription has exactly one file part, named ``file``.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from .config import Limits
from .replies import Reply

__all__ = ["check_body", "json_object", "prompt_chars", "read_body", "read_json",
           "read_multipart"]

_MAX_FORM_FIELD = 1024 * 1024  # one non-file form field (starlette's default too)


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
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large("the request body", limit, "bytes", "max_body_bytes")
        chunks.append(chunk)
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
