"""The caching proxy: an OpenAI-compatible ASGI app in front of a ``semcache.Cache``.

Clients change only ``OPENAI_BASE_URL``. For each request the app

1. authenticates the key (``Authorization: Bearer``) and picks its namespace,
2. merges the per-request controls (body ``"cache": {...}`` and ``Cache-Control``) and
   strips them from the body,
3. runs the cache's lookup (``cache._abegin``): a hit is answered from the stored
   response JSON (replayed as SSE chunks when the client streams),
4. on a miss forwards the raw JSON to the deployment's upstream with httpx (so unknown
   fields, error bodies and status codes pass through unchanged) and stores a complete
   2xx answer with ``cache._afinish``, reusing the lookup's embedding. Errors are never
   stored.

Every ``/v1`` reply carries ``x-semcache-hit``, ``x-semcache-stage``,
``x-semcache-similarity``, ``x-semcache-key``, ``x-semcache-matched-prompt``
(URL-encoded) and ``age``. Management endpoints (``/cache/*``) need the master key.
"""

from __future__ import annotations

import contextlib
import hmac
import itertools
import logging
import os
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from .._cache import Cache, _Outcome
from .._errors import ConfigError, SemcacheError
from .config import Deployment, ProxyConfig, build_cache, load_config, warn_unsupported
from .stats import ProxyStats

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger("semcache.proxy")
STATIC = Path(__file__).parent / "static"
CONFIG_ENV = "SEMCACHE_PROXY_CONFIG"
QUIET_ENV = "SEMCACHE_PROXY_WARNED"

#: endpoint -> the call type the cache keys it under
CALL_TYPES = {
    "chat/completions": "acompletion",
    "completions": "atext_completion",
    "embeddings": "aembedding",
    "audio/transcriptions": "atranscription",
}
_MAX_HEADER_PROMPT = 1000  # characters of the matched prompt echoed in a header
_POOL_SIZE = 32  # upstream connections per httpx pool (see ProxyApp.lifespan)


