"""Per-request cache controls (``cache={...}``, ``caching=``) on every call path.

A control the user passes is either in force, the same way on every path (sync and
async, streamed and not, completion, text completion, embedding, the Router, the
Responses API), or refused with a ``ConfigError`` that names it before anything is
sent upstream: never another exception, and never silently ignored.
"""

# The shared fixtures are imported from tests/calls_support.py; test parameters of the
# same name are pytest's injection, not redefinitions.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import semcache
from semcache import Cache, ConfigError, Controls, Router
from semcache._config import _CONTROL_NAMES, MAX_TTL
from tests.calls_support import MSG, api, fake, fake_server, kw  # noqa: F401

HUGE = 10**400  # an int no float holds: float(HUGE) raises OverflowError

#: any value a caller could pass, numbers at every scale included
VALUES = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
    st.integers(), st.integers(min_value=10**300, max_value=10**500),
    st.integers(min_value=-(10**500), max_value=-(10**300)),
    st.text(max_size=8), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(_CONTROL_NAMES)), VALUES)
def test_a_control_is_parsed_or_refused_by_name(name: str, value: Any) -> None:
    try:
        c = Controls.parse({name: value})
    except ConfigError as exc:
        assert exc.parameter == f"cache[{name!r}]"
        assert repr(name) in str(exc)
        return
    field = _CONTROL_NAMES[name]
    got = getattr(c, field)
    if field == "ttl" and got is not None:
        assert 0 <= got <= MAX_TTL  # a ttl every backend can store


@pytest.mark.parametrize("name", ["ttl", "s-maxage", "similarity_threshold",
                                  "target_error_rate"])
@pytest.mark.parametrize("value", [HUGE, -HUGE])
def test_an_int_too_large_for_a_float_is_a_config_error(name: str, value: int) -> None:
    with pytest.raises(ConfigError, match=name) as e:
        Controls.parse({name: value})
    assert e.value.parameter == f"cache[{name!r}]"


@pytest.mark.parametrize("value", [HUGE, MAX_TTL * 2, 1e17])
def test_cache_and_update_ttl_refuse_a_ttl_no_backend_stores(value: Any) -> None:
    with pytest.raises(ConfigError, match="ttl") as e:
        Cache(ttl=value)
    assert e.value.parameter == "ttl"
    c = Cache()
    key = c.add_cache({"a": 1}, model="m", messages=MSG)
    with pytest.raises(ConfigError, match="ttl"):
        c.update_ttl(key, value)


# -------------------------------------------------------- what the library accepts, Redis stores
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ttl=st.one_of(st.floats(min_value=60, max_value=1e300), st.integers(60, 10**30)))
def test_a_ttl_the_library_accepts_is_stored_by_redis(redis_stack_url: str, ttl: Any) -> None:
    """A request ttl passed validation and then failed every Redis write when it was
    larger than Redis's expiry can hold (the answer silently not cached, a backend
    error counted for a healthy server): it is refused by name, or it is stored."""
    c = Cache(type="redis", url=redis_stack_url, namespace="controls-ttl")
    try:
        req = {"model": "m", "messages": MSG, "cache": {"ttl": ttl}}
        try:
            key = c.add_cache({"a": 1}, **req)
        except ConfigError as exc:
            assert exc.parameter == "cache['ttl']" and ttl > MAX_TTL
            return
        assert key is not None and c.stats()["errors_total"] == 0, c.stats()["errors"]
        assert c.get_cache(model="m", messages=MSG) == {"a": 1}
    finally:
        c.flush()
        c.close()


# -------------------------------------------------------- caching=
@pytest.mark.parametrize("value", [0, 1, 0.0, "false", "False", "no", [False]])
def test_caching_must_be_a_bool(api, fake, kw, value):
    """LiteLLM caches a call only when ``caching`` is unset or ``True``; semcache read
    anything but ``False`` as "on", so ``caching=0`` or ``caching="false"`` cached the
    call the user had turned caching off for."""
    semcache.cache = Cache()
    with pytest.raises(ConfigError, match="caching") as e:
        api.completion(model="m", messages=MSG, caching=value, **kw)
    assert e.value.parameter == "caching"
    assert fake.total_calls == 0
    with pytest.raises(ConfigError, match="caching"):
        semcache.cache.add_cache({"a": 1}, model="m", messages=MSG, caching=value)
    assert semcache.cache.stats()["stores"] == 0


@pytest.mark.parametrize("value", [True, None])
def test_caching_true_or_none_caches(api, fake, kw, value):
    semcache.cache = Cache()
    for _ in range(2):
        r = api.completion(model="m", messages=MSG, caching=value, **kw)
    assert fake.total_calls == 1 and r._hidden_params["cache_hit"] is True


