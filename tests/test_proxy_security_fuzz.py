"""Fuzz the proxy (issue #18): thousands of generated requests, not one 5xx.

Hypothesis draws bodies (well-formed requests with hostile fields, arbitrary JSON, raw
bytes, deep nesting), headers (keys, ``Cache-Control``) and multipart parts, and sends
them to the real app in process (starlette's TestClient, which re-raises any exception
the app lets escape), with a small well-behaved upstream on loopback, so well-formed
requests are answered, stored and served again. Every reply must be below 500 and, when
the proxy refuses a request, an OpenAI-style JSON error; ``/health`` must still answer.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from semcache.proxy.app import create_app
from semcache.proxy.config import parse_config
from semcache_testing.proxy_server import ProxyServer

from .proxy_helpers import KEY_A, KEY_B, MASTER, config_dict

GRANTED = "sk-fuzz-granted"
FUZZ = settings(max_examples=700, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])


def _answer(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    if kind == "embeddings":
        return {"object": "list", "data": [{"object": "embedding", "index": 0,
                                            "embedding": [0.6, 0.8]}]}
    if kind == "responses":
        return {"id": "resp_1", "object": "response", "created_at": 0, "model": "m",
                "status": "completed", "error": None, "output": [
                    {"type": "message", "id": "msg_1", "status": "completed",
                     "role": "assistant", "content": [
                         {"type": "output_text", "text": "ok", "annotations": []}]}]}
    if kind == "completions":
        return {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}]}
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "ok"}}]}


def upstream_app() -> Starlette:
    """A well-behaved upstream: an answer for a JSON object, a 400 for anything else,
    never a dropped connection (FakeOpenAI's handlers assume well-typed fields, and a
    crash there would be a 502 the proxy rightly reports, not a proxy fault)."""

    def route(kind: str):
        async def handle(request: Request) -> Response:
            if kind == "audio/transcriptions":
                form = await request.form()
                await form.close()
                return JSONResponse({"text": "transcript"})
            try:
                body = json.loads(await request.body())
                assert isinstance(body, dict)
            except (ValueError, AssertionError):
                return JSONResponse({"error": {"message": "bad body"}}, status_code=400)
            if body.get("stream") is True and kind != "embeddings":
                chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0,
                         "model": "m", "choices": [{"index": 0, "delta": {"content": "ok"},
                                                    "finish_reason": "stop"}]}
                sse = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
                return Response(sse, media_type="text/event-stream")
            return JSONResponse(_answer(kind, body))
        return handle

    kinds = ("chat/completions", "completions", "embeddings", "audio/transcriptions",
             "responses")
    return Starlette(routes=[Route(f"/v1/{k}", route(k), methods=["POST"]) for k in kinds])


@pytest.fixture(scope="module")
def client():
    with ProxyServer(upstream_app()) as upstream:
        cfg = config_dict(upstream.base_url)
        own = cfg["semcache_settings"]
        own["keys"] = [*own["keys"], {"key": GRANTED, "namespace": "team-a",
                                      "allowed_cache_controls": ["cache_key", "namespace",
                                                                 "similarity_threshold",
                                                                 "caching_group", "ttl"]}]
        own.update(max_body_bytes=200_000, max_prompt_chars=20_000)
        cfg["litellm_settings"]["cache_params"]["ttl"] = 3600
        with TestClient(create_app(parse_config(cfg))) as c:
            yield c
            assert c.get("/health").json() == {"status": "ok"}


def check(r: Any) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/json"), r.text[:200]
        err = r.json()["error"]
        assert isinstance(err, dict) and err.get("message"), r.text[:200]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) |
    st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12)
CONTROL_NAMES = ["ttl", "s-maxage", "s_maxage", "no-cache", "no-store", "namespace",
                 "use-cache", "similarity_threshold", "target_error_rate", "bogus"]
controls = st.dictionaries(st.sampled_from(CONTROL_NAMES),
                           st.sampled_from([True, False, None, 0, 1, 60, 1e20, -1, 0.5,
                                            "team-a", "team-b", "default", "x", 1e308]) |
                           json_values, max_size=3)
messages = st.lists(st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool", 7]),
     "content": st.text(max_size=40) | st.lists(st.fixed_dictionaries(
         {"type": st.sampled_from(["text", "image_url"]), "text": st.text(max_size=20)}),
         max_size=2) | json_values}), min_size=0, max_size=3) | json_values
FIELDS = {
    "model": st.sampled_from(["chat", "chat-eu", "solo", "limited", "embed", "instruct",
                              "whisper", "nope"]) | json_values,
    "messages": messages,
    "prompt": st.text(max_size=40) | json_values,
    "input": st.text(max_size=40) | st.lists(st.text(max_size=10), max_size=3) |
    messages | json_values,  # message items: the Responses API's input
    "instructions": st.text(max_size=20) | json_values,
    "previous_response_id": st.text(max_size=20) | json_values,
    "stream": st.booleans() | json_values,
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}) | json_values,
    "cache": controls | json_values,
    "caching": st.booleans() | json_values,
    "cache_key": st.text(max_size=80) | st.sampled_from(["faq-1", "a" * 64]) | json_values,
    "caching_group": st.text(max_size=20) | json_values,
    "temperature": st.floats(allow_nan=False) | json_values,
    "n": st.integers(-2, 3) | json_values,
    "seed": st.integers(),
    "mock_response": st.text(max_size=10),
    "metadata": json_values,
    "tools": json_values,
    "user": json_values,
}
bodies = st.fixed_dictionaries({}, optional=FIELDS).flatmap(
    lambda d: st.dictionaries(st.text(max_size=8), json_values, max_size=2).map(
        lambda extra: {**extra, **d}))
keys = st.sampled_from([MASTER, KEY_A, KEY_B, GRANTED, "sk-wrong", None])
header_bytes = st.binary(max_size=60).map(
    lambda b: bytes(c for c in b if c == 9 or 32 <= c < 127 or c >= 128))
cache_control = st.none() | st.sampled_from(
    ["no-cache", "no-store", "max-age=0", "max-age=60", "s-maxage=5, no-store",
     "max-age=" + "9" * 300, "max-age=²", "max-age=-1", "max-age"]) | header_bytes
paths = st.sampled_from(["/v1/chat/completions", "/v1/completions", "/v1/embeddings",
                         "/chat/completions", "/v1/responses", "/responses"])


def headers_for(key: str | None, cc: Any) -> dict[str, Any]:
    h: dict[str, Any] = {"content-type": "application/json"}
    if key is not None:
        h["authorization"] = f"Bearer {key}"
    if cc is not None:
        h["cache-control"] = cc.encode() if isinstance(cc, str) else cc
    return h


@FUZZ
@given(path=paths, body=bodies, key=keys, cc=cache_control)
def test_generated_json_requests_never_get_a_5xx(client, path, body, key, cc):
    check(client.post(path, content=json.dumps(body), headers=headers_for(key, cc)))


def nested(depth: int, kind: str) -> str:
    inner = "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + "1" + \
        "}" * depth
    return '{"model": "chat", "messages": [{"role": "user", "content": "hi"}], "x": ' + \
        inner + "}"


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=paths, raw=st.binary(max_size=200) | st.builds(
    nested, st.integers(1, 1100), st.sampled_from(["list", "dict"])).map(str.encode),
       key=keys)
def test_raw_and_deeply_nested_bodies_never_get_a_5xx(client, path, raw, key):
    check(client.post(path, content=raw, headers=headers_for(key, None)))


parts = st.lists(st.tuples(
    st.sampled_from(["file", "audio", "model", "response_format", "cache", "caching",
                     "stream", "language", "x"]),
    st.one_of(st.text(max_size=20), st.sampled_from(['{"ttl": 5}', "whisper", "text", "true",
                                                     "json", "{", "[]"]),
              st.tuples(st.text(max_size=10), st.binary(max_size=40)))),
    max_size=5)


@FUZZ
@given(fields=parts, key=keys)
def test_generated_multipart_requests_never_get_a_5xx(client, fields, key):
    data: dict[str, Any] = {}
    files: list[Any] = []
    for name, value in fields:
        if isinstance(value, tuple):
            files.append((name, (value[0] or "a.wav", value[1], "audio/wav")))
        else:
            data.setdefault(name, []).append(value)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    r = client.post("/v1/audio/transcriptions", data=data, files=files or None,
                    headers=headers)
    check(r)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/cache/delete", "/cache/ttl", "/cache/flush"]),
       body=st.fixed_dictionaries({}, optional={
           "keys": st.lists(st.sampled_from(["team-a:x", "default:y", "nope:z"]) |
                            json_values, max_size=3) | json_values,
           "key": json_values | st.just("team-a:k"),
           "ttl": st.sampled_from([None, 1, 1e20, -5, 0, "x"]) | json_values,
           "namespace": st.sampled_from(["team-a", "nope"]) | json_values}),
       key=keys)
def test_generated_management_requests_never_get_a_5xx(client, path, body, key):
    headers = {"authorization": f"Bearer {key}"} if key else {}
    check(client.post(path, content=json.dumps(body), headers=headers))
