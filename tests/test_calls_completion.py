"""completion / acompletion / text_completion through ``semcache.cache``, against the fake
upstream: every hit is proved by the upstream call count, every case runs sync and async.
"""

# The shared fixtures are imported from tests/calls_support.py; test parameters of the
# same name are pytest's injection, not redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import logging
import os
import subprocess
import sys

import openai
import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion

import semcache
from semcache import Cache, CacheMode
from semcache.exact.base import ExactStore
from semcache.exact.memory import MemoryStore
from semcache_testing.fake_openai import FakeOpenAI
from tests.calls_support import MSG, POOL, api, fake, fake_server, kw  # noqa: F401

CHAT = "chat/completions"


def test_docs_in_memory_cache(api, fake, kw):
    # LiteLLM docs: litellm.cache = Cache(); two identical calls, the second is a hit
    semcache.cache = Cache()
    r1 = api.completion(model="gpt-4o-mini", messages=MSG, **kw)
    r2 = api.completion(model="gpt-4o-mini", messages=MSG, **kw)
    assert fake.calls[CHAT] == 1
    assert isinstance(r1, ChatCompletion) and isinstance(r2, ChatCompletion)
    assert r1._hidden_params["cache_hit"] is False
    assert r2._hidden_params["cache_hit"] is True
    assert r2.choices[0].message.content == r1.choices[0].message.content \
        == "echo: What is the capital of France?"
    assert r2.id == r1.id and r2.usage == r1.usage  # original usage figures kept
    assert r2._hidden_params["response_cost"] == 0.0
    meta = r2._hidden_params["cache"]
    assert meta["stage"] == "exact" and meta["similarity"] == 1.0 and meta["age_s"] >= 0
    assert meta["key"] == r1._hidden_params["cache"]["key"] == r2._hidden_params["cache_key"]
    assert r1._hidden_params["cache"]["stage"] == "miss"  # metadata on misses too
    assert "_hidden_params" not in r2.model_dump()


def test_no_cache_configured_always_calls_upstream(api, fake, kw):
    semcache.cache = None
    r = [api.completion(model="m", messages=MSG, **kw) for _ in range(2)]
    assert fake.calls[CHAT] == 2
    assert r[1]._hidden_params["cache_hit"] is False and r[1]._hidden_params["cache"] is None


def test_caching_false_skips_read_and_write(api, fake, kw):
    semcache.cache = Cache()
    api.completion(model="m", messages=MSG, **kw)
    r = api.completion(model="m", messages=MSG, caching=False, **kw)
    assert r._hidden_params["cache_hit"] is False and fake.calls[CHAT] == 2
    # nor is a caching=False answer written
    api.completion(model="m", messages=MSG, caching=False, **kw)
    assert semcache.cache.stats()["stores"] == 1


def test_docs_default_off_mode_is_opt_in(api, fake, kw):
    semcache.cache = Cache(mode=CacheMode.default_off)
    api.completion(model="m", messages=MSG, **kw)
    api.completion(model="m", messages=MSG, **kw)
    assert fake.calls[CHAT] == 2  # not cached unless asked
    api.completion(model="m", messages=MSG, cache={"use-cache": True}, **kw)
    r = api.completion(model="m", messages=MSG, cache={"use-cache": True}, **kw)
    assert fake.calls[CHAT] == 3 and r._hidden_params["cache_hit"] is True


@pytest.fixture
def timed_cache(clock):
    semcache.cache = Cache(store=MemoryStore(clock=clock), clock=clock)
    return semcache.cache


def test_docs_ttl(api, fake, kw, clock, timed_cache):
    api.completion(model="m", messages=MSG, cache={"ttl": 10}, **kw)
    clock.now += 9
    assert api.completion(model="m", messages=MSG, **kw)._hidden_params["cache_hit"]
    clock.now += 2  # 11 s old: expired
    r = api.completion(model="m", messages=MSG, **kw)
    assert r._hidden_params["cache_hit"] is False and fake.calls[CHAT] == 2


def test_docs_s_maxage(api, fake, kw, clock, timed_cache):
    api.completion(model="m", messages=MSG, **kw)
    clock.now += 30
    young = api.completion(model="m", messages=MSG, cache={"s-maxage": 60}, **kw)
    assert young._hidden_params["cache_hit"] is True
    assert young._hidden_params["cache"]["age_s"] == pytest.approx(30)
    old = api.completion(model="m", messages=MSG, cache={"s-maxage": 10}, **kw)
    assert old._hidden_params["cache_hit"] is False and fake.calls[CHAT] == 2
    api.completion(model="m", messages=MSG, cache={"s-maxage": 0}, **kw)
    assert fake.calls[CHAT] == 3  # 0 means never serve


