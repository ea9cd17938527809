"""Arguments a client gives (Cache(...), call_type, the call layer's timeout, retries and
mock_response, Router(...)) are refused with a typed error that names them.

Found by a fuzzer: each of these was a raw TypeError, ValueError, AttributeError or
pydantic ValidationError from deep inside, or was accepted and then broke (or silently
disabled something) on first use. Now ``ConfigError`` (constructor arguments, with
``.parameter``) or ``InvalidRequestError`` (per-call arguments), at once.
"""

# The shared fixtures are imported from tests/calls_support.py; test parameters of the
# same name are pytest's injection, not redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import math

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import semcache
from semcache import Cache, ConfigError, InvalidRequestError, Router
from semcache._calls._clients import resolve_endpoint
from tests.calls_support import MSG, fake, fake_server, kw  # noqa: F401
from tests.writers_support import Hashing

REQ = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
ANY = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**70), st.floats(),
                st.text(max_size=6), st.binary(max_size=20),
                st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=6)), max_size=3),
                st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                st.sampled_from([object(), len, math.nan, 10**400, b"k" * 16, "k" * 16]))
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------------- Cache(...)
@pytest.mark.parametrize(("name", "value"), [
    ("key_include", 5), ("key_exclude", True), ("key_include", "user"),
    ("key_include", {"user": 1}), ("key_include", [1]),
    ("supported_call_types", 5), ("supported_call_types", object()),
    ("type", ["local"]), ("type", {"type": "local"}), ("type", 5),
    ("signing_key", 12345), ("signing_key", ["k" * 16]), ("signing_key", "\ud800" * 16),
    ("max_value_bytes", "x"), ("max_value_bytes", None), ("max_value_bytes", 0),
    ("max_value_bytes", -1), ("max_value_bytes", True), ("max_value_bytes", math.nan),
    ("max_value_bytes", 1.5e6), ("clock", 5), ("clock", "time.time"),
    ("clock", lambda: None), ("clock", lambda: "now"), ("clock", lambda: math.nan),
    ("clock", len),
])
def test_a_bad_constructor_argument_is_a_config_error_naming_it(name, value):
    with pytest.raises(ConfigError, match=name) as err:
        Cache(**{name: value})
    assert err.value.parameter == name


def test_valid_constructor_arguments_keep_working():
    c = Cache(key_include=(n for n in ["user"]), key_exclude=("seed",),
              supported_call_types={"completion"}, signing_key=bytearray(b"k" * 16),
              max_value_bytes=4096, clock=lambda: 1_000.0)
    # a generator is read once: it used to be used up by the check, leaving no names
    assert c.key_params.include == frozenset({"user"})
    c.add_cache({"a": 1}, **REQ)
    assert c.get_cache(**REQ) == {"a": 1}
    assert Cache(key_include=[]).key_params.include == frozenset()
    assert Cache(max_value_bytes=10**30)._codec.max_value_bytes == 10**30


@FAST
@given(name=st.sampled_from(["key_include", "key_exclude", "supported_call_types",
                             "signing_key", "max_value_bytes", "clock", "type"]),
       value=ANY)
def test_any_constructor_value_works_or_is_a_config_error_naming_it(name, value):
    if name == "type" and isinstance(value, str):
        value = "local" if value else value  # never a real backend's name
    try:
        c = Cache(**{name: value})
    except ConfigError as exc:
        assert exc.parameter == name and name in str(exc)
        return
    c.add_cache({"a": 1}, **REQ)  # what was accepted must work
    c.get_cache(**REQ)


# ---------------------------------------------------------------------- call_type
@pytest.fixture(params=["local", "semantic"])
def cache(request):
    if request.param == "local":
        return Cache(type="local")
    return Cache(type="faiss-semantic", embedder=Hashing(), verifier=None,
                 similarity_threshold=0.5)


