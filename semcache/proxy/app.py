"""The caching proxy: an OpenAI-compatible ASGI app in front of a ``semcache.Cache``.

Clients change only ``OPENAI_BASE_URL``. For each request the app

1. authenticates the key (``Authorization: Bearer``) and picks its namespace,
2. merges the per-request controls (body ``"cache": {...}`` and ``Cache-Control``) and
   strips them from the body,
3. runs the cache's lookup (``cache.abegin``): a hit is answered from the stored
   response JSON (replayed as SSE chunks when the client streams),
4. on a miss forwards the raw JSON to the deployment's upstream with httpx (so unknown
   fields, error bodies and status codes pass through unchanged) and stores a complete
   2xx answer with ``pending.astore``, reusing the lookup's embedding. Errors are never
   stored.

Every ``/v1`` reply carries ``x-semcache-hit``, ``x-semcache-stage``,
``x-semcache-similarity``, ``x-semcache-key``, ``x-semcache-matched-prompt``
(URL-encoded) and ``age``. Management endpoints (``/cache/*``) need the master key.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .._cache import Cache, Pending
from .._calls._responses_api import ResponsesAssembler
from .._calls._responses_api import key_kwargs as responses_key
from .._calls._streams import choices_of
from .._errors import ConfigError, SemcacheError
from .._flight import FLIGHTS, flight_key, redis_lock
from .answers import Assembler, chunks, encode_hit, storable
from .asgi import ProxyStarlette
from .config import Deployment, ProxyConfig, build_cache, load_config, warn_unsupported
from .embeddings import embed_per_item, items_of
from .limits import check_body, read_json, read_multipart
from .management import Management
from .permissions import Principal, bad_control, cache_controls, take_owned
from .replies import Reply, json_response, semcache_headers
from .stats import ProxyStats

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger("semcache.proxy")
CONFIG_ENV = "SEMCACHE_PROXY_CONFIG"
QUIET_ENV = "SEMCACHE_PROXY_WARNED"

#: endpoint -> the call type the cache keys it under
CALL_TYPES = {
    "chat/completions": "acompletion",
    "completions": "atext_completion",
    "embeddings": "aembedding",
    "audio/transcriptions": "atranscription",
    # keyed as chat in a key space of its own (semcache/_calls/_responses_api.py)
    "responses": "acompletion",
}
_POOL_SIZE = 32  # upstream connections per httpx pool (see ProxyApp.lifespan)
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
        # clients by the SHA-256 of their key: a request's key is found with one dict
        # lookup instead of a constant-time comparison with every key (a proxy with
        # thousands of keys made thousands per request); looking up a digest tells a
        # timing attacker nothing about the key itself
        self._keys = {hashlib.sha256(k.key.encode()).digest(): k for k in config.keys}
        self._master = config.master_key.encode() if config.master_key else None
        self.open = self._master is None and not self._keys  # no auth configured: dev mode
        self.admin = Management(self)

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
    def principal(self, request: Request) -> Principal:
        default = self.default_ns
        if self.open:
            return Principal(True, default)
        token = _token(request)
        if token is not None:
            t = token.encode()
            if self._master is not None and hmac.compare_digest(t, self._master):
                return Principal(True, default)
            client = self._keys.get(hashlib.sha256(t).digest())
            if client is not None:
                return Principal(False, client.namespace, client.allowed)
        raise Reply(401, "invalid or missing API key", "invalid_request_error",
                     "invalid_api_key")

    def require_master(self, request: Request) -> None:
        if not self.principal(request).master:
            raise Reply(401, "invalid or missing API key", "invalid_request_error",
                         "invalid_api_key")

    # ------------------------------------------------------------------ routes
    def routes(self) -> list[Route]:
        r = [
            Route("/v1/chat/completions", self.handler("chat/completions"), methods=["POST"]),
            Route("/v1/completions", self.handler("completions"), methods=["POST"]),
            Route("/v1/embeddings", self.handler("embeddings"), methods=["POST"]),
            Route("/v1/audio/transcriptions", self.handler("audio/transcriptions"),
                  methods=["POST"]),
            Route("/v1/responses", self.handler("responses"), methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
            *self.admin.routes(),
        ]
        # the same endpoints without the /v1 prefix, as LiteLLM's proxy serves them
        r += [Route(x.path[3:], x.endpoint, methods=["POST"]) for x in r[:5]]
        if self.config.dashboard:
            r.append(Route("/ui", self.admin.ui, methods=["GET"]))
        return r

    def handler(self, endpoint: str):
        async def handle(request: Request) -> Response:
            try:
                return await self.answer(endpoint, request)
            except Reply as reply:
                return reply.response(semcache_headers(None, "error"))
        return handle

    async def answer(self, endpoint: str, request: Request) -> Response:
        t0 = time.perf_counter()
        who = self.principal(request)
        limits = self.config.limits
        files = None
        if endpoint == "audio/transcriptions":
            body, files, audio = await read_multipart(request, limits)
        else:
            body = await read_json(request, limits)
        model = body.get("model")
        deps = self.config.deployments.get(model) if isinstance(model, str) else None
        if not deps or not isinstance(model, str):
            raise Reply(404, f"the model {str(model)[:200]!r} does not exist (not in "
                        f"model_list)", "invalid_request_error", "model_not_found")
        stream = check_body(endpoint, body, limits)
        # the proxy's fields out, the fields the key leaves out stripped (permissions.py)
        owned = take_owned(body, who)
        controls = cache_controls(request.headers.get("cache-control"), owned.cache, who,
                                  default_ns=self.default_ns, namespaces=self.namespaces,
                                  cache_ttl=self.cache.ttl if self.cache else None)
        dep = next(self._rr[model])
        ns = controls.get("namespace", self.default_ns)

        outcome: Pending | None = None
        kwargs: dict[str, Any] = {}
        if self.cache is not None:
            kwargs = responses_key(body) if endpoint == "responses" else \
                {k: v for k, v in body.items() if k != "stream"}
            if files is not None:
                kwargs["file"] = audio  # keyed on the audio bytes' hash
            kwargs["cache"] = controls
            if owned.caching is not None and kwargs.get("caching") is not False:
                # never over a request the key itself bypasses (a Responses turn in a
                # conversation: server-side state that each turn appends to)
                kwargs["caching"] = owned.caching
            if owned.cache_key is not None:
                kwargs["cache_key"] = owned.cache_key
            group = self.config.caching_groups.get(model, owned.caching_group)
            if group is not None:
                kwargs["caching_group"] = group
            elif len({d.api_base for d in deps}) == 1:
                # the server is keyed, as the library keys it (_keys.ENDPOINT_PARAMS), so
                # both share one server's entries; a name served by several servers is
                # keyed by the name alone, like a caching group
                kwargs["api_base"] = dep.api_base
            items = items_of(body.get("input")) if endpoint == "embeddings" and \
                owned.cache_key is None else None
            if items is not None:  # per item, sharing entries with the library
                return await embed_per_item(self, body, kwargs, items, dep, model, ns,
                                            who.may("similarity_threshold"), t0)
            try:
                outcome = await self.cache.abegin(CALL_TYPES[endpoint], **kwargs)
            except ConfigError as exc:  # bad per-request controls: the client's to fix
                raise bad_control(exc) from None
            except SemcacheError as exc:
                # a request the cache cannot key (the upstream may still take it): pass
                # it through uncached rather than refuse what the model would answer
                log.debug("not caching a %s request: %s", endpoint, exc)
                outcome = None
        lease = None
        if outcome is not None and not outcome.hit and not stream and \
                outcome.reads and outcome.writes:
            # single-flight (semcache/_flight.py): an identical miss in flight here, or
            # in another worker sharing a Redis store, is waited for and read back
            assert self.cache is not None
            key = outcome.metadata["key"]
            lease = await FLIGHTS.alead(flight_key(self.cache, key), dep.timeout or
                                        self.config.upstream_timeout,
                                        redis_lock(self.cache, key))
            if lease is None:
                outcome = await self.cache.abegin(CALL_TYPES[endpoint], **kwargs)
        if outcome is not None and outcome.hit:
            hit = self._hit(endpoint, model, ns, body, outcome, stream, t0)
            if hit is not None:
                return hit
        stage = "miss" if outcome is not None and outcome.reads else "skipped"
        meta = outcome.metadata if outcome is not None else None
        headers = semcache_headers(meta, stage, nearest=who.may("similarity_threshold"))
        upstream = {**body, "model": dep.model}
        if stream:
            return await self._stream_miss(endpoint, dep, upstream, outcome, headers,
                                           model, ns, stage, t0)
        try:
            return await self._forward(endpoint, dep, upstream, files, outcome, headers,
                                       model, ns, stage, t0)
        finally:
            if lease is not None:  # stored (or not storable): the waiters look up now
                lease.release()

    # ------------------------------------------------------------------ hits
    def _hit(self, endpoint: str, model: str, ns: str, body: dict[str, Any],
             outcome: Pending, stream: bool, t0: float) -> Response | None:
        """The reply serving a hit, or None when the stored value is not an answer of
        this endpoint (another writer stored it: a list, an error object, ``choices:
        [1]``, nesting deeper than the encoder takes): then a logged miss, not a 500."""
        assert outcome.hit
        meta = outcome.metadata
        value = outcome.value
        try:
            content, media_type = encode_hit(endpoint, value, stream, body)
        except (SemcacheError, orjson.JSONEncodeError, TypeError, ValueError) as exc:
            log.warning("stored value for %s is not a %s answer (%s); asking upstream",
                        meta.get("key"), endpoint, exc)
            return None
        headers = semcache_headers(meta, meta["stage"])
        prompt = _query_text(body)
        self.stats.record(endpoint=endpoint, model=model, namespace=ns, stage=meta["stage"],
                          seconds=time.perf_counter() - t0, meta=meta, value=value,
                          prompt=prompt)
        if isinstance(content, list):
            return StreamingResponse(chunks(content), headers=headers,
                                     media_type="text/event-stream")
        return Response(content, 200, headers=headers, media_type=media_type)

    # ------------------------------------------------------------------ misses
    def _upstream_request(self, endpoint: str, dep: Deployment) -> tuple[str, dict[str, str]]:
        headers = {}
        if dep.api_key:
            headers["authorization"] = f"Bearer {dep.api_key}"
        return f"{dep.api_base}/{endpoint}", headers

    def _timeout(self, dep: Deployment) -> Any:
        return httpx.USE_CLIENT_DEFAULT if dep.timeout is None else dep.timeout

    async def _forward(self, endpoint: str, dep: Deployment, body: dict[str, Any],
                       files: Any, outcome: Pending | None, headers: dict[str, str],
                       model: str, ns: str, stage: str, t0: float) -> Response:
        http = self._client()
        url, up_headers = self._upstream_request(endpoint, dep)
        try:
            if files is not None:  # form fields: str, or lists for repeated fields
                r = await http.post(url, data=body, files=files, headers=up_headers,
                                    timeout=self._timeout(dep))
            else:
                up_headers["content-type"] = "application/json"
                r = await http.post(url, content=_encode(body), headers=up_headers,
                                    timeout=self._timeout(dep))
        except httpx.HTTPError as exc:
            return self._upstream_failed(exc, endpoint, model, ns, headers, t0)
        self.stats.upstream(r.status_code)
        ctype = r.headers.get("content-type", "application/json")
        if outcome is not None and outcome.writes:
            value = storable(endpoint, r.status_code, ctype, r.content)
            if value is not None:
                await self._store(outcome, value)
        self.stats.record(endpoint=endpoint, model=model, namespace=ns,
                          stage=stage if r.status_code < 400 else "error",
                          seconds=time.perf_counter() - t0,
                          meta=outcome.metadata if outcome else None,
                          errors=outcome.errors if outcome else None)
        return Response(r.content, r.status_code, headers=headers, media_type=ctype)

    def _upstream_failed(self, exc: Exception, endpoint: str, model: str, ns: str,
                         headers: dict[str, str], t0: float) -> Response:
        self.stats.upstream(0)
        self.stats.record(endpoint=endpoint, model=model, namespace=ns, stage="error",
                          seconds=time.perf_counter() - t0, meta=None)
        status = 504 if isinstance(exc, httpx.TimeoutException) else 502
        return Reply(status, f"upstream request failed: {type(exc).__name__}: {exc}",
                      "api_error", "upstream_unavailable").response(headers)

    async def _store(self, outcome: Pending, value: Any) -> None:
        """Store a fresh answer; the client has its answer whatever happens here."""
        assert self.cache is not None
        try:
            await outcome.astore(value)
        except SemcacheError as exc:  # e.g. larger than max_value_bytes: not cacheable
            outcome.errors.append(f"store: {type(exc).__name__}: {exc}")
            log.warning("semcache proxy: answer not stored: %s", exc)

    async def _stream_miss(self, endpoint: str, dep: Deployment, body: dict[str, Any],
                           outcome: Pending | None, headers: dict[str, str], model: str,
                           ns: str, stage: str, t0: float) -> Response:
        http = self._client()
        url, up_headers = self._upstream_request(endpoint, dep)
        up_headers["content-type"] = "application/json"
        req = http.build_request("POST", url, content=_encode(body), headers=up_headers,
                                 timeout=self._timeout(dep))
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
        lookup_errors = len(outcome.errors) if outcome else 0
        self.stats.record(endpoint=endpoint, model=model, namespace=ns, stage=stage,
                          seconds=time.perf_counter() - t0,
                          meta=outcome.metadata if outcome else None)
        assembler: Any = ResponsesAssembler() if endpoint == "responses" else \
            Assembler(endpoint, choices_of("chat" if endpoint == "chat/completions"
                                           else "text", body))

        stored = False

        async def store() -> None:
            nonlocal stored
            value = assembler.result()
            if not stored and value is not None and outcome is not None \
                    and self.cache is not None:
                stored = True
                await self._store(outcome, value)  # complete: store it once
                self.stats.backend_failed(outcome.errors[lookup_errors:])

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for piece in r.aiter_raw():
                    assembler.feed(piece)
                    if b"[DONE]" in piece:
                        # store before the client sees the end of the stream, so a
                        # client that asks again right after reading it gets a hit
                        await store()
                    yield piece  # as it arrives: the client sees the upstream's pacing
            except httpx.HTTPError as exc:
                # the upstream broke off mid-stream: nothing is stored (no [DONE]); the
                # client gets an error event its SDK raises, the operator one log line
                self.stats.upstream_error(0)
                log.warning("semcache proxy: upstream stream for %s broke off: %s: %s",
                            model, type(exc).__name__, exc)
                yield b"data: " + orjson.dumps({"error": {
                    "message": f"upstream stream broke off: {type(exc).__name__}",
                    "type": "api_error", "param": None, "code": "upstream_unavailable"}}) \
                    + b"\n\n"
                return
            finally:
                await r.aclose()
            await store()

        return StreamingResponse(relay(), headers=headers, media_type=ctype)

    # ------------------------------------------------------------------ models, health
    async def models(self, request: Request) -> Response:
        try:
            self.principal(request)
        except Reply as reply:
            return reply.response()
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "semcache-proxy"}
                for name in self.config.deployments]
        return json_response({"object": "list", "data": data})

    async def health(self, request: Request) -> Response:
        return json_response({"status": "ok"})

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


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (unknown path, wrong method) as OpenAI-style JSON too."""
    assert isinstance(exc, HTTPException)
    return Reply(exc.status_code, str(exc.detail)).response(exc.headers)


def _encode(body: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as exc:  # nested deeper than orjson writes (254 levels)
        raise Reply(400, f"request body cannot be forwarded: {exc}") from None


# ---------------------------------------------------------------------- factories
def create_app(config: ProxyConfig | str | os.PathLike[str], *,
               cache: Cache | None = None) -> Starlette:
    """The ASGI app for a config (a ``ProxyConfig`` or a YAML path); ``cache`` overrides
    the one the config describes (tests pass a cache with failing backends)."""
    if not isinstance(config, ProxyConfig):
        config = load_config(config)
    state = ProxyApp(config, cache)
    routes = state.routes()
    # the model endpoints (POST, exact paths) are dispatched without the router: asgi.py
    fast = {r.path: r.endpoint for r in routes
            if isinstance(r, Route) and r.methods == {"POST"}
            and r.path.removeprefix("/v1").lstrip("/") in CALL_TYPES}
    app = ProxyStarlette(routes=routes, lifespan=state.lifespan,
                         exception_handlers={HTTPException: _http_error}, fast=fast)
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
