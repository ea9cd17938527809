"""The proxy's ASGI application: model endpoints dispatched directly, the rest by Starlette.

A cache hit is the proxy's most frequent answer and its cheapest: reading the body,
one exact-store lookup, one response. In front of it, Starlette's generic stack (error
middleware, exception middleware, a router that tries each route's regex in turn, a
per-request exception-handling wrapper) is a measurable share of the proxy's own work
per exact hit (``benchmarks/proxy_inprocess.py`` measures both ways, interleaved in one
process; docs/proxy.md has the figure). The model endpoints take a fixed set of exact
paths and one method, so they are found with one dict lookup and called directly; every
other request (``/health``, the admin API, the dashboard, lifespan) goes through
Starlette unchanged.

What the skipped layers did is kept: an exception that escapes a handler (a bug:
every expected failure is a ``Reply`` with its own 4xx) is logged with its traceback
and answered with a JSON 500 naming no internals, as ``ServerErrorMiddleware`` would
have answered (in plain text); uploaded form files are closed as Starlette's
``request_response`` closes them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = ["ProxyStarlette"]

log = logging.getLogger("semcache.proxy")

Handler = Callable[[Request], Awaitable[Response]]

_INTERNAL = orjson.dumps({"error": {
    "message": "internal error in the caching proxy (logged on the server)",
    "type": "server_error", "param": None, "code": "internal_error"}})


class ProxyStarlette(Starlette):
    """``Starlette`` whose POST model endpoints skip the generic router (see the module
    docstring); ``fast`` maps each exact path (with and without ``/v1``) to its handler."""

    def __init__(self, *args: Any, fast: dict[str, Handler], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fast = fast

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            root = scope.get("root_path")
            if root and path.startswith(root):  # mounted under a prefix: route on the rest
                path = path[len(root):]
            handler = self._fast.get(path)
            if handler is not None:
                scope["app"] = self
                await _serve(handler, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def _serve(handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive, send)
    try:
        try:
            response = await handler(request)
        except Exception:  # noqa: BLE001 - the last line of defence: never a bare 500 page
            log.exception("unhandled error answering %s %s", scope["method"], scope["path"])
            response = Response(_INTERNAL, status_code=500, media_type="application/json")
        await response(scope, receive, send)
    finally:
        await request.close()  # an uploaded file's spooled temp file
