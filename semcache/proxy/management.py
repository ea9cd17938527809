"""The management endpoints (master key only): ``/cache/*``, ``/metrics`` and the
dashboard page. Kept apart from the request path in app.py; they read the app's
state (``ProxyApp``: its cache, counters and namespaces) and never its internals."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from .._cache import Cache
from .._config import check_ttl
from .._errors import BackendError, ConfigError, SemcacheError
from .._keys import is_entry_key
from .limits import json_object, read_body
from .replies import Reply, json_response

if TYPE_CHECKING:
    from .app import ProxyApp

__all__ = ["Management"]

STATIC = Path(__file__).parent / "static"


class Management:
    def __init__(self, app: ProxyApp) -> None:
        self.app = app

    def routes(self) -> list[Route]:
        return [
            Route("/cache/ping", self.ping, methods=["GET"]),
            Route("/cache/delete", self.delete, methods=["POST"]),
            Route("/cache/flush", self.flush, methods=["POST"]),
            Route("/cache/flushall", self.flush, methods=["POST"]),
            Route("/cache/ttl", self.ttl, methods=["POST"]),
            Route("/cache/stats", self.cache_stats, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ]

    async def _management(self, request: Request) -> dict[str, Any] | None:
        self.app.require_master(request)
        if request.method != "POST":
            return None
        # the same byte limit as the model endpoints: a master key is no reason to
        # buffer an unbounded body
        raw = await read_body(request, self.app.config.limits)
        if not raw.strip():
            return {}
        return json_object(raw)

    def _need_cache(self) -> Cache:
        if self.app.cache is None:
            raise Reply(404, "caching is disabled in this proxy's config")
        return self.app.cache

    async def ping(self, request: Request) -> Response:
        try:
            await self._management(request)
            cache = self._need_cache()
        except Reply as reply:
            return reply.response()

        result = await asyncio.to_thread(cache.ping)
        down = [f"{name} ({r['backend']})" for name, r in result.items() if not r["ok"]]
        status = 503 if down else 200
        # LiteLLM's fields first (its clients and dashboards read them), then semcache's
        body: dict[str, Any] = {
            "status": "unhealthy" if down else "healthy",
            "cache_type": cache.type,
            "ping_response": not down,
            "set_cache_response": await asyncio.to_thread(_set_probe, cache),
            "litellm_cache_params": _redacted(self.app.config.cache_params),
            "health_check_cache_params": {"namespace": cache.namespace},
            "backends": result,
        }
        if down:
            body["down"] = down
        return json_response(body, status)

    async def delete(self, request: Request) -> Response:
        try:
            body = await self._management(request) or {}
            cache = self._need_cache()
            keys = body.get("keys")
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise Reply(400, "give {\"keys\": [\"<key>\", ...]}")
            self._own_keys(keys)
        except Reply as reply:
            return reply.response()
        try:
            n = await cache.adelete(keys)
        except BackendError as exc:
            return _backend_down(exc)
        except SemcacheError as exc:  # a key no entry can have ("<namespace>:")
            return Reply(400, str(exc)).response()
        return json_response({"status": "success", "deleted": n})

    def _own_keys(self, keys: list[str]) -> None:
        mine = set(self.app.namespaces)
        for k in keys:
            if not is_entry_key(k):  # refused before any key is changed, not mid-way
                raise Reply(400, f"{k[:80]!r} is not a cache entry key: keys are "
                            "\"<namespace>:...\" strings, as x-semcache-key gives them")
            if k.split(":", 1)[0] not in mine:
                raise Reply(400, f"key {k!r} is not in one of this proxy's namespaces "
                             f"({', '.join(sorted(mine))})")

    async def flush(self, request: Request) -> Response:
        try:
            body = await self._management(request) or {}
            cache = self._need_cache()
            unknown = sorted(set(body) - {"namespace"})
            if unknown:  # {"namespaces": [...]} or a typo flushed every namespace
                raise Reply(400, f"unknown field {unknown[0][:40]!r}: a flush takes only "
                            "\"namespace\" (one of this proxy's), or nothing for all of "
                            "them", param=unknown[0][:40])
            ns = body.get("namespace")
            targets = self.app.namespaces
            if ns is not None:
                if ns not in targets:
                    raise Reply(400, f"namespace {ns!r} is not one of this proxy's: "
                                 f"{', '.join(targets)}")
                targets = [ns]
        except Reply as reply:
            return reply.response()
        removed: dict[str, int] = {}
        try:
            for t in targets:
                removed[t] = await cache.aflush(t)
        except BackendError as exc:
            return _backend_down(exc, {"flushed": removed} if removed else None)
        await asyncio.to_thread(_release_memory)
        return json_response({"status": "success", "flushed": removed})

    async def ttl(self, request: Request) -> Response:
        try:
            body = await self._management(request) or {}
            cache = self._need_cache()
            if "key" in body and "keys" in body:  # the "keys" were silently ignored
                raise Reply(400, "give \"key\" or \"keys\", not both")
            keys = body.get("keys")
            if isinstance(body.get("key"), str):
                keys = [body["key"]]
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise Reply(400, "give {\"keys\": [...], \"ttl\": <seconds or null>}")
            if "ttl" not in body:
                raise Reply(400, "give \"ttl\": seconds from now, or null (never expire)")
            try:  # once, up front: an empty "keys" must not make a bad ttl a success
                check_ttl(body["ttl"], "ttl")
            except ConfigError as exc:
                raise Reply(400, str(exc)) from exc
            self._own_keys(keys)
        except Reply as reply:
            return reply.response()

        # one key at a time: a failure names its key and lists the keys already updated
        # (as /cache/flush lists what it flushed), never a bare error after changes
        updated: dict[str, bool] = {}
        for k in keys:
            done = {"updated": updated, "failed_key": k}
            try:
                updated[k] = await asyncio.to_thread(cache.update_ttl, k, body["ttl"])
            except BackendError as exc:
                return _backend_down(exc, done)
            except SemcacheError as exc:
                return _with_done(Reply(400, str(exc)), done)
        return json_response({"status": "success", "updated": updated})

    async def cache_stats(self, request: Request) -> Response:
        try:
            await self._management(request)
        except Reply as reply:
            return reply.response()
        cache = self.app.cache
        snap = self.app.stats.snapshot(
            threshold=cache.similarity_threshold if cache and cache.index else None,
            cache_stats=cache.stats() if cache else None)
        snap["namespaces"] = self.app.namespaces
        return json_response(snap)

    async def metrics(self, request: Request) -> Response:
        try:
            self.app.require_master(request)
        except Reply as reply:
            return reply.response()
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(self.app.stats.registry),
                        media_type=CONTENT_TYPE_LATEST)

    async def ui(self, request: Request) -> Response:
        # the page itself is public and holds no data: it asks for the master key and
        # polls /cache/stats with it
        return FileResponse(STATIC / "index.html", media_type="text/html")


def _backend_down(exc: BackendError, done: dict[str, Any] | None = None) -> Response:
    """A management call the store or index could not carry out: a 503 naming the
    backend and its error (not a 500, and not a success: nothing, or only ``done``, was
    changed). Unlike a lookup this cannot fail open: the caller must know."""
    reply = Reply(503, f"the cache backend failed: {exc}", "api_error",
                  "backend_unavailable")
    return reply.response() if done is None else _with_done(reply, done)


def _with_done(reply: Reply, done: dict[str, Any]) -> Response:
    """``reply``'s error body with what the call had already changed beside it."""
    body = {"error": {"message": str(reply), "type": reply.type, "param": reply.param,
                      "code": reply.code}, **done}
    return json_response(body, reply.status)


def _release_memory() -> None:
    """Give the freed entries' memory back to the system after a flush: glibc keeps
    freed large blocks in its heap (measured with benchmarks/proxy_big_prompt.py: RSS
    +32 MB after three 5 MB prompts and a flush; with this, below the starting RSS)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


_SECRET_PARTS = ("password", "key", "secret", "token", "connection_string", "url")


def _redacted(params: dict[str, Any]) -> dict[str, Any]:
    """The config's cache parameters as /cache/ping shows them: no secrets."""
    return {k: ("***" if any(p in k for p in _SECRET_PARTS) and v is not None else
                v if isinstance(v, (str, int, float, bool, type(None))) else repr(v))
            for k, v in params.items()}


def _set_probe(cache: Cache) -> str:
    """LiteLLM's ``set_cache_response``: write and delete a probe entry in this
    proxy's namespace, so a store that pings but refuses writes shows here."""
    key = f"{cache.namespace}:__semcache_ping__"
    try:
        if cache.store.set(key, b"{}", ttl=60) is False:
            return "error: the store did not take the write"
        cache.store.delete([key])
    except Exception as exc:  # reported, not raised: this is a health check
        return f"error: {type(exc).__name__}: {exc}"
    return "success"