def test_docs_no_cache_refreshes_the_entry(api, fake, kw):
    fake.numbered = True  # every fresh answer differs
    semcache.cache = Cache()
    first = api.completion(model="m", messages=MSG, **kw)
    fresh = api.completion(model="m", messages=MSG, cache={"no-cache": True}, **kw)
    after = api.completion(model="m", messages=MSG, **kw)
    assert fake.calls[CHAT] == 2
    assert fresh._hidden_params["cache_hit"] is False
    assert fresh.choices[0].message.content != first.choices[0].message.content
    # no-cache does not serve, but does store the fresh answer
    assert after.choices[0].message.content == fresh.choices[0].message.content


def test_docs_no_store(api, fake, kw):
    semcache.cache = Cache()
    api.completion(model="m", messages=MSG, cache={"no-store": True}, **kw)
    r = api.completion(model="m", messages=MSG, **kw)
    assert r._hidden_params["cache_hit"] is False and fake.calls[CHAT] == 2


def test_docs_namespace(api, fake, kw):
    semcache.cache = Cache()
    api.completion(model="m", messages=MSG, cache={"namespace": "team-a"}, **kw)
    b = api.completion(model="m", messages=MSG, cache={"namespace": "team-b"}, **kw)
    a = api.completion(model="m", messages=MSG, cache={"namespace": "team-a"}, **kw)
    assert fake.calls[CHAT] == 2
    assert b._hidden_params["cache_hit"] is False and a._hidden_params["cache_hit"] is True
    assert a._hidden_params["cache"]["namespace"] == "team-a"
    assert a._hidden_params["cache"]["key"].startswith("team-a:")


def test_unknown_cache_control_is_an_error_naming_it(fake, kw):
    semcache.cache = Cache()
    with pytest.raises(semcache.ConfigError, match="no-cahce"):
        semcache.completion(model="m", messages=MSG, cache={"no-cahce": True}, **kw)
    assert fake.calls[CHAT] == 0


def test_a_bad_ttl_beside_cache_ttl_is_an_error_naming_it(api, fake, kw):
    # ttl="x" was ignored when cache={"ttl": ...} also came: checked whichever wins
    semcache.cache = Cache()
    with pytest.raises(semcache.ConfigError, match="ttl") as e:
        api.completion(model="m", messages=MSG, ttl="x", cache={"ttl": 10}, **kw)
    assert e.value.parameter == "ttl" and fake.calls[CHAT] == 0


def test_output_shaping_parameters_separate_entries(api, fake, kw):
    semcache.cache = Cache()
    api.completion(model="m", messages=MSG, temperature=0.2, **kw)
    api.completion(model="m", messages=MSG, temperature=0.7, **kw)
    api.completion(model="m2", messages=MSG, temperature=0.2, **kw)
    hit = api.completion(model="m", messages=MSG, temperature=0.2, api_key="other-key",
                         api_base=kw["api_base"])  # transport params do not change keys
    assert fake.calls[CHAT] == 3 and hit._hidden_params["cache_hit"] is True


def test_provider_prefix_is_stripped_and_shares_entries(api, fake, kw):
    semcache.cache = Cache()
    api.completion(model="openai/gpt-4o-mini", messages=MSG, **kw)
    r = api.completion(model="gpt-4o-mini", messages=MSG, **kw)
    assert fake.requests[0]["body"]["model"] == "gpt-4o-mini"
    assert r._hidden_params["cache_hit"] is True and fake.calls[CHAT] == 1


def test_unknown_parameters_reach_the_server_in_the_body(api, fake, kw):
    api.completion(model="m", messages=MSG, top_k=5, repetition_penalty=1.1, seed=3, **kw)
    body = fake.requests[0]["body"]
    assert body["top_k"] == 5 and body["repetition_penalty"] == 1.1 and body["seed"] == 3
    assert "api_key" not in body and "cache" not in body


