"""Router: deployments by model name, round-robin, and caching groups."""

# The shared fixtures are imported from tests/calls_support.py; test parameters of the
# same name are pytest's injection, not redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import pytest

import semcache
from semcache import Cache, Router
from semcache_testing.fake_openai import FakeOpenAI
from tests.calls_support import MSG, api, fake, fake_server  # noqa: F401

CHAT = "chat/completions"


def _dep(name, model, fake, key="sk-test"):
    return {"model_name": name, "litellm_params": {"model": model, "api_base": fake.base_url,
                                                   "api_key": key}}


def test_docs_caching_groups(api, fake):
    # LiteLLM docs: models in one caching group share cache entries; others do not
    semcache.cache = Cache()
    router = Router(model_list=[_dep("openai-gpt-4o", "openai/gpt-4o", fake),
                                _dep("azure-gpt-4o", "openai/gpt-4o-2024", fake),
                                _dep("gpt-4o-solo", "openai/gpt-4o", fake)],
                    caching_groups=[("openai-gpt-4o", "azure-gpt-4o")])
    a = api.router(router, "completion", model="openai-gpt-4o", messages=MSG)
    b = api.router(router, "completion", model="azure-gpt-4o", messages=MSG)
    assert a._hidden_params["cache_hit"] is False and b._hidden_params["cache_hit"] is True
    assert fake.calls[CHAT] == 1
    # same underlying model, but not in the group: its own entries
    c = api.router(router, "completion", model="gpt-4o-solo", messages=MSG)
    assert c._hidden_params["cache_hit"] is False and fake.calls[CHAT] == 2
    c2 = api.router(router, "completion", model="gpt-4o-solo", messages=MSG)
    assert c2._hidden_params["cache_hit"] is True and fake.calls[CHAT] == 2
    # the deployment's model reached the upstream, prefix stripped
    assert fake.requests[0]["body"]["model"] == "gpt-4o"


def test_round_robin_over_deployments(fake):
    with FakeOpenAI() as other:
        router = Router(model_list=[_dep("m", "gpt-4o-mini", fake),
                                    _dep("m", "gpt-4o-mini", other)])
        for _ in range(4):
            router.completion(model="m", messages=MSG)
        assert fake.calls[CHAT] == 2 and other.calls[CHAT] == 2
        semcache.cache = Cache()
        for _ in range(4):  # with a cache: one upstream call, on either deployment
            router.completion(model="m", messages=MSG)
        assert fake.calls[CHAT] + other.calls[CHAT] == 5


def test_router_embedding_and_text_completion(api, fake):
    semcache.cache = Cache()
    router = Router(model_list=[_dep("emb-a", "text-embedding-3-small", fake),
                                _dep("emb-b", "text-embedding-3-small", fake),
                                _dep("inst", "gpt-3.5-turbo-instruct", fake)],
                    caching_groups=[("emb-a", "emb-b")])
    api.router(router, "embedding", model="emb-a", input=["x", "y"], dimensions=8)
    r = api.router(router, "embedding", model="emb-b", input=["y"], dimensions=8)
    assert r._hidden_params["cache_hit"] is True and fake.calls["embeddings"] == 1
    api.router(router, "text_completion", model="inst", prompt="hi")
    t = api.router(router, "text_completion", model="inst", prompt="hi")
    assert t._hidden_params["cache_hit"] is True and fake.calls["completions"] == 1


def test_router_errors():
    with pytest.raises(semcache.ConfigError, match="model_list"):
        Router(model_list=[])
    with pytest.raises(semcache.ConfigError, match="litellm_params"):
        Router(model_list=[{"model_name": "a"}])
    dep = {"model_name": "a", "litellm_params": {"model": "m"}}
    with pytest.raises(semcache.ConfigError, match="two caching groups"):
        Router(model_list=[dep], caching_groups=[("a", "b"), ("a", "c")])
    for flat in (["a", "b"], [("a", "b"), "cd"], [{"a": 1}], [3], [("a", "")]):
        # a flat list was the groups of each name's letters: "gpt-4o" and "gpt-4o-mini"
        # met in "g", and a model named "g" shared with both
        with pytest.raises(semcache.ConfigError, match="caching.group") as e:
            Router(model_list=[dep], caching_groups=flat)
        assert e.value.parameter == "caching_groups"
    Router(model_list=[dep], caching_groups=[("a", "a", "b")])  # a repeat is one member
    with pytest.raises(semcache.InvalidRequestError, match="no deployment for model 'zz'"):
        Router(model_list=[dep]).completion(model="zz", messages=MSG)


def test_router_own_cache_and_cache_responses(fake):
    semcache.cache = None
    own = Cache()
    router = Router(model_list=[_dep("m", "gpt-4o-mini", fake)], cache=own)
    router.completion(model="m", messages=MSG)
    r = router.completion(model="m", messages=MSG)
    assert r._hidden_params["cache_hit"] is True and own.stats()["stores"] == 1
    # a plain call does not see the router's cache
    semcache.completion(model="gpt-4o-mini", messages=MSG, api_base=fake.base_url,
                        api_key="k")
    assert fake.calls[CHAT] == 2
    semcache.cache = Cache()
    off = Router(model_list=[_dep("m", "gpt-4o-mini", fake)], cache_responses=False)
    for _ in range(2):
        off.completion(model="m", messages=MSG)
    assert fake.calls[CHAT] == 4 and semcache.cache.stats()["stores"] == 0
    with pytest.raises(TypeError, match="routing_strategy"):
        Router(model_list=[_dep("m", "x", fake)], routing_strategy="latency-based")


