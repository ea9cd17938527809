"""``/v1/embeddings`` and a stored value the proxy did not write. Its per-item entries
are shared with the library, whose ``add_cache`` stores any JSON, and with any process
that reaches the backend: what is not one item's embeddings answer is a logged miss
counted in the stats (the item goes upstream, the fresh row replaces the entry), never
a 500 and never served as a malformed 200, as a chat hit's is."""

from __future__ import annotations

import base64
import json
import logging
import struct
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from semcache import Cache
from semcache_testing.fake_openai import FakeOpenAI, fake_embedding

from .proxy_helpers import master, stats
from .test_embedding_stored_values import _JSON, _NEAR, _VALID, MALFORMED, ROW

EMB = "embeddings"
DIM = 8


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as f:
        yield f


def post(proxy, inp, **extra) -> httpx.Response:
    return httpx.post(proxy.url + "/v1/embeddings", headers=master(),
                      json={"model": "embed", "input": inp, "dimensions": DIM, **extra})


class Planted:
    """A proxy on a shared local cache, and the stored record of one item ("hello"),
    whose value a test replaces with raw JSON text (any JSON another writer may store)."""

    def __init__(self, proxies, **extra) -> None:
        self.cache = Cache(type="local")
        self.proxy = proxies.start(cache=self.cache)
        self.extra = extra
        r = post(self.proxy, "hello", **extra)
        assert r.status_code == 200, r.text
        self.key = unquote(r.headers["x-semcache-key"])
        self.record = json.loads(self.cache.store.get(self.key))

    def plant(self, raw: bytes) -> None:
        rec = json.dumps({**self.record, "value": "@@"}).encode()
        self.cache.store.set(self.key, rec.replace(b'"@@"', raw))

    def post(self, inp) -> httpx.Response:
        return post(self.proxy, inp, **self.extra)


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


#: the library's cases, and values only raw JSON text can hold
RAW = {**{case: json.dumps(v).encode() for case, v in MALFORMED.items()},
       "a row field nested deeper than the encoder takes": json.dumps(
           {"data": [{**ROW, "x": "@@"}]}).encode().replace(b'"@@"', _deep(400)),
       "model nested deeper than the encoder takes": json.dumps(
           {"data": [ROW], "model": "@@"}).encode().replace(b'"@@"', _deep(400))}


@pytest.mark.parametrize("case", RAW)
def test_a_malformed_stored_item_is_a_counted_miss_not_a_500(proxies, fake, case, caplog):
    p = Planted(proxies)
    assert post(p.proxy, "world").status_code == 200  # a well-formed entry beside it
    fresh = fake_embedding("hello", DIM)
    for inp, stage in (("hello", "miss"), (["hello", "world"], "partial")):
        p.plant(RAW[case])
        calls, before = fake.calls[EMB], stats(p.proxy)["by_stage"].get(stage, 0)
        with caplog.at_level(logging.WARNING, logger="semcache.proxy"):
            r = p.post(inp)
        assert r.status_code == 200, (case, r.text[:200])
        assert r.headers["x-semcache-stage"] == stage, case
        assert fake.calls[EMB] == calls + 1, case  # asked upstream, for that item only
        assert fake.requests[-1]["body"]["input"] in ("hello", ["hello"]), case
        data = r.json()["data"]
        assert [d["index"] for d in data] == list(range(len(data))), case
        assert data[0]["embedding"] == pytest.approx(fresh, abs=1e-6), case
        assert b"planted" not in r.content, case
        assert stats(p.proxy)["by_stage"][stage] == before + 1, case  # counted
        assert "not an embeddings answer" in caplog.text, case  # logged
        caplog.clear()
        again = p.post("hello")  # the fresh row replaced the planted entry
        assert again.headers["x-semcache-stage"] == "exact", case
        assert again.json()["data"][0]["embedding"] == data[0]["embedding"], case