def test_endpoint_from_environment(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    semcache.completion(model="m", messages=MSG)
    assert fake.calls[CHAT] == 1
    assert fake.requests[0]["headers"]["authorization"] == "Bearer sk-env"


def test_one_client_per_endpoint(fake, kw):
    semcache.cache = None
    POOL.close()
    for _ in range(3):
        semcache.completion(model="m", messages=MSG, **kw)
    assert len(POOL) == 1
    semcache.completion(model="m", messages=MSG, api_base=fake.base_url, api_key="other")
    semcache.completion(model="m", messages=MSG, timeout=5, **kw)
    assert len(POOL) == 3
    POOL.close()


@pytest.mark.parametrize(("model", "exc"), [("fail-429", openai.RateLimitError),
                                            ("fail-500", openai.InternalServerError)])
def test_upstream_errors_propagate_and_are_not_cached(api, fake, kw, model, exc):
    semcache.cache = Cache()
    for _ in range(2):
        with pytest.raises(exc):
            api.completion(model=model, messages=MSG, **kw)
    assert fake.calls[CHAT] == 2
    assert semcache.cache.stats()["stores"] == 0


class BrokenStore(ExactStore):
    """Every operation fails, as a store whose server is down does."""

    name = "broken"

    def __init__(self) -> None:
        self.attempts = 0

    def _fail(self, *args: object) -> None:
        self.attempts += 1
        raise ConnectionError("store is down")

    get = set = delete = clear = _fail


def test_backend_fault_never_breaks_the_call(api, fake, kw):
    store = BrokenStore()
    semcache.cache = Cache(store=store)
    r1 = api.completion(model="m", messages=MSG, **kw)
    r2 = api.completion(model="m", messages=MSG, **kw)
    assert r2.choices[0].message.content == r1.choices[0].message.content
    assert fake.calls[CHAT] == 2 and store.attempts == 4  # get + set, twice
    assert any("store is down" in e for e in r2._hidden_params["cache"]["errors"])


def test_text_completion_hit(api, fake, kw):
    semcache.cache = Cache()
    a = api.text_completion(model="gpt-3.5-turbo-instruct", prompt="Say hi", **kw)
    b = api.text_completion(model="gpt-3.5-turbo-instruct", prompt="Say hi", **kw)
    assert isinstance(b, Completion) and b.choices[0].text == a.choices[0].text == "echo: Say hi"
    assert b._hidden_params["cache_hit"] is True and fake.calls["completions"] == 1


def test_text_completion_stream_hit_and_miss(api, fake, kw):
    semcache.cache = Cache()
    s1, c1 = api.stream("text_completion", model="i", prompt="one two three", **kw)
    s2, c2 = api.stream("text_completion", model="i", prompt="one two three", **kw)
    assert fake.calls["completions"] == 1
    assert s1._hidden_params["cache_hit"] is False and s2._hidden_params["cache_hit"] is True
    for chunks in (c1, c2):
        assert all(isinstance(c, Completion) for c in chunks)
        assert "".join(c.choices[0].text for c in chunks) == "echo: one two three"
        assert chunks[-1].choices[0].finish_reason == "stop"


def test_response_cost_from_per_token_prices(api, fake, kw):
    semcache.cache = Cache()
    prices = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
    miss = api.completion(model="m", messages=MSG, **prices, **kw)
    hit = api.completion(model="m", messages=MSG, **prices, **kw)
    u = miss.usage
    assert miss._hidden_params["response_cost"] == pytest.approx(
        u.prompt_tokens * 1e-6 + u.completion_tokens * 2e-6)
    assert hit._hidden_params["response_cost"] == 0.0


def test_success_callbacks(api, fake, kw, caplog):
    seen = []

    def broken(payload):
        raise RuntimeError("callback bug")

    semcache.success_callback = [broken, seen.append]
    semcache.cache = Cache()
    with caplog.at_level(logging.ERROR, logger="semcache"):
        r1 = api.completion(model="m", messages=MSG, **kw)
        r2 = api.completion(model="m", messages=MSG, **kw)
    assert [p["cache_hit"] for p in seen] == [False, True]
    p = seen[0]
    assert p["response"] is r1 and seen[1]["response"] is r2
    assert p["kwargs"]["api_key"] == "<redacted>" and p["kwargs"]["messages"] == MSG
    assert p["call_type"] == ("completion" if api.mode == "sync" else "acompletion")
    assert p["end_time"] >= p["start_time"]
    assert {"upstream", "cache", "total"} <= set(p["timings_ms"])
    assert "upstream" not in seen[1]["timings_ms"]
    assert sum("callback bug" in r.getMessage() or (r.exc_info and "callback bug" in
               str(r.exc_info[1])) for r in caplog.records) == 2


async def test_async_success_callback_is_awaited(fake, kw):
    seen = []

    async def cb(payload):
        seen.append(payload["cache_hit"])

    semcache.success_callback = [cb]
    semcache.cache = Cache()
    try:
        await semcache.acompletion(model="m", messages=MSG, **kw)
        await semcache.acompletion(model="m", messages=MSG, **kw)
    finally:
        await semcache._calls.aclose_clients()
    assert seen == [False, True]


def test_import_is_lazy():
    code = ("import sys, semcache; assert 'openai' not in sys.modules, 'openai imported'; "
            "assert callable(semcache.completion)")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=60, check=False)
    assert out.returncode == 0, out.stderr


def test_public_names():
    for name in ("completion", "acompletion", "text_completion", "atext_completion",
                 "embedding", "aembedding", "transcription", "atranscription", "Router",
                 "success_callback"):
        assert name in semcache.__all__ and hasattr(semcache, name)


