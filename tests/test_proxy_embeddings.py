"""``/v1/embeddings`` in the proxy is cached per input item and shares its entries with
the library's ``semcache.embedding()`` (issue #22)."""

from __future__ import annotations

import httpx
import pytest

import semcache
from semcache_testing.fake_openai import FakeOpenAI

from .proxy_helpers import master

EMB = "embeddings"


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as f:
        yield f


def embed(proxy, inp, **extra) -> httpx.Response:
    r = httpx.post(proxy.url + "/v1/embeddings", headers=master(),
                   json={"model": "embed", "input": inp, **extra})
    assert r.status_code == 200, r.text
    return r


def vectors(r: httpx.Response) -> list[list[float]]:
    data = r.json()["data"]
    assert [d["index"] for d in data] == list(range(len(data)))
    return [d["embedding"] for d in data]


def test_items_of_a_batch_are_cached_one_by_one(proxies, fake):
    p = proxies.start()
    both = embed(p, ["apple", "banana"])
    assert both.headers["x-semcache-stage"] == "miss" and fake.calls[EMB] == 1
    apple, banana = vectors(both)
    one = embed(p, ["apple"])  # before: a miss (the whole batch was the key)
    assert one.headers["x-semcache-stage"] == "exact" and fake.calls[EMB] == 1
    assert vectors(one) == [apple]
    assert embed(p, "banana").headers["x-semcache-stage"] == "exact"
    mixed = embed(p, ["cherry", "banana", "apple"])
    assert mixed.headers["x-semcache-stage"] == "partial" and fake.calls[EMB] == 2
    assert fake.requests[-1]["body"]["input"] == ["cherry"]  # only the missing item
    cherry, b2, a2 = vectors(mixed)
    assert (b2, a2) == (banana, apple)
    assert mixed.json()["usage"]["prompt_tokens"] > 0
    assert vectors(embed(p, "cherry")) == [cherry] and fake.calls[EMB] == 2


def test_proxy_and_library_share_entries(proxies, fake):
    p = proxies.start()
    vec = vectors(embed(p, ["shared apple", "shared banana"]))
    old = semcache.cache
    semcache.cache = p.state.cache
    try:
        r = semcache.embedding(model="embed", input=["shared banana"],
                               api_base=fake.base_url, api_key="sk")
        assert r._hidden_params["cache_hit"] is True and fake.calls[EMB] == 1
        assert r.data[0].embedding == vec[1]
        semcache.embedding(model="embed", input=["from the library"],
                           api_base=fake.base_url, api_key="sk")
    finally:
        semcache.cache = old
    assert fake.calls[EMB] == 2
    assert embed(p, "from the library").headers["x-semcache-stage"] == "exact"
    assert fake.calls[EMB] == 2


def test_an_upstream_error_is_relayed_and_nothing_is_stored(proxies, fake):
    p = proxies.start()
    embed(p, ["kept"])
    bad = httpx.post(p.url + "/v1/embeddings", headers=master(),
                     json={"model": "limited", "input": ["kept", "new"]})
    assert bad.status_code == 429
    assert embed(p, ["new"]).headers["x-semcache-stage"] == "miss"