@pytest.mark.parametrize("bad", [5, [None], [], 0, {"a": 1}, b"completion", ("completion",)])
def test_a_call_type_that_is_not_a_str_is_an_invalid_request(cache, bad):
    calls = [lambda: cache.lookup(call_type=bad, **REQ),
             lambda: cache.add_cache({"a": 1}, call_type=bad, **REQ),
             lambda: cache.get_cache_key(call_type=bad, **REQ),
             lambda: cache.begin(bad, **REQ),
             lambda: asyncio.run(cache.abegin(bad, **REQ)),
             lambda: asyncio.run(cache.async_get_cache(call_type=bad, **REQ))]
    for call in calls:
        with pytest.raises(InvalidRequestError, match="call_type"):
            call()


def test_an_unknown_call_type_string_passes_through_uncached(cache):
    # LiteLLM parity: a call semcache does not cache ("speech") is not an error
    assert cache.add_cache({"a": 1}, call_type="speech", **REQ) is None
    assert cache.lookup(call_type="speech", **REQ) is None
    assert cache.begin("", **REQ).hit is False  # "" still infers the call type


# ---------------------------------------------------------------------- the call layer
@pytest.mark.parametrize(("name", "value"), [
    ("timeout", "x"), ("timeout", []), ("timeout", math.nan), ("timeout", -1),
    ("timeout", 0), ("timeout", math.inf), ("timeout", True), ("request_timeout", "x"),
    ("timeout", httpx.Timeout(-1.0)), ("timeout", httpx.Timeout(5.0, read=math.nan)),
    ("max_retries", "x"), ("max_retries", 1.5), ("max_retries", -1), ("max_retries", True),
    ("num_retries", []),
])
def test_a_bad_timeout_or_retries_is_an_invalid_request(fake, kw, name, value):
    semcache.cache = None
    with pytest.raises(InvalidRequestError, match=name):
        semcache.completion(model="gpt-4o-mini", messages=MSG, **kw, **{name: value})
    with pytest.raises(InvalidRequestError, match=name):
        asyncio.run(semcache.acompletion(model="gpt-4o-mini", messages=MSG, **kw,
                                         **{name: value}))


@pytest.mark.parametrize(("name", "value"), [
    ("api_base", 5), ("api_base", ["http://x"]), ("base_url", b"http://x"),
    ("api_key", 12345), ("organization", {"id": 1}),
])
def test_an_endpoint_field_that_is_not_a_str_is_an_invalid_request(fake, kw, name, value):
    """api_base=5 reached the HTTP client as a URL: a raw APIConnectionError later."""
    semcache.cache = None
    with pytest.raises(InvalidRequestError, match=name):
        semcache.completion(model="gpt-4o-mini", messages=MSG, **{**kw, name: value})
    assert fake.calls.get("chat/completions", 0) == 0


@pytest.mark.parametrize("extra", [
    {"timeout": 30}, {"timeout": "30"}, {"timeout": 2.5}, {"timeout": None},
    {"timeout": httpx.Timeout(10.0, connect=5.0)}, {"timeout": openai.Timeout(10.0)},
    {"timeout": httpx.Timeout(None)}, {"request_timeout": 30},
    {"max_retries": 0}, {"max_retries": "2"}, {"num_retries": 3},
])
def test_valid_timeouts_and_retries_reach_the_client(fake, kw, extra):
    semcache.cache = None
    r = semcache.completion(model="gpt-4o-mini", messages=MSG, **kw, **extra)
    assert r.choices[0].message.content
    t = extra.get("timeout", extra.get("request_timeout"))
    if isinstance(t, httpx.Timeout):
        from semcache._calls._clients import POOL

        client = POOL.sync(resolve_endpoint({**kw, **extra}))
        assert client.timeout.as_dict() == t.as_dict()  # the Timeout, not a float of it


@FAST
@given(name=st.sampled_from(["timeout", "max_retries"]), value=ANY)
def test_any_timeout_or_retries_resolves_or_is_an_invalid_request(name, value):
    try:
        ep = resolve_endpoint({name: value})
    except InvalidRequestError as exc:
        assert name in str(exc)
        return
    got = getattr(ep, name)
    assert got is None or (got > 0 if name == "timeout" else got >= 0)


