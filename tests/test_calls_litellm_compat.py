"""LiteLLM's caching-docs examples, as written, with ``semcache`` in place of ``litellm``
(the upstream is the fake server: api_base is the only addition)."""

# The shared fixtures are imported from tests/calls_support.py; test parameters of the
# same name are pytest's injection, not redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import semcache
from tests.calls_support import fake, fake_server, kw  # noqa: F401


def test_quick_start_usage_completion(fake, kw):
    from semcache import completion
    from semcache.caching.caching import Cache
    semcache.cache = Cache()

    # Make completion calls
    response1 = completion(
        model="gpt-3.5-turbo",
        messages=[{"role": "user", "content": "Tell me a joke."}],
        caching=True, **kw,
    )
    response2 = completion(
        model="gpt-3.5-turbo",
        messages=[{"role": "user", "content": "Tell me a joke."}],
        caching=True, **kw,
    )
    # response1 == response2, response 1 is cached
    assert response1 == response2
    assert fake.calls["chat/completions"] == 1


def test_custom_key_value_pairs():
    from semcache.caching.caching import Cache
    cache = Cache()

    cache.add_cache(cache_key="test-key", result="1234")

    assert cache.get_cache(cache_key="test-key") == "1234"


def test_caching_with_streaming(fake, kw):
    from semcache import completion
    from semcache.caching.caching import Cache
    semcache.cache = Cache()

    # Make completion calls
    response1 = completion(
        model="gpt-3.5-turbo",
        messages=[{"role": "user", "content": "Tell me a joke."}],
        stream=True,
        caching=True, **kw)
    first = [chunk for chunk in response1]
    response2 = completion(
        model="gpt-3.5-turbo",
        messages=[{"role": "user", "content": "Tell me a joke."}],
        stream=True,
        caching=True, **kw)
    second = [chunk for chunk in response2]
    assert [c.choices[0].delta.content for c in first] != [] and fake.calls[
        "chat/completions"] == 1
    assert "".join(c.choices[0].delta.content or "" for c in second) == \
        "".join(c.choices[0].delta.content or "" for c in first)


def test_usage_embedding(fake, kw):
    from semcache import embedding
    from semcache.caching import Cache
    semcache.cache = Cache()

    embedding1 = embedding(model="text-embedding-ada-002", input=["hello from litellm" * 5],
                           caching=True, **kw)
    embedding2 = embedding(model="text-embedding-ada-002", input=["hello from litellm" * 5],
                           caching=True, **kw)
    assert embedding2.data[0].embedding == embedding1.data[0].embedding
    assert fake.calls["embeddings"] == 1


def test_cache_mode_opt_in(fake, kw):
    from semcache import completion
    from semcache.caching.caching import Cache, CacheMode
    semcache.cache = Cache(mode=CacheMode.default_off)
    for _ in range(2):
        response = completion(model="gpt-3.5-turbo",
                              messages=[{"role": "user", "content": "hi"}],
                              cache={"use-cache": True}, **kw)
    assert response._hidden_params["cache_hit"] is True


def test_enable_and_disable_cache(fake, kw):
    semcache.enable_cache()
    for _ in range(2):
        r = semcache.completion(model="m", messages=[{"role": "user", "content": "x"}], **kw)
    assert r._hidden_params["cache_hit"] is True
    semcache.disable_cache()
    r = semcache.completion(model="m", messages=[{"role": "user", "content": "x"}], **kw)
    assert r._hidden_params["cache_hit"] is False and fake.calls["chat/completions"] == 2


def test_a_response_is_not_equal_to_what_is_not_a_response():
    """pydantic answers NotImplemented for a non-model, and bool(NotImplemented) is True:
    a response compared equal to None, a str or a number."""
    r = semcache.completion(model="gpt-4o-mini", mock_response="hi",
                            messages=[{"role": "user", "content": "x"}])
    assert not (r == None)  # noqa: E711  (the comparison under test)
    assert r != "CANCELLED" and r != 42 and not (r == "x")
    assert r == r.model_copy()
