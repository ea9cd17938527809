"""The proxy's direct dispatch of its model endpoints (semcache/proxy/asgi.py).

The model endpoints skip Starlette's router and middleware; these tests pin what that
must not change: the same answers on both path forms and under a root path, the other
routes and methods still routed by Starlette, and a handler's unexpected exception
answered as a logged JSON 500 instead of escaping to the server."""

from __future__ import annotations

import logging

import httpx
import pytest

from semcache.proxy.app import ProxyApp, create_app
from semcache.proxy.config import parse_config
from tests.proxy_helpers import MASTER, config_dict

AUTH = {"Authorization": f"Bearer {MASTER}"}
UPSTREAM = "http://127.0.0.1:9/v1"
BODY = {"model": "solo", "messages": [{"role": "user", "content": "hello asgi"}]}


@pytest.fixture
def app():
    # upstream on a closed port: every test here answers from the cache or before it
    return create_app(parse_config(config_dict(UPSTREAM)))


async def _client(app, root_path: str = "") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://proxy" + root_path)


def _router_refuses(app) -> None:
    """Starlette's stack answers nothing from here on: what still answers was dispatched
    directly (``None`` restores it: Starlette rebuilds its stack on the next request)."""
    async def refuse(scope, receive, send):
        raise AssertionError(f"routed through Starlette: {scope['path']}")
    app.middleware_stack = refuse


def _store(app, content: str) -> None:
    proxy = app.state.proxy
    proxy.cache.add_cache(
        {"id": "x", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                      "finish_reason": "stop"}]},
        model="solo", messages=BODY["messages"], cache={"namespace": proxy.default_ns},
        api_base=UPSTREAM)  # the proxy keys the model's upstream, as the library does


async def test_model_endpoints_are_dispatched_directly_and_answer_as_routed(app):
    # the table the dispatcher uses: both path forms of every model endpoint, POST only
    assert set(app._fast) == {p for e in ("chat/completions", "completions", "embeddings",
                                          "audio/transcriptions", "responses")
                              for p in (f"/v1/{e}", f"/{e}")}
    _store(app, "stored answer")
    async with app.router.lifespan_context(app):
        async with await _client(app) as c:
            _router_refuses(app)
            for path in ("/v1/chat/completions", "/chat/completions"):
                r = await c.post(path, json=BODY, headers=AUTH)
                assert r.status_code == 200, r.text
                assert r.headers["x-semcache-stage"] == "exact"
                assert r.json()["choices"][0]["message"]["content"] == "stored answer"
            # auth is the handler's, not a router's: still enforced on the direct path
            r = await c.post("/v1/chat/completions", json=BODY)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
            # other methods and paths still go through Starlette
            app.middleware_stack = None
            assert (await c.get("/v1/chat/completions", headers=AUTH)).status_code == 405
            assert (await c.post("/v1/chat/completions/x", headers=AUTH)).status_code == 404
            assert (await c.get("/health")).status_code == 200


async def test_a_root_path_is_stripped_before_dispatch(app):
    _store(app, "under a prefix")
    async with app.router.lifespan_context(app):
        async with await _client(app, root_path="/llm") as c:
            _router_refuses(app)
            r = await c.post("/v1/chat/completions", json=BODY, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "under a prefix"


async def test_an_unexpected_exception_is_a_logged_json_500(app, monkeypatch, caplog):
    async def broken(self, endpoint, request):
        raise RuntimeError("a bug in a handler")

    monkeypatch.setattr(ProxyApp, "answer", broken)
    async with app.router.lifespan_context(app):
        async with await _client(app) as c:
            with caplog.at_level(logging.ERROR, logger="semcache.proxy"):
                r = await c.post("/v1/chat/completions", json=BODY, headers=AUTH)
            # the server is still answering after it
            assert (await c.get("/health")).status_code == 200
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["type"] == "server_error"
    assert "a bug in a handler" not in r.text  # internals stay in the log
    assert any("a bug in a handler" in (rec.exc_text or str(rec.exc_info))
               for rec in caplog.records)