class _Reply(Exception):
    """An early answer (auth failure, bad request): raised, turned into a response once."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.code = status, type_, code

    def response(self, headers: Mapping[str, str] | None = None) -> Response:
        body = {"error": {"message": str(self), "type": self.type, "param": None,
                          "code": self.code}}
        return _json(body, self.status, headers)


@dataclass(frozen=True, slots=True)
class _Principal:
    master: bool
    namespace: str


def _json(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(obj), status, headers=dict(headers or {}),
                    media_type="application/json")


class ProxyApp:
    """The state behind the routes: config, cache, upstream client, counters."""

    def __init__(self, config: ProxyConfig, cache: Cache | None = None) -> None:
        self.config = config
        self.owns_cache = cache is None and config.cache_enabled
        self.cache: Cache | None = cache if cache is not None else (
            build_cache(config) if config.cache_enabled else None)
        self.stats = ProxyStats(config.prices)
        #: requests without a namespace use the cache's own, so the common case passes
        #: no namespace control at all (Controls.parse's fast path)
        self.default_ns = self.cache.namespace if self.cache else config.default_namespace
        self.namespaces = list(dict.fromkeys(
            [self.default_ns, *config.namespaces[1:], *(k.namespace for k in config.keys)]))
        self._pools: list[httpx.AsyncClient] = []
        self._rr = {name: itertools.cycle(deps) for name, deps in config.deployments.items()}
        self._keys = {k.key.encode(): k for k in config.keys}
        self._master = config.master_key.encode() if config.master_key else None
        self.open = self._master is None and not self._keys  # no auth configured: dev mode

    # ------------------------------------------------------------------ lifecycle
    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # Several small pools instead of one large one: httpcore assigns requests to
        # connections by scanning the pool for every queued request, so its cost grows
        # with the square of the connections in use (at 200 concurrent misses that scan
        # was 38% of the proxy's CPU under cProfile). Requests go to the pools in turn.
        total = self.config.max_connections
        shards = max(1, -(-total // _POOL_SIZE))
        per = -(-total // shards)
        timeout = httpx.Timeout(self.config.upstream_timeout, connect=10.0)
        self._pools = [httpx.AsyncClient(limits=httpx.Limits(max_connections=per,
                                                             max_keepalive_connections=per),
                                         timeout=timeout) for _ in range(shards)]
        self._pool_cycle = itertools.cycle(self._pools)
        try:
            yield
        finally:
            for pool in self._pools:
                await pool.aclose()
            if self.owns_cache and self.cache is not None:
                self.cache.close()

    def _client(self) -> httpx.AsyncClient:
        return next(self._pool_cycle)

    # ------------------------------------------------------------------ auth
    def principal(self, request: Request) -> _Principal:
        default = self.default_ns
        if self.open:
            return _Principal(True, default)
        token = _token(request)
        if token is not None:
            t = token.encode()
            if self._master is not None and hmac.compare_digest(t, self._master):
                return _Principal(True, default)
            for k, client in self._keys.items():
                if hmac.compare_digest(t, k):
                    return _Principal(False, client.namespace)
        raise _Reply(401, "invalid or missing API key", "invalid_request_error",
                     "invalid_api_key")

    def require_master(self, request: Request) -> None:
        if not self.principal(request).master:
            raise _Reply(401, "invalid or missing API key", "invalid_request_error",
                         "invalid_api_key")

    # ------------------------------------------------------------------ routes
    def routes(self) -> list[Route]:
        r = [
            Route("/v1/chat/completions", self.handler("chat/completions"), methods=["POST"]),
            Route("/v1/completions", self.handler("completions"), methods=["POST"]),
            Route("/v1/embeddings", self.handler("embeddings"), methods=["POST"]),
            Route("/v1/audio/transcriptions", self.handler("audio/transcriptions"),
                  methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
            Route("/cache/ping", self.ping, methods=["GET"]),
            Route("/cache/delete", self.delete, methods=["POST"]),
            Route("/cache/flush", self.flush, methods=["POST"]),
            Route("/cache/flushall", self.flush, methods=["POST"]),
            Route("/cache/ttl", self.ttl, methods=["POST"]),
            Route("/cache/stats", self.cache_stats, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ]
        # the same endpoints without the /v1 prefix, as LiteLLM's proxy serves them
        r += [Route(x.path[3:], x.endpoint, methods=["POST"]) for x in r[:4]]
        if self.config.dashboard:
            r.append(Route("/ui", self.ui, methods=["GET"]))
        return r

    def handler(self, endpoint: str):
        async def handle(request: Request) -> Response:
            try:
                return await self.answer(endpoint, request)
            except _Reply as reply:
                return reply.response(_headers(None, "error"))
        return handle

    async def answer(self, endpoint: str, request: Request) -> Response:
        t0 = time.perf_counter()
        who = self.principal(request)
        files = None
        if endpoint == "audio/transcriptions":
            body, files, audio = await self._multipart(request)
        else:
            try:
                body = orjson.loads(await request.body())
            except orjson.JSONDecodeError as exc:
                raise _Reply(400, f"request body is not valid JSON: {exc}") from None
            if not isinstance(body, dict):
                raise _Reply(400, "request body must be a JSON object")
        model = body.get("model")
        deps = self.config.deployments.get(model) if isinstance(model, str) else None
        if not deps or not isinstance(model, str):
            raise _Reply(404, f"the model {model!r} does not exist (not in model_list)",
                         "invalid_request_error", "model_not_found")
        dep = next(self._rr[model])
        controls = self._controls(request, body.pop("cache", None), who)
        caching = body.pop("caching", None)  # cache fields are ours, never the upstream's
        cache_key = body.pop("cache_key", None)
        stream = bool(body.get("stream"))
        ns = controls.get("namespace", self.default_ns)

        outcome: _Outcome | None = None
        if self.cache is not None:
            kwargs = {k: v for k, v in body.items() if k != "stream"}
            if files is not None:
                kwargs["file"] = audio  # keyed on the audio bytes' hash
            kwargs["cache"] = controls
            if caching is not None:
                kwargs["caching"] = caching
            if cache_key is not None:
                kwargs["cache_key"] = cache_key
            group = self.config.caching_groups.get(model)
            if group is not None:
                kwargs["caching_group"] = group
            try:
                outcome = await self.cache._abegin(CALL_TYPES[endpoint], kwargs)
            except ConfigError as exc:  # bad per-request controls: the client's to fix
                raise _Reply(400, str(exc)) from None
            except SemcacheError as exc:
                # a request the cache cannot key (the upstream may still take it): pass
                # it through uncached rather than refuse what the model would answer
                log.debug("not caching a %s request: %s", endpoint, exc)
                outcome = None
        if outcome is not None and outcome.hit is not None:
            return self._hit(endpoint, model, ns, body, outcome, stream, t0)
        stage = "miss" if outcome is not None and outcome.request.read else "skipped"
        meta = outcome.metadata if outcome is not None else None
        headers = _headers(meta, stage)
        upstream = {**body, "model": dep.model}
        if stream:
            return await self._stream_miss(endpoint, dep, upstream, outcome, headers,
                                           model, ns, stage, t0)
        return await self._forward(endpoint, dep, upstream, files, outcome, headers, model,
                                   ns, stage, t0)

    # ------------------------------------------------------------------ request parts
    def _controls(self, request: Request, raw: Any, who: _Principal) -> dict[str, Any]:
        controls: dict[str, Any] = {}
        cc = request.headers.get("cache-control")
        if cc:
            for part in cc.lower().split(","):
                name, _, value = part.strip().partition("=")
                if name in ("no-cache", "no-store"):
                    controls[name] = True
                elif name in ("max-age", "s-maxage") and value.strip().isdigit():
                    controls["s-maxage"] = int(value)
        if raw is not None:
            if not isinstance(raw, dict):
                raise _Reply(400, "the 'cache' field must be an object of cache controls")
            controls.update(raw)
        ns = controls.get("namespace")
        if not who.master:
            if ns is not None and ns != who.namespace:
                raise _Reply(403, "this key may not use another namespace",
                             "permission_error", "namespace_forbidden")
            if who.namespace != self.default_ns:
                controls["namespace"] = who.namespace
        elif ns == self.default_ns:
            del controls["namespace"]
        elif ns is not None and ns not in self.namespaces:
            # everything this proxy writes stays in its namespaces, so flush reaches it
            raise _Reply(403, f"namespace {ns!r} is not one of this proxy's "
                         f"({', '.join(self.namespaces)})", "permission_error",
                         "namespace_forbidden")
        return controls

    async def _multipart(self, request: Request) -> tuple[dict[str, Any], Any, bytes]:
        try:
            form = await request.form()
        except Exception as exc:  # noqa: BLE001 - python-multipart raises several types
            raise _Reply(400, f"cannot parse the multipart body: {exc}") from None
        body: dict[str, Any] = {}
        upload = None
        try:
            for name, value in form.multi_items():
                if name == "file" and not isinstance(value, str):
                    upload = value
                elif name == "cache":
                    try:
                        body["cache"] = orjson.loads(str(value))
                    except orjson.JSONDecodeError:
                        raise _Reply(400, "the 'cache' form field must be JSON") from None
                elif name in body:  # repeated fields (timestamp_granularities[])
                    prev = body[name]
                    body[name] = [*prev, value] if isinstance(prev, list) else [prev, value]
                else:
                    body[name] = value
            if upload is None:
                raise _Reply(400, "a transcription needs a 'file' part")
            audio = await upload.read()
        finally:
            await form.close()  # the upload's spooled temporary file
        files = {"file": (upload.filename or "audio", audio,
                          upload.content_type or "application/octet-stream")}
        return body, files, audio

    # ------------------------------------------------------------------ hits
    def _hit(self, endpoint: str, model: str, ns: str, body: dict[str, Any],
             outcome: _Outcome, stream: bool, t0: float) -> Response:
        assert outcome.hit is not None
        meta = outcome.metadata
        value = outcome.hit.value
        headers = _headers(meta, meta["stage"])
        prompt = _query_text(body)
        self.stats.record(endpoint=endpoint, model=model, namespace=ns, stage=meta["stage"],
                          seconds=time.perf_counter() - t0, meta=meta, value=value,
                          prompt=prompt)
        if isinstance(value, dict) and "$text" in value:  # a non-JSON transcription
            return Response(value["$text"], headers=headers,
                            media_type=value.get("$content_type") or "text/plain")
        if stream and endpoint in ("chat/completions", "completions"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = _replay(endpoint, value, include_usage)
            return StreamingResponse(_sse(chunks), headers=headers,
                                     media_type="text/event-stream")
        return _json(value, 200, headers)

    # ------------------------------------------------------------------ misses
    def _upstream_request(self, endpoint: str, dep: Deployment) -> tuple[str, dict[str, str]]:
        headers = {}
        if dep.api_key:
            headers["authorization"] = f"Bearer {dep.api_key}"
        return f"{dep.api_base}/{endpoint}", headers

    def _timeout(self, dep: Deployment) -> Any:
        return httpx.USE_CLIENT_DEFAULT if dep.timeout is None else dep.timeout

    async def _forward(self, endpoint: str, dep: Deployment, body: dict[str, Any],
                       files: Any, outcome: _Outcome | None, headers: dict[str, str],
                       model: str, ns: str, stage: str, t0: float) -> Response:
        http = self._client()
        url, up_headers = self._upstream_request(endpoint, dep)
        try:
            if files is not None:  # form fields: str, or lists for repeated fields
                r = await http.post(url, data=body, files=files, headers=up_headers,
                                         timeout=self._timeout(dep))
            else:
                up_headers["content-type"] = "application/json"
                r = await http.post(url, content=orjson.dumps(body), headers=up_headers,
                                         timeout=self._timeout(dep))
        except httpx.HTTPError as exc:
            return self._upstream_failed(exc, endpoint, model, ns, headers, t0)
        self.stats.upstream(r.status_code)
        ctype = r.headers.get("content-type", "application/json")
        if 200 <= r.status_code < 300 and outcome is not None:
            if ctype.startswith("application/json"):
                try:
                    value = orjson.loads(r.content)
                except orjson.JSONDecodeError:
                    value = None
            else:
                value = {"$text": r.text, "$content_type": ctype}
            if value is not None:
                await self._store(outcome, value)
        self.stats.record(endpoint=endpoint, model=model, namespace=ns,
                          stage=stage if r.status_code < 400 else "error",
                          seconds=time.perf_counter() - t0,
                          meta=outcome.metadata if outcome else None,
                          errors=outcome.request.errors if outcome else None)
        return Response(r.content, r.status_code, headers=headers, media_type=ctype)

    def _upstream_failed(self, exc: Exception, endpoint: str, model: str, ns: str,
                         headers: dict[str, str], t0: float) -> Response:
        self.stats.upstream(0)
        self.stats.record(endpoint=endpoint, model=model, namespace=ns, stage="error",
                          seconds=time.perf_counter() - t0, meta=None)
        status = 504 if isinstance(exc, httpx.TimeoutException) else 502
        return _Reply(status, f"upstream request failed: {type(exc).__name__}: {exc}",
                      "api_error", "upstream_unavailable").response(headers)

    async def _store(self, outcome: _Outcome, value: Any) -> None:
        """Store a fresh answer; the client has its answer whatever happens here."""
        assert self.cache is not None
        try:
            await self.cache._afinish(outcome, value)
        except SemcacheError as exc:  # e.g. larger than max_value_bytes: not cacheable
            outcome.request.errors.append(f"store: {type(exc).__name__}: {exc}")
            log.warning("semcache proxy: answer not stored: %s", exc)

    async def _stream_miss(self, endpoint: str, dep: Deployment, body: dict[str, Any],
                           outcome: _Outcome | None, headers: dict[str, str], model: str,
                           ns: str, stage: str, t0: float) -> Response:
        http = self._client()
        url, up_headers = self._upstream_request(endpoint, dep)
        up_headers["content-type"] = "application/json"
        req = http.build_request("POST", url, content=orjson.dumps(body),
                                      headers=up_headers, timeout=self._timeout(dep))
        try:
            r = await http.send(req, stream=True)
        except httpx.HTTPError as exc:
            return self._upstream_failed(exc, endpoint, model, ns, headers, t0)
        self.stats.upstream(r.status_code)
        ctype = r.headers.get("content-type", "text/event-stream")
        if not 200 <= r.status_code < 300 or not ctype.startswith("text/event-stream"):
            try:
                content = await r.aread()
            finally:
                await r.aclose()
            self.stats.record(endpoint=endpoint, model=model, namespace=ns,
                              stage="error" if r.status_code >= 400 else stage,
                              seconds=time.perf_counter() - t0, meta=None)
            return Response(content, r.status_code, headers=headers, media_type=ctype)
        lookup_errors = len(outcome.request.errors) if outcome else 0
        self.stats.record(endpoint=endpoint, model=model, namespace=ns, stage=stage,
                          seconds=time.perf_counter() - t0,
                          meta=outcome.metadata if outcome else None)
        assembler = _Assembler(endpoint)

        stored = False

        async def store() -> None:
            nonlocal stored
            value = assembler.result()
            if not stored and value is not None and outcome is not None \
                    and self.cache is not None:
                stored = True
                await self._store(outcome, value)  # complete: store it once
                self.stats.backend_failed(outcome.request.errors[lookup_errors:])

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for piece in r.aiter_raw():
                    assembler.feed(piece)
                    if b"[DONE]" in piece:
                        # store before the client sees the end of the stream, so a
                        # client that asks again right after reading it gets a hit
                        await store()
                    yield piece  # as it arrives: the client sees the upstream's pacing
            finally:
                await r.aclose()
            await store()

        return StreamingResponse(relay(), headers=headers, media_type=ctype)

    # ------------------------------------------------------------------ models, health
    async def models(self, request: Request) -> Response:
        try:
            self.principal(request)
        except _Reply as reply:
            return reply.response()
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "semcache-proxy"}
                for name in self.config.deployments]
        return _json({"object": "list", "data": data})

    async def health(self, request: Request) -> Response:
        return _json({"status": "ok"})

    # ------------------------------------------------------------------ management
    async def _management(self, request: Request) -> dict[str, Any] | None:
        self.require_master(request)
        if request.method != "POST":
            return None
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _Reply(400, f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _Reply(400, "request body must be a JSON object")
        return body

    def _need_cache(self) -> Cache:
        if self.cache is None:
            raise _Reply(404, "caching is disabled in this proxy's config")
        return self.cache

    async def ping(self, request: Request) -> Response:
        try:
            await self._management(request)
            cache = self._need_cache()
        except _Reply as reply:
            return reply.response()
        import asyncio

        result = await asyncio.to_thread(cache.ping)
        down = [f"{name} ({r['backend']})" for name, r in result.items() if not r["ok"]]
        status = 503 if down else 200
        body: dict[str, Any] = {"status": "unhealthy" if down else "healthy",
                                "backends": result}
        if down:
            body["down"] = down
        return _json(body, status)

    async def delete(self, request: Request) -> Response:
        try:
            body = await self._management(request) or {}
            cache = self._need_cache()
            keys = body.get("keys")
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise _Reply(400, "give {\"keys\": [\"<key>\", ...]}")
            self._own_keys(keys)
        except _Reply as reply:
            return reply.response()
        n = await cache.adelete(keys)
        return _json({"status": "success", "deleted": n})

    def _own_keys(self, keys: list[str]) -> None:
        mine = set(self.namespaces)
        for k in keys:
            if k.split(":", 1)[0] not in mine:
                raise _Reply(400, f"key {k!r} is not in one of this proxy's namespaces "
                             f"({', '.join(sorted(mine))})")

    async def flush(self, request: Request) -> Response:
        try:
            body = await self._management(request) or {}
            cache = self._need_cache()
            ns = body.get("namespace")
            targets = self.namespaces
            if ns is not None:
                if ns not in targets:
                    raise _Reply(400, f"namespace {ns!r} is not one of this proxy's: "
                                 f"{', '.join(targets)}")
                targets = [ns]
        except _Reply as reply:
            return reply.response()
        removed = {t: await cache.aflush(t) for t in targets}
        return _json({"status": "success", "flushed": removed})

    async def ttl(self, request: Request) -> Response:
        try:
            body = await self._management(request) or {}
            cache = self._need_cache()
            keys = body.get("keys")
            if isinstance(body.get("key"), str):
                keys = [body["key"]]
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise _Reply(400, "give {\"keys\": [...], \"ttl\": <seconds or null>}")
            if "ttl" not in body:
                raise _Reply(400, "give \"ttl\": seconds from now, or null (never expire)")
            self._own_keys(keys)
        except _Reply as reply:
            return reply.response()
        import asyncio

        try:
            updated = {k: await asyncio.to_thread(cache.update_ttl, k, body["ttl"])
                       for k in keys}
        except SemcacheError as exc:
            return _Reply(400, str(exc)).response()
        return _json({"status": "success", "updated": updated})

    async def cache_stats(self, request: Request) -> Response:
        try:
            await self._management(request)
        except _Reply as reply:
            return reply.response()
        cache = self.cache
        snap = self.stats.snapshot(
            threshold=cache.similarity_threshold if cache and cache.index else None,
            cache_stats=cache.stats() if cache else None)
        snap["namespaces"] = self.namespaces
        return _json(snap)

    async def metrics(self, request: Request) -> Response:
        try:
            self.require_master(request)
        except _Reply as reply:
            return reply.response()
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(self.stats.registry),
                        media_type=CONTENT_TYPE_LATEST)

    async def ui(self, request: Request) -> Response:
        # the page itself is public and holds no data: it asks for the master key and
        # polls /cache/stats with it
        return FileResponse(STATIC / "index.html", media_type="text/html")


def _query_text(body: Mapping[str, Any]) -> str | None:
    """The request's query as the dashboard shows it: last user message, or the prompt."""
    msgs = body.get("messages")
    if isinstance(msgs, list):
        for m in reversed(msgs):
            if isinstance(m, dict) and m.get("role") == "user":
                c = m.get("content")
                if isinstance(c, list):
                    c = " ".join(str(p.get("text", "")) for p in c if isinstance(p, dict))
                return c if isinstance(c, str) else None
        return None
    for name in ("prompt", "input"):
        if isinstance(body.get(name), str):
            return body[name]
    return None


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("api-key") or request.headers.get("x-api-key")


