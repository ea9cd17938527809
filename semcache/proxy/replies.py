"""What the proxy answers with: JSON bodies, OpenAI-style errors and the cache headers.

Every header value the proxy writes goes through ``header_value``: a value that came
from a client or from the store (a custom ``cache_key``, a cached prompt) is
percent-encoded to printable ASCII, so no stored value can put CR/LF into a response
(a dropped connection) or a character outside Latin-1 (a 500 from the ASGI server) in
front of a later client (issue #18, item 4).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

__all__ = ["Reply", "header_value", "json_response", "semcache_headers"]

_MAX_HEADER_PROMPT = 1000  # characters of the matched prompt echoed in a header
#: what a header value keeps unencoded: enough for keys (``ns:hex``, ``ns:faq-42``)
_SAFE = ":/@+=-._~"


class Reply(Exception):
    """An early answer (auth failure, bad request): raised, turned into a response once."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.code, self.param = status, type_, code, param

    def response(self, headers: Mapping[str, str] | None = None) -> Response:
        body = {"error": {"message": str(self), "type": self.type, "param": self.param,
                          "code": self.code}}
        return json_response(body, self.status, headers)


def json_response(obj: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(obj), status, headers=dict(headers or {}),
                    media_type="application/json")


def header_value(text: str) -> str:
    """``text`` as a header value that cannot break the response: printable ASCII."""
    if text.isascii() and text.isprintable() and "%" not in text and " " not in text:
        return text  # keys are plain ASCII already: the common case is one scan, no copy
    return urllib.parse.quote(text, safe=_SAFE)


def semcache_headers(meta: Mapping[str, Any] | None, stage: str, *,
                     nearest: bool = True) -> dict[str, str]:
    """The ``x-semcache-*`` headers of one reply. ``nearest``: whether a miss may show
    the nearest candidate's similarity (only to keys that may tune the threshold: to
    others it is an oracle for what the namespace holds, issue #18 item 9)."""
    meta = meta or {}
    hit = stage in ("exact", "semantic")
    sim = meta.get("similarity") if hit else (meta.get("nearest_similarity") if nearest
                                               else None)
    prompt = meta.get("matched_prompt") if hit else None
    age = meta.get("age_s") if hit else 0
    key = meta.get("key") or ""
    return {
        "x-semcache-hit": "true" if hit else "false",
        "x-semcache-stage": stage,
        "x-semcache-similarity": "" if sim is None else f"{sim:.4f}",
        "x-semcache-key": header_value(key) if key else "",
        # LiteLLM's proxy name for the same key: its clients read this one
        "x-litellm-cache-key": header_value(key) if key else "",
        "x-semcache-matched-prompt":
            urllib.parse.quote(prompt[:_MAX_HEADER_PROMPT], safe="")
            if isinstance(prompt, str) and prompt else "",
        "age": str(int(age or 0)),
    }