def test_a_well_formed_stored_item_is_served_unchanged(proxies, fake):
    p = Planted(proxies)
    row = {**ROW, "extra": "kept"}
    p.plant(json.dumps({"object": "list", "model": "m-1", "data": [row],
                        "usage": {"prompt_tokens": 3, "total_tokens": 3}}).encode())
    calls = fake.calls[EMB]
    r = p.post("hello")
    assert r.headers["x-semcache-stage"] == "exact" and fake.calls[EMB] == calls
    assert r.json() == {"object": "list", "model": "m-1", "data": [row],
                        "usage": {"prompt_tokens": 3, "total_tokens": 3}}
    p.plant(json.dumps({"data": [{"embedding": [1, 2.5]}]}).encode())  # add_cache's rows
    r = p.post(["world", "hello"])
    assert r.headers["x-semcache-stage"] == "partial"
    assert r.json()["data"][1] == {"embedding": [1, 2.5], "index": 1}


def test_base64_rows_are_checked(proxies, fake):
    p = Planted(proxies, encoding_format="base64")
    good = base64.b64encode(struct.pack("<2f", 0.5, -0.25)).decode()
    p.plant(json.dumps({"data": [{"embedding": good}]}).encode())
    r = p.post("hello")
    assert r.headers["x-semcache-stage"] == "exact"
    assert r.json()["data"][0]["embedding"] == good
    nan = base64.b64encode(struct.pack("<f", float("nan"))).decode()
    for bad in ("abc", "!!!!", base64.b64encode(b"abc").decode(), nan, ""):
        p.plant(json.dumps({"data": [{"embedding": bad}]}).encode())
        r = p.post("hello")
        assert r.status_code == 200 and r.headers["x-semcache-stage"] == "miss", bad
        assert r.json()["data"][0]["embedding"] != bad, bad


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_stored_value_is_served_well_formed_or_goes_upstream(proxies, fake, data):
    """Whatever JSON sits under an item's key, the proxy answers 200 with one vector of
    numbers per item: the stored one (no upstream call for it) or a fresh one."""
    if not hasattr(proxies, "planted"):  # one proxy for every example
        proxies.planted = Planted(proxies)
    p = proxies.planted
    value = data.draw(_VALID | _NEAR | _JSON, label="stored value")
    batch = data.draw(st.booleans(), label="batch")
    p.plant(json.dumps(value).encode())
    calls = fake.calls[EMB]
    r = p.post(["hello", "world"] if batch else "hello")
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    n = 2 if batch else 1
    assert [d["index"] for d in body["data"]] == list(range(n))
    for d in body["data"]:
        assert isinstance(d["embedding"], list) and d["embedding"]
        assert all(type(x) in (int, float) for x in d["embedding"])
    asked = fake.calls[EMB] > calls and "hello" in fake.requests[-1]["body"]["input"]
    event("went upstream" if asked else "served from the cache")
    if asked:
        assert body["data"][0]["embedding"] == pytest.approx(fake_embedding("hello", DIM),
                                                             abs=1e-6)
    else:
        assert r.headers["x-semcache-stage"] in ("exact", "partial")
        assert body["data"][0]["embedding"] == value["data"][0]["embedding"]


@pytest.mark.parametrize("case", ["an embedding of strings", "an error object",
                                  "a row without embedding", "an embedding of nulls "
                                  "(NaN written as JSON)"])
def test_a_request_naming_its_own_cache_key_checks_the_stored_answer_too(proxies, fake, case):
    """A granted ``cache_key`` names one entry for the whole request (not per item): its
    stored value gets the same check, so a planted row of strings is not served."""
    p = Planted(proxies, cache_key="my-embeddings")
    assert p.post("hello").headers["x-semcache-stage"] == "exact"
    p.plant(json.dumps(MALFORMED[case]).encode())
    calls = fake.calls[EMB]
    r = p.post("hello")
    assert r.status_code == 200 and r.headers["x-semcache-stage"] == "miss", r.text[:200]
    assert fake.calls[EMB] == calls + 1
    assert r.json()["data"][0]["embedding"] == pytest.approx(fake_embedding("hello", DIM),
                                                              abs=1e-6)
