"""The proxy treats every client as untrusted (issue #18): one test per attack.

A master key, client keys A and A2 on one namespace (A2 stands for "the other client
of team A", the victim), B on another, and GRANTED on team A's namespace with
``allowed_cache_controls``. Upstreams: FakeOpenAI, and ``LiteLLMLike``, a small real
server on loopback that behaves as LiteLLM-style upstreams do: it answers
``mock_response`` verbatim, and some of its models answer what is not an answer (an
HTML page, a 200 whose JSON is an error, a 202).
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections import Counter
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from semcache import Cache
from semcache._keys import exact_key
from semcache.embedders.batching import BatchingEmbedder
from semcache.proxy.replies import semcache_headers
from semcache_testing.fake_openai import FakeOpenAI
from semcache_testing.proxy_server import ProxyServer

from .proxy_helpers import KEY_A, KEY_A2, MASTER, Proxies, ask, config_dict, openai_client, stats

GRANTED = "sk-team-a-granted"


class LiteLLMLike:
    """An upstream that honours ``mock_response`` and, by model, answers non-answers."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])
        self.server = ProxyServer(app)

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.bodies.append(body)
        model = body["model"]
        self.calls[model] += 1
        text = body.get("mock_response") or f"genuine answer {self.calls[model]}"
        answer = {"id": "x", "object": "chat.completion", "created": 0, "model": model,
                  "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": text}}]}
        if model == "html":
            return HTMLResponse("<html><body>upstream busy</body></html>")
        if model == "error200":
            return JSONResponse({"error": {"message": "overloaded", "type": "server_error"}})
        if model == "accepted":
            return JSONResponse(answer, status_code=202)
        if model == "nofinish":
            answer["choices"][0]["finish_reason"] = None
        return JSONResponse(answer)


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI(numbered=True) as f:
        yield f


@pytest.fixture(scope="module")
def lite():
    up = LiteLLMLike()
    up.server.start()
    yield up
    up.server.stop()


@pytest.fixture
def proxies(fake, lite):
    fake.reset()
    lite.calls.clear()
    lite.bodies.clear()
    p = Proxies(fake.base_url)
    yield p
    p.stop()


def start(proxies: Proxies, lite: LiteLLMLike, cache: Any = None, cache_ttl: float = 3600,
          **settings: Any):
    """A proxy on the test config plus LiteLLMLike's models and the GRANTED key."""
    cfg = config_dict(proxies.upstream)
    models = cfg["model_list"] + [
        {"model_name": name, "litellm_params": {"model": name,
                                                "api_base": lite.server.base_url}}
        for name in ("lite", "html", "error200", "accepted", "nofinish")]
    own = {**cfg["semcache_settings"], **settings}
    own["keys"] = [*own["keys"], {"key": GRANTED, "namespace": "team-a",
                                  "allowed_cache_controls": ["cache_key",
                                                             "similarity_threshold"]}]
    params = {"type": "local", "ttl": cache_ttl}
    return proxies.start(cache=cache, model_list=models, semcache_settings=own,
                         litellm_settings={"cache": True, "cache_params": params})