@pytest.mark.parametrize(("fn", "mock"), [
    ("completion", {}), ("completion", {"choices": "x"}), ("text_completion", {"a": 1}),
    ("embedding", ["a"]), ("embedding", [None]), ("embedding", [True, 1.0]),
    ("embedding", {"data": 5}),
])
def test_a_bad_mock_response_is_an_invalid_request(fake, fn, mock):
    semcache.cache = None
    arg = {"completion": {"messages": MSG}, "text_completion": {"prompt": "hi"},
           "embedding": {"input": "hi"}}[fn]
    for stream in ((False, True) if fn == "completion" else (False,)):
        with pytest.raises(InvalidRequestError, match="mock_response"):
            out = getattr(semcache, fn)(model="m", mock_response=mock, stream=stream, **arg)
            list(out) if stream else out


def test_valid_mock_responses_keep_working(fake):
    semcache.cache = None
    assert semcache.embedding(model="e", input="hi",
                              mock_response=[0.5, 1]).data[0].embedding == [0.5, 1.0]
    full = semcache.completion(model="m", messages=MSG, mock_response="hello").model_dump()
    again = semcache.completion(model="m", messages=MSG, mock_response=full)
    assert again.choices[0].message.content == "hello"


# ---------------------------------------------------------------------- Router(...)
DEP = {"model_name": "a", "litellm_params": {"model": "gpt-4o", "api_base": "http://x"}}


@pytest.mark.parametrize(("name", "kwargs"), [
    ("model_list", {"model_list": 5}), ("model_list", {"model_list": "abc"}),
    ("model_list", {"model_list": [5]}), ("model_list", {"model_list": ["ab"]}),
    ("model_list", {"model_list": {"model_name": "a"}}),
    ("caching_groups", {"caching_groups": 5}), ("caching_groups", {"caching_groups": "ab"}),
    ("default_litellm_params", {"default_litellm_params": 5}),
    ("default_litellm_params.timeout", {"default_litellm_params": {"timeout": "x"}}),
    ("redis_port", {"redis_host": "h", "redis_port": "x"}),
    ("redis_port", {"redis_host": "h", "redis_port": 0}),
    ("redis_port", {"redis_host": "h", "redis_port": 6379.5}),
    ("cache", {"cache": 5}), ("cache", {"cache": "redis"}),
    ("num_retries", {"num_retries": "x"}), ("num_retries", {"num_retries": 1.5}),
    ("timeout", {"timeout": "x"}), ("timeout", {"timeout": math.nan}),
    ("timeout", {"timeout": -1}),
    ("model_list[0].litellm_params.timeout",
     {"model_list": [{**DEP, "litellm_params": {**DEP["litellm_params"], "timeout": []}}]}),
])
def test_a_bad_router_argument_is_a_config_error_naming_it(name, kwargs):
    with pytest.raises(ConfigError, match=name.replace("[", r"\[").replace("]", r"\]")) as err:
        Router(**{"model_list": [DEP], **kwargs})
    assert err.value.parameter == name


def test_valid_router_arguments_keep_working(fake):
    dep = {"model_name": "a", "litellm_params": {"model": "gpt-4o-mini", "api_key": "sk",
                                                  "api_base": fake.base_url, "timeout": "30"}}
    r = Router(model_list=(d for d in [dep]), caching_groups=[("a",)], cache=Cache(),
               num_retries=2, timeout=httpx.Timeout(20.0),
               default_litellm_params={"max_retries": 1})
    first = r.completion(model="a", messages=MSG)
    assert first._hidden_params["cache_hit"] is False
    assert r.completion(model="a", messages=MSG)._hidden_params["cache_hit"] is True


@FAST
@given(name=st.sampled_from(["timeout", "num_retries", "cache", "caching_groups",
                             "default_litellm_params"]), value=ANY)
def test_any_router_value_works_or_is_a_config_error_naming_it(name, value):
    try:
        Router(model_list=[DEP], **{name: value})
    except ConfigError as exc:
        assert exc.parameter is not None and exc.parameter.startswith(name)
        assert name in str(exc) or "caching group" in str(exc)
