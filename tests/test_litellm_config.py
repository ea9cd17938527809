"""LiteLLM compatibility of configuration (issue 21): ``semcache.caching``'s names,
LiteLLM's positional ``enable_cache``, ``url=``, ``"os.environ/NAME"`` values,
parameters semcache does not need, and choosing the parameters that make up a key."""

# ruff: noqa: F811

from __future__ import annotations

import logging

import pytest

import semcache
from semcache import Cache, ConfigError
from semcache._keys import KeyParams
from tests.calls_support import MSG, fake, fake_server, kw  # noqa: F401


def test_semcache_caching_mirrors_litellm_caching_names():
    from semcache.caching import (  # noqa: F401 - the imports are the test
        Cache,
        DiskCache,
        DualCache,
        InMemoryCache,
        LiteLLMCacheType,
        disable_cache,
        enable_cache,
        update_cache,
    )
    from semcache.caching.caching import Cache as Cache2
    from semcache.caching.caching import LiteLLMCacheType as T2

    assert Cache2 is Cache and T2 is LiteLLMCacheType
    assert disable_cache is semcache.disable_cache
    import semcache.caching as caching

    assert caching.RedisCache.__name__ == "RedisStore"  # lazily imported
    assert sorted(caching.__all__) == caching.__all__
    c = Cache(type=LiteLLMCacheType.LOCAL)
    assert c.type == "local"


def test_disable_cache_from_semcache_caching(fake, kw):
    from semcache.caching import disable_cache, enable_cache

    enable_cache()
    assert semcache.cache is not None
    disable_cache()
    assert semcache.cache is None


def test_enable_cache_takes_litellm_positional_arguments(redis_stack_url):
    host, port = redis_stack_url.rsplit("//", 1)[1].split(":")
    try:
        c = semcache.enable_cache("redis", host, port)  # port as a str, as LiteLLM's
        assert semcache.cache is c and c.type == "redis" and c.ping()["store"]["ok"]
        c2 = semcache.update_cache("local", None, None, None, ["completion"])
        assert c2.type == "local" and c2.supported_call_types == {"completion"}
    finally:
        semcache.disable_cache()


def test_redis_url_and_os_environ_values(redis_stack_url, monkeypatch):
    c = Cache(type="redis", url=redis_stack_url)
    assert c.ping()["store"]["ok"]
    assert c.cache.redis_client.ping() is True  # LiteLLM's cache.cache.redis_client
    c.add_cache("v", cache_key="url-test")
    assert c.get_cache(cache_key="url-test") == "v"
    c.close()
    monkeypatch.setenv("SEMCACHE_TEST_REDIS_URL", redis_stack_url)
    monkeypatch.setenv("SEMCACHE_TEST_TTL", "42")
    c = Cache(type="redis", redis_url="os.environ/SEMCACHE_TEST_REDIS_URL",
              ttl="os.environ/SEMCACHE_TEST_TTL")
    assert c.ping()["store"]["ok"] and c.ttl == 42.0
    c.close()


def test_a_missing_environment_variable_names_the_parameter(monkeypatch):
    monkeypatch.delenv("SEMCACHE_NOT_SET", raising=False)
    with pytest.raises(ConfigError, match="SEMCACHE_NOT_SET") as e:
        Cache(type="redis", password="os.environ/SEMCACHE_NOT_SET", host="127.0.0.1")
    assert e.value.parameter == "password"


def test_litellm_parameters_semcache_does_not_need_warn_once(caplog):
    from semcache import _compat

    _compat._warned.discard("redis_flush_size")
    with caplog.at_level(logging.WARNING, logger="semcache"):
        Cache(type="local", redis_flush_size=100)
        Cache(type="local", redis_flush_size=100)
    warned = [r for r in caplog.records if "redis_flush_size" in r.getMessage()]
    assert len(warned) == 1
    with pytest.raises(ConfigError):  # unknown names are still errors
        Cache(type="local", redis_flush_sizes=100)


def test_litellm_type_spelling_azure_blob():
    with pytest.raises(ConfigError) as e:  # recognised as azure_blob: asks for its params
        Cache(type="azure-blob")
    assert "unknown cache type" not in str(e.value)


# ---------------------------------------------------------------- key parameters
def test_key_exclude_leaves_a_parameter_out_of_the_key(fake, kw):
    semcache.cache = Cache(key_exclude=["user"])
    semcache.completion(model="m", messages=MSG, user="alice", **kw)
    r = semcache.completion(model="m", messages=MSG, user="bob", **kw)
    assert r._hidden_params["cache_hit"] is True
    r = semcache.completion(model="m", messages=MSG, user="bob", temperature=0.5, **kw)
    assert r._hidden_params["cache_hit"] is False  # other parameters still count


def test_key_include_keeps_only_the_listed_parameters(fake, kw):
    semcache.cache = Cache(key_include=["temperature"])
    semcache.completion(model="m", messages=MSG, temperature=0, user="a", seed=1, **kw)
    r = semcache.completion(model="m", messages=MSG, temperature=0, user="b", seed=2, **kw)
    assert r._hidden_params["cache_hit"] is True
    r = semcache.completion(model="m", messages=MSG, temperature=1, **kw)
    assert r._hidden_params["cache_hit"] is False
    r = semcache.completion(model="other", messages=MSG, temperature=0, **kw)
    assert r._hidden_params["cache_hit"] is False  # the model is content: always keyed


def test_default_keys_are_unchanged():
    c, d = Cache(), Cache(key_exclude=[])
    req = {"model": "m", "messages": MSG, "user": "u"}
    assert c.get_cache_key(**req) == d.get_cache_key(**req)
    assert c.get_cache_key(**req) != c.get_cache_key(**{**req, "user": "v"})
    assert Cache(key_exclude=["user"]).get_cache_key(**req) == \
        Cache(key_exclude=["user"]).get_cache_key(**{**req, "user": "v"})


def test_key_params_change_both_stages_consistently():
    from semcache._keys import semantic_split

    kp = KeyParams(exclude=["user"])
    a = {"model": "m", "messages": MSG, "user": "a", "temperature": 0}
    b = {**a, "user": "b"}
    split_a = semantic_split("ns", "completion", kp.filter(a))
    split_b = semantic_split("ns", "completion", kp.filter(b))
    assert split_a is not None and split_b is not None and split_a.context == split_b.context
    assert semantic_split("ns", "completion", a).context != \
        semantic_split("ns", "completion", b).context


@pytest.mark.parametrize("kwargs,param", [({"key_exclude": ["messages"]}, "key_exclude"),
                                          ({"key_include": "user"}, "key_include"),
                                          ({"key_exclude": [1]}, "key_exclude")])
def test_key_params_are_validated(kwargs, param):
    with pytest.raises(ConfigError) as e:
        Cache(**kwargs)
    assert e.value.parameter == param