def test_supported_call_types_decide_what_is_cached(api, fake, kw):
    semcache.cache = Cache(supported_call_types=["embedding", "aembedding"])
    for _ in range(2):
        r = api.completion(model="m", messages=MSG, **kw)
        e = api.embedding(model="e", input=["x"], dimensions=4, **kw)
    assert fake.calls[CHAT] == 2 and fake.calls["embeddings"] == 1
    assert r._hidden_params["cache_hit"] is False and e._hidden_params["cache_hit"] is True
    assert r._hidden_params["cache"]["decision"] == "skipped"


def test_async_clients_are_closed_with_their_loop(fake, kw):
    # one asyncio.run after another: each loop's client is closed as the loop shuts down
    # (not leaked with its sockets), and the next loop gets a working one
    import asyncio

    POOL.close()
    for _ in range(3):
        r = asyncio.run(semcache.acompletion(model="m", messages=MSG, **kw))
        assert r.choices[0].message.content.startswith("echo:")
        assert len(POOL) == 0
    assert fake.calls[CHAT] == 3


def test_one_model_name_at_two_endpoints_never_shares_answers(api, fake):
    # api_base was a transport parameter: "m" on a local vLLM and "m" on another server
    # (or OpenAI) shared one key, so one server's answers were served for the other's
    semcache.cache = Cache()
    with FakeOpenAI() as other:
        api.completion(model="m", messages=MSG, api_base=fake.base_url, api_key="k")
        r = api.completion(model="m", messages=MSG, api_base=other.base_url, api_key="k")
        assert r._hidden_params["cache_hit"] is False and other.calls[CHAT] == 1
        r = api.completion(model="m", messages=MSG, base_url=other.base_url, api_key="k")
        assert r._hidden_params["cache_hit"] is True  # base_url is the same endpoint
        e = api.embedding(model="e", input=["hi"], api_base=fake.base_url, api_key="k")
        e2 = api.embedding(model="e", input=["hi"], api_base=other.base_url, api_key="k")
        assert e._hidden_params["cache_hit"] is False
        assert e2._hidden_params["cache_hit"] is False and other.calls["embeddings"] == 1
    # a trailing slash names the same endpoint
    r = api.completion(model="m", messages=MSG, api_base=fake.base_url + "/", api_key="k")
    assert r._hidden_params["cache_hit"] is True and fake.calls[CHAT] == 1
    # key_exclude=["api_base"] opts out: one entry for every endpoint
    semcache.cache = Cache(key_exclude=["api_base"])
    with FakeOpenAI() as other:
        api.completion(model="m", messages=MSG, api_base=fake.base_url, api_key="k")
        r = api.completion(model="m", messages=MSG, api_base=other.base_url, api_key="k")
        assert r._hidden_params["cache_hit"] is True and other.calls[CHAT] == 0


def test_the_endpoint_from_the_environment_is_keyed(fake, monkeypatch):
    semcache.cache = Cache()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    with FakeOpenAI() as other:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        semcache.completion(model="m", messages=MSG)
        monkeypatch.setenv("OPENAI_BASE_URL", other.base_url)
        r = semcache.completion(model="m", messages=MSG)
        assert r._hidden_params["cache_hit"] is False and other.calls[CHAT] == 1


@pytest.mark.parametrize("call", [
    {"name": "completion", "messages": MSG},
    {"name": "completion", "messages": MSG, "n": 2, "logprobs": True},
    {"name": "text_completion", "prompt": "What is the capital of France?"},
    {"name": "responses", "input": "What is the capital of France?"},
])
def test_a_hit_serialises_as_the_miss_did(api, fake, kw, call):
    """openai's ``to_dict()`` / ``to_json()`` (what a service forwarding the answer
    sends on) write the fields the upstream sent. The cache stored every field of the
    type, defaults included, so a hit grew keys the miss never had (chat:
    ``message.tool_calls: null``, ``audio: null``, ``service_tier: null``, ...; a
    Response: some twenty) and its JSON was not the first user's."""
    semcache.cache = Cache()
    ask = {k: v for k, v in call.items() if k != "name"}
    miss = getattr(api, call["name"])(model="gpt-4o-mini", **ask, **kw)
    hit = getattr(api, call["name"])(model="gpt-4o-mini", **ask, **kw)
    assert hit._hidden_params["cache_hit"] is True
    assert hit.to_dict() == miss.to_dict()
    assert hit == miss


def test_a_streamed_miss_serves_a_plain_hit_without_invented_fields(api, fake, kw):
    semcache.cache = Cache()
    s, _ = api.stream(model="m", messages=MSG, **kw)
    hit = api.completion(model="m", messages=MSG, **kw)
    assert hit._hidden_params["cache_hit"] is True
    assert hit.to_dict() == s.response.to_dict()
    assert set(hit.to_dict()["choices"][0]["message"]) == {"role", "content", "refusal"}