def post(proxy, key: str | None, body: Any, path: str = "/v1/chat/completions",
         **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers.update(kw.pop("headers", {}))
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    return httpx.post(proxy.url + path, content=body,
                      headers={"content-type": "application/json", **headers},
                      timeout=30, **kw)


def content(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"]


def refused(r: httpx.Response, status: int, param: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"]
    if param is not None:
        assert err["param"] == param
    return err


# ---------------------------------------------------------------------- 1. cache_key
def test_a_client_cannot_plant_an_answer_under_another_requests_key(proxies, lite):
    proxy = start(proxies, lite)
    q = ask("What is our refund policy?")
    # the key of the victim's ordinary request, computed offline from the key function
    # (the proxy keys the model's upstream, as the library does: _keys.ENDPOINT_PARAMS)
    digest = exact_key("team-a", "completion", {"model": "lite", "messages": q,
                                                "api_base": lite.server.base_url}
                       ).split(":")[1]
    planted = {"model": "lite", "messages": q, "mock_response": "PLANTED",
               "cache_key": digest}
    refused(post(proxy, KEY_A, planted), 403, "cache_key")
    # a key granted cache_key still cannot name a computed key's form, bare or with the
    # namespace get_cache_key puts in front (which names the entry itself)
    refused(post(proxy, GRANTED, planted), 400, "cache_key")
    refused(post(proxy, GRANTED, {**planted, "cache_key": f"team-a:{digest}"}), 400,
            "cache_key")
    victim = post(proxy, KEY_A2, {"model": "lite", "messages": q})
    assert victim.headers["x-semcache-key"] == f"team-a:{digest}"
    assert content(victim) == "genuine answer 1"
    assert lite.calls["lite"] == 1  # the refused requests never reached the upstream
    # a granted key's own key works, in its namespace
    r = post(proxy, GRANTED, {"model": "lite", "messages": ask("faq"), "cache_key": "faq-1"})
    assert r.headers["x-semcache-key"] == "team-a:faq-1" and content(r)


@pytest.mark.parametrize("key", ["__semcache_policy_state__", "team-a:__semcache_ping__",
                                 "faq-1:__semcache_flight__"])
def test_a_cache_key_cannot_name_semcaches_own_keys(proxies, lite, key):
    # the learned policy's state, the health probe and single-flight locks live in the
    # namespace too: a granted key must not read, overwrite or plant them
    proxy = start(proxies, lite)
    r = post(proxy, GRANTED, {"model": "lite", "messages": ask("hi"), "cache_key": key})
    refused(r, 400, "cache_key")
    assert "__semcache_" in r.json()["error"]["message"]
    assert lite.calls["lite"] == 0


# ---------------------------------------------------------------------- 2. caching_group
def test_caching_group_in_the_body_cannot_read_another_models_entries(proxies, fake, lite):
    proxy = start(proxies, lite)
    q = ask("grouped question")
    first = content(post(proxy, KEY_A, {"model": "chat", "messages": q}))
    cross = {"model": "solo", "messages": q, "caching_group": 'group:["chat","chat-eu"]'}
    refused(post(proxy, KEY_A, cross), 403, "caching_group")
    r = post(proxy, KEY_A2, {"model": "solo", "messages": q})
    assert r.headers["x-semcache-stage"] == "miss" and content(r) != first
    # the master key may (LiteLLM's caching_group), and it never reaches the upstream
    r = post(proxy, MASTER, {**cross, "cache": {"namespace": "team-a"}})
    assert r.headers["x-semcache-stage"] == "exact" and content(r) == first
    assert all("caching_group" not in req["body"] for req in fake.requests)


# ---------------------------------------------------------------------- 3. unkeyed fields
@pytest.mark.parametrize("field,value", [
    ("mock_response", "PLANTED"), ("metadata", {"x": 1}), ("extra_headers", {"x": "1"}),
    ("api_base", "http://169.254.169.254/"), ("timeout", 1), ("user_api_key", "sk-x")])
def test_fields_left_out_of_the_key_never_reach_the_upstream(proxies, lite, field, value):
    proxy = start(proxies, lite)
    q = ask(f"question about {field}")
    attack = post(proxy, KEY_A, {"model": "lite", "messages": q, field: value})
    assert content(attack) == "genuine answer 1"
    assert field not in lite.bodies[-1]
    victim = post(proxy, KEY_A2, {"model": "lite", "messages": q})
    assert victim.headers["x-semcache-stage"] == "exact"
    assert content(victim) == "genuine answer 1"
    # stream and stream_options are forwarded: they shape delivery, not the answer
    post(proxy, KEY_A, {"model": "lite", "messages": ask("other"),
                        "stream_options": {"include_usage": True}})
    assert lite.bodies[-1]["stream_options"] == {"include_usage": True}


# ---------------------------------------------------------------------- 4. headers
@pytest.mark.parametrize("key", ["evil\r\nset-cookie: x=1", "ключ", "a b", "x" * 300])
def test_a_cache_key_that_cannot_be_a_header_is_refused(proxies, lite, key):
    proxy = start(proxies, lite)
    r = post(proxy, GRANTED, {"model": "lite", "messages": ask("hi"), "cache_key": key})
    refused(r, 400, "cache_key")
    assert httpx.get(proxy.url + "/health").status_code == 200


def test_no_stored_value_can_break_a_later_response(proxies, lite, minilm):
    cache = Cache(type="faiss-semantic", embedder=BatchingEmbedder(minilm),
                  similarity_threshold=0.8, namespace="team-a")
    # what an older release (or a library user) stored: a key no header can carry
    question = "What is the capital city of France?"
    answer = {"id": "x", "object": "chat.completion", "created": 0, "model": "lite",
              "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "Paris"}}]}
    cache.add_cache(answer, call_type="completion", model="lite", messages=ask(question),
                    api_base=lite.server.base_url, cache_key="evil\r\nset-cookie: ü→x")
    proxy = start(proxies, lite, cache=cache)
    r = post(proxy, KEY_A, {"model": "lite",
                            "messages": ask("What's the capital city of France?")})
    assert content(r) == "Paris" and r.headers["x-semcache-stage"] == "semantic"
    assert urllib.parse.unquote(r.headers["x-semcache-key"]) == \
        "team-a:evil\r\nset-cookie: ü→x"
    assert "set-cookie" not in r.headers
    assert urllib.parse.unquote(r.headers["x-semcache-matched-prompt"]) == question


def test_header_values_are_always_printable_ascii():
    meta = {"key": "ns:\r\n\x00ü€", "matched_prompt": "a\r\nb€", "similarity": 0.9,
            "age_s": 3}
    for value in semcache_headers(meta, "semantic").values():
        assert value.isascii() and value.isprintable()
    assert semcache_headers({"key": "ns:" + "a" * 64}, "miss")["x-semcache-key"] == \
        "ns:" + "a" * 64  # an ordinary key is unchanged


# ---------------------------------------------------------------------- 5. limits
def test_body_and_prompt_limits_are_413_before_any_work(proxies, lite):
    proxy = start(proxies, lite, max_body_bytes=50_000, max_prompt_chars=10_000)
    r = post(proxy, KEY_A, {"model": "lite", "messages": ask("x" * 10_001)})
    assert "max_prompt_chars" in refused(r, 413)["message"]
    r = post(proxy, KEY_A, {"model": "lite", "messages": ask("y" * 60_000)})
    assert "max_body_bytes" in refused(r, 413)["message"]

    def chunks():  # no Content-Length: refused as it arrives
        for _ in range(10):
            yield b" " * 10_000
    r = httpx.post(proxy.url + "/v1/chat/completions", content=chunks(),
                   headers={"Authorization": f"Bearer {KEY_A}"}, timeout=30)
    refused(r, 413)
    r = post(proxy, KEY_A, {"model": "embed", "input": ["z" * 6000, "z" * 6000]},
             path="/v1/embeddings")
    refused(r, 413)
    assert lite.calls.total() == 0
    assert content(post(proxy, KEY_A, {"model": "lite", "messages": ask("x" * 9_000)}))
    # the management API reads its body under the same limit, master key or not
    r = post(proxy, MASTER, {"keys": ["k" * 60_000]}, path="/cache/delete")
    assert "max_body_bytes" in refused(r, 413)["message"]
    assert refused(post(proxy, MASTER, "[1, 2]", path="/cache/delete"), 400)


# ---------------------------------------------------------------------- 6. 500s
def nested(depth: int) -> str:
    return '{"model": "lite", "messages": [{"role": "user", "content": "hi"}], "x": ' + \
        "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("depth", [300, 1000, 2000])
def test_deeply_nested_json_is_a_400(proxies, lite, depth):
    proxy = start(proxies, lite)
    refused(post(proxy, KEY_A, nested(depth)), 400)


@pytest.mark.parametrize("value", ["9" * 400, "²", "١٢", "-1", "1e3", ""])
def test_a_bad_cache_control_max_age_is_a_400(proxies, lite, value):
    proxy = start(proxies, lite)
    r = post(proxy, KEY_A, {"model": "lite", "messages": ask("cc")},
             headers={"Cache-Control": f"max-age={value}".encode()})
    refused(r, 400, "Cache-Control")


def test_stream_and_stream_options_must_have_their_types(proxies, fake, lite):
    proxy = start(proxies, lite)
    body = {"model": "chat", "messages": ask("typed")}
    content(post(proxy, KEY_A, body))  # stored: the next ones would be hits
    refused(post(proxy, KEY_A, {**body, "stream": True, "stream_options": "yes"}), 400,
            "stream_options")
    refused(post(proxy, KEY_A, {**body, "stream": "false"}), 400, "stream")
    r = post(proxy, KEY_A, {**body, "stream": False})
    assert r.headers["x-semcache-stage"] == "exact"
    assert fake.calls["chat/completions"] == 1


def test_a_transcription_with_an_extra_or_misnamed_file_part_is_a_400(proxies, fake, lite):
    proxy = start(proxies, lite)
    auth = {"Authorization": f"Bearer {KEY_A}"}
    url = proxy.url + "/v1/audio/transcriptions"
    two = [("file", ("a.wav", b"RIFF1", "audio/wav")), ("extra", ("b.wav", b"RIFF2", "audio/wav"))]
    refused(httpx.post(url, data={"model": "whisper"}, files=two, headers=auth), 400)
    misnamed = [("audio", ("a.wav", b"RIFF1", "audio/wav"))]
    refused(httpx.post(url, data={"model": "whisper"}, files=misnamed, headers=auth), 400)
    r = httpx.post(url, data={"model": "whisper", "stream": "yes"},
                   files=[("file", ("a.wav", b"RIFF1", "audio/wav"))], headers=auth)
    refused(r, 400)
    assert fake.calls["audio/transcriptions"] == 0
    ok = httpx.post(url, data={"model": "whisper"},
                    files=[("file", ("a.wav", b"RIFF1", "audio/wav"))], headers=auth)
    assert ok.status_code == 200 and ok.json()["text"].startswith("transcript ")


# ---------------------------------------------------------------------- 7. non-answers
@pytest.mark.parametrize("model", ["html", "error200", "accepted", "nofinish"])
def test_what_is_not_an_answer_is_never_stored(proxies, lite, model):
    proxy = start(proxies, lite)
    body = {"model": model, "messages": ask("are you there?")}
    for i in (1, 2):
        r = post(proxy, KEY_A, body)
        assert r.status_code in (200, 202)  # the client gets what the upstream said
        assert r.headers["x-semcache-stage"] == "miss"
        assert lite.calls[model] == i
    # and a streaming client is never replayed an empty stream
    r = post(proxy, KEY_A2, {**body, "stream": True})
    assert r.headers["x-semcache-stage"] == "miss" and lite.calls[model] == 3


# ---------------------------------------------------------------------- 8. ttl
@pytest.mark.parametrize("key,ttl,status", [
    (MASTER, 1e20, 400), (MASTER, 1e300, 400), (KEY_A, 1e20, 400),
    (KEY_A, 7200, 403), (KEY_A, None, 403)])
def test_a_ttl_no_backend_can_store_is_refused(proxies, lite, key, ttl, status):
    proxy = start(proxies, lite)
    r = post(proxy, key, {"model": "lite", "messages": ask("ttl"), "cache": {"ttl": ttl}})
    refused(r, status, "cache.ttl")
    assert lite.calls["lite"] == 0
    r = post(proxy, key, {"model": "lite", "messages": ask("ttl"), "cache": {"ttl": 60}})
    assert content(r)  # a shorter ttl is anyone's to ask for
    assert stats(proxy)["backend_errors"] == {}


def test_a_cache_ttl_of_zero_is_not_read_as_no_limit(proxies, lite):
    """ttl 0 expires an answer at once; a client may not turn that into a day's cache
    that its namespace is then served from (``cache_ttl or inf`` had read 0 as none)."""
    proxy = start(proxies, lite, cache_ttl=0)
    body = {"model": "lite", "messages": ask("ttl zero")}
    for ttl in (86_400, 1, None):
        refused(post(proxy, KEY_A, {**body, "cache": {"ttl": ttl}}), 403, "cache.ttl")
    assert lite.calls["lite"] == 0
    for _ in range(2):  # 0 itself is allowed, and nothing is kept
        r = post(proxy, KEY_A, {**body, "cache": {"ttl": 0}})
        assert content(r) and r.headers["x-semcache-stage"] == "miss"
    r = post(proxy, KEY_A, body)
    assert content(r) and r.headers["x-semcache-stage"] == "miss"
    assert lite.calls["lite"] == 3
    r = post(proxy, MASTER, {**body, "cache": {"ttl": 60}})  # the operator may
    assert content(r)


# ---------------------------------------------------------------------- 9. threshold
def test_a_client_cannot_enumerate_its_namespace(proxies, lite, minilm):
    cache = Cache(type="faiss-semantic", embedder=BatchingEmbedder(minilm),
                  similarity_threshold=0.9)
    proxy = start(proxies, lite, cache=cache)
    secret = content(post(proxy, KEY_A2, {"model": "lite",
                                          "messages": ask("my salary is 91k, is that fair?")}))
    probe = {"model": "lite", "messages": ask("tell me anything")}
    refused(post(proxy, KEY_A, {**probe, "cache": {"similarity_threshold": 0}}), 403,
            "similarity_threshold")
    refused(post(proxy, KEY_A, {**probe, "cache": {"target_error_rate": 0.5}}), 403,
            "target_error_rate")
    miss = post(proxy, KEY_A, probe)
    assert content(miss) != secret and miss.headers["x-semcache-stage"] == "miss"
    # no similarity oracle on a miss for a key that may not tune the threshold
    assert miss.headers["x-semcache-similarity"] == ""
    # a key granted the threshold may (and sees the nearest candidate's similarity)
    r = post(proxy, GRANTED, {"model": "lite", "messages": ask("something else entirely"),
                              "cache": {"similarity_threshold": 0.99}})
    assert r.headers["x-semcache-stage"] == "miss" and r.headers["x-semcache-similarity"]


@pytest.mark.parametrize("path,body", [
    ("/v1/chat/completions", {"model": "lite", "messages": ask("bad control")}),
    ("/v1/embeddings", {"model": "embed", "input": ["bad control"]}),
])
@pytest.mark.parametrize("key,controls,name", [
    (MASTER, {"target_error_rate": "0.05"}, "target_error_rate"),
    (MASTER, {"target_error_rate": 1}, "target_error_rate"),
    (MASTER, {"similarity_threshold": True}, "similarity_threshold"),
    (MASTER, {"verifier": None}, "verifier"),           # not a per-request control
    (MASTER, {"verifier_threshold": 0.0}, "verifier_threshold"),
    (GRANTED, {"similarity_threshold": 2}, "similarity_threshold"),
])
def test_a_bad_threshold_control_is_a_400_whose_param_names_it(
        proxies, lite, minilm, path, body, key, controls, name):
    """The OpenAI SDKs raise the error's ``param`` as ``BadRequestError.param``: a bad
    per-request control named it only inside the message (``param`` was null)."""
    cache = Cache(type="faiss-semantic", embedder=BatchingEmbedder(minilm),
                  similarity_threshold=0.9)
    proxy = start(proxies, lite, cache=cache)
    before = sum(lite.calls.values())
    refused(post(proxy, key, {**body, "cache": controls}, path), 400, f"cache.{name}")
    assert sum(lite.calls.values()) == before  # refused before anything went upstream


# ---------------------------------------------------------------------- config
def test_allowed_cache_controls_are_validated_at_load():
    from semcache.proxy.config import ProxyConfigError, parse_config

    cfg = config_dict("http://127.0.0.1:9/v1")
    cfg["semcache_settings"]["keys"][0]["allowed_cache_controls"] = ["cache_key", "tll"]
    with pytest.raises(ProxyConfigError, match=r"keys\[0\]\.allowed_cache_controls.*'tll'"):
        parse_config(cfg)
    cfg["semcache_settings"]["keys"][0]["allowed_cache_controls"] = ["no-cache", "namespace"]
    key = parse_config(cfg).keys[0]
    assert key.allowed == {"no_cache", "namespace"}


# ---------------------------------------------------------------------- mid-stream
def test_a_stream_that_breaks_off_is_an_upstream_error_logged_once(proxies, fake, lite,
                                                                    caplog):
    broken = {"model_name": "broken", "litellm_params": {
        "model": "fail-midstream", "api_base": fake.base_url}}
    proxy = proxies.start(model_list=[*config_dict(fake.base_url)["model_list"], broken])
    c = openai_client(proxy.base_url, KEY_A)
    with caplog.at_level(logging.WARNING, logger="semcache.proxy"):
        with pytest.raises(openai.APIError, match="broke off"):
            for _ in c.chat.completions.create(model="broken", messages=ask("hi"),
                                               stream=True):
                pass
    # counted before the error event was sent, so no waiting
    assert stats(proxy)["upstream"]["errors"] == {"0": 1}
    lines = [r for r in caplog.records if "broke off" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0].getMessage()
    assert fake.calls["chat/completions"] == 1


# ---------------------------------------------------------------------- routing errors
def test_unknown_paths_and_methods_are_json_errors(proxies, lite):
    proxy = start(proxies, lite)
    r = httpx.get(proxy.url + "/v1/nope")
    refused(r, 404)
    r = httpx.get(proxy.url + "/v1/chat/completions")
    assert "allow" in r.headers
    refused(r, 405)