def _headers(meta: dict[str, Any] | None, stage: str) -> dict[str, str]:
    meta = meta or {}
    hit = stage in ("exact", "semantic")
    sim = meta.get("similarity") if hit else meta.get("nearest_similarity")
    prompt = meta.get("matched_prompt") if hit else None
    age = meta.get("age_s") if hit else 0
    return {
        "x-semcache-hit": "true" if hit else "false",
        "x-semcache-stage": stage,
        "x-semcache-similarity": "" if sim is None else f"{sim:.4f}",
        "x-semcache-key": meta.get("key") or "",
        "x-semcache-matched-prompt":
            urllib.parse.quote(prompt[:_MAX_HEADER_PROMPT], safe="") if prompt else "",
        "age": str(int(age or 0)),
    }


# ---------------------------------------------------------------------- SSE
async def _sse(events: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for ev in events:
        yield b"data: " + orjson.dumps(ev) + b"\n\n"
    yield b"data: [DONE]\n\n"


def _replay(endpoint: str, value: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
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


class _Assembler:
    """Rebuilds the complete response from a stream's SSE events, as they pass through.

    ``result()`` is the response JSON, or None when the stream was incomplete (no
    ``[DONE]``, a choice without ``finish_reason``) or carried an error: never stored.
    """

    def __init__(self, endpoint: str) -> None:
        self.chat = endpoint == "chat/completions"
        self.buf = b""
        self.done = False
        self.bad = False
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: Any = None

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
                any(c["finish_reason"] is None for c in self.choices.values()):
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


# ---------------------------------------------------------------------- factories
def create_app(config: ProxyConfig | str | os.PathLike[str], *,
               cache: Cache | None = None) -> Starlette:
    """The ASGI app for a config (a ``ProxyConfig`` or a YAML path); ``cache`` overrides
    the one the config describes (tests pass a cache with failing backends)."""
    if not isinstance(config, ProxyConfig):
        config = load_config(config)
    state = ProxyApp(config, cache)
    app = Starlette(routes=state.routes(), lifespan=state.lifespan)
    app.state.proxy = state
    return app


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory`` and multi-worker runs: the config path comes
    from ``$SEMCACHE_PROXY_CONFIG`` (set by ``semcache serve``)."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise SystemExit(f"set {CONFIG_ENV} to the proxy's config file")
    # the parent process (``semcache serve``) already warned once about unsupported keys
    return create_app(load_config(path, warn=not os.environ.get(QUIET_ENV)))


__all__ += ["ProxyApp", "warn_unsupported"]