def test_os_environ_values_in_litellm_params(fake, monkeypatch):
    monkeypatch.setenv("FAKE_BASE", fake.base_url)
    monkeypatch.setenv("FAKE_KEY", "sk-from-env")
    router = Router(model_list=[{"model_name": "m", "litellm_params": {
        "model": "openai/gpt-4o-mini", "api_base": "os.environ/FAKE_BASE",
        "api_key": "os.environ/FAKE_KEY"}}])
    router.completion(model="m", messages=MSG)
    assert fake.requests[0]["headers"]["authorization"] == "Bearer sk-from-env"
    with pytest.raises(semcache.ConfigError, match="NOT_SET_ANYWHERE"):
        Router(model_list=[{"model_name": "m", "litellm_params": {
            "model": "x", "api_key": "os.environ/NOT_SET_ANYWHERE"}}])


@pytest.mark.parametrize("bad", [0, 1, "false", "no"])
def test_router_cache_responses_must_be_a_bool(bad):
    # cache_responses=0 or "false" was not validated and the router still cached
    dep = {"model_name": "a", "litellm_params": {"model": "m"}}
    with pytest.raises(semcache.ConfigError, match="cache_responses") as e:
        Router(model_list=[dep], cache_responses=bad)
    assert e.value.parameter == "cache_responses"
    for ok in (True, False, None):  # None: LiteLLM's default, caching on
        assert Router(model_list=[dep], cache_responses=ok).cache_responses is ok


def test_a_caching_group_never_shares_with_a_model_outside_it(api, fake):
    # the group's scope was the string "caching_group:" + ",".join(sorted(members)):
    # groups ("a,b", "c") and ("a", "b,c") had one scope, and so did a model named
    # "caching_group:x,y" (in the router or in a plain call) and the group ("x", "y")
    semcache.cache = Cache()
    fake.numbered = True  # two fresh answers differ
    router = Router(model_list=[_dep(n, "gpt-4o", fake) for n in
                                ("a,b", "c", "a", "b,c", "x", "y", "caching_group:x,y")],
                    caching_groups=[("a,b", "c"), ("a", "b,c"), ("x", "y")])
    for first, other in (("a,b", "a"), ("x", "caching_group:x,y")):
        msgs = [{"role": "user", "content": f"after {first}"}]
        api.router(router, "completion", model=first, messages=msgs)
        r = api.router(router, "completion", model=other, messages=msgs)
        assert r._hidden_params["cache_hit"] is False, (first, other)
    msgs = [{"role": "user", "content": "asked of the group"}]
    api.router(router, "completion", model="x", messages=msgs)
    r = api.completion(model="caching_group:x,y", messages=msgs, api_base=fake.base_url,
                       api_key="k")
    assert r._hidden_params["cache_hit"] is False
    # the groups themselves still share, whatever order their members are listed in
    r = api.router(router, "completion", model="y", messages=msgs)
    assert r._hidden_params["cache_hit"] is True
    again = Router(model_list=[_dep(n, "gpt-4o", fake) for n in ("x", "y")],
                   caching_groups=[("y", "x")])
    r = api.router(again, "completion", model="y", messages=msgs)
    assert r._hidden_params["cache_hit"] is True


def test_a_caching_group_shares_across_endpoints(api, fake):
    # the endpoint is keyed for plain calls, but a caching group declares its
    # deployments' answers equivalent: a load-balanced group at two bases shares
    semcache.cache = Cache()
    with FakeOpenAI() as other:
        dep_b = {"model_name": "b", "litellm_params": {
            "model": "gpt-4o", "api_base": other.base_url, "api_key": "k"}}
        router = Router(model_list=[_dep("a", "gpt-4o", fake), dep_b],
                        caching_groups=[("a", "b")])
        api.router(router, "completion", model="a", messages=MSG)
        r = api.router(router, "completion", model="b", messages=MSG)
        assert r._hidden_params["cache_hit"] is True and other.calls[CHAT] == 0


def test_cache_responses_true_caches_with_no_global_cache(api, fake):
    """LiteLLM's ``Router(cache_responses=True)`` with no Redis settings caches in
    memory. With ``semcache.cache`` unset, semcache's router made every call upstream:
    the option the user set to turn caching on was silently ignored."""
    semcache.cache = None
    router = Router(model_list=[_dep("m", "gpt-4o-mini", fake)], cache_responses=True)
    api.router(router, "completion", model="m", messages=MSG)
    r = api.router(router, "completion", model="m", messages=MSG)
    assert r._hidden_params["cache_hit"] is True and fake.calls[CHAT] == 1
    # a global cache set later is the one used, as before
    semcache.cache = Cache()
    api.router(router, "completion", model="m", messages=MSG)
    assert semcache.cache.stats()["stores"] == 1