# -------------------------------------------------------- the same on every path
PATHS = ["chat", "stream", "text", "text-stream", "embedding", "router", "router-embedding",
         "responses"]


def _call(api: Any, path: str, kw: dict[str, Any], cache: Any) -> Any:
    extra = {} if cache is None else {"cache": cache}
    if path == "chat":
        return api.completion(model="m", messages=MSG, **extra, **kw)
    if path == "stream":
        return api.stream("completion", model="m", messages=MSG, **extra, **kw)[0]
    if path == "text":
        return api.text_completion(model="m", prompt="hello", **extra, **kw)
    if path == "text-stream":
        return api.stream("text_completion", model="m", prompt="hello", **extra, **kw)[0]
    if path == "embedding":
        return api.embedding(model="e", input=["a", "b"], **extra, **kw)
    if path == "responses":
        return api.responses(model="m", input="hello", **extra, **kw)
    model = "e" if path == "router-embedding" else "m"
    router = Router([{"model_name": model, "litellm_params": {
        "model": model, "api_base": kw["api_base"], "api_key": "k"}}])
    if path == "router":
        return api.router(router, "completion", model=model, messages=MSG, **extra)
    return api.router(router, "embedding", model=model, input="a", **extra)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("controls,second_calls_upstream", [
    ({"no-store": True}, True), ({"ttl": 0}, True), ({"no-cache": True}, False),
    ({"namespace": "elsewhere"}, True), ({"use-cache": False}, True)])
def test_a_control_works_alike_on_every_path(api, fake, kw, path, controls,
                                             second_calls_upstream):
    """The control's request first, then a plain one: the plain one calls upstream
    again exactly when the control kept the first answer out of its entry."""
    semcache.cache = Cache()
    _call(api, path, kw, controls)
    n = fake.total_calls
    assert n > 0
    _call(api, path, kw, None)
    assert (fake.total_calls > n) is second_calls_upstream


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("bad,name", [
    ({"ttl": "10"}, "ttl"), ({"ttl": True}, "ttl"), ({"no_stor": True}, "no_stor"),
    ({"s-maxage": -1}, "s-maxage"), ({"namespace": 5}, "namespace"),
    ({"ttl": HUGE}, "ttl"), ({"s-maxage": HUGE}, "s-maxage"), ({"ttl": 1e17}, "ttl")])
def test_a_bad_control_is_refused_on_every_path(api, fake, kw, path, bad, name):
    semcache.cache = Cache()
    with pytest.raises(ConfigError, match=name) as e:
        _call(api, path, kw, bad)
    assert e.value.parameter == f"cache[{name!r}]"
    assert fake.total_calls == 0


# -------------------------------------------------------- one control, two spellings
@pytest.mark.parametrize("raw,name", [
    ({"no-store": True, "no_store": False}, "no_store"),
    ({"no_cache": True, "no-cache": False}, "no_cache"),
    ({"s-maxage": 10, "s_maxage": 1000}, "s_maxage"),
    ({"s-max-age": 10, "s-maxage": 20}, "s_maxage"),
    ({"use-cache": True, "use_cache": False}, "use_cache")])
def test_two_spellings_of_a_control_that_disagree_are_refused(raw, name):
    """``no-store`` and ``no_store`` are one control: given both with different
    values, the later silently won, so the user's ``no-store: True`` could be undone
    by a default merged in from elsewhere. Both names are in the error."""
    with pytest.raises(ConfigError) as e:
        Controls.parse(raw)
    assert all(repr(k) in str(e.value) for k in raw)
    assert e.value.parameter == f"cache[{list(raw)[1]!r}]"


def test_two_spellings_that_agree_are_one_control():
    c = Controls.parse({"no-store": True, "no_store": True, "s-maxage": 5, "s_maxage": 5.0})
    assert c.no_store is True and c.s_maxage == 5.0


@pytest.mark.parametrize("path", PATHS)
def test_s_maxage_bounds_the_age_served_on_every_path(api, fake, kw, clock, path):
    """An entry 20 s old is not served to ``s-maxage: 10``, and is to ``s-maxage: 60``,
    alike on every path (sync and async, streamed or not, through the router)."""
    semcache.cache = Cache(clock=clock)
    _call(api, path, kw, None)
    n = fake.total_calls
    clock.advance(20)
    _call(api, path, kw, {"s-maxage": 10})
    assert fake.total_calls > n
    n = fake.total_calls
    _call(api, path, kw, {"s-maxage": 60})
    assert fake.total_calls == n
