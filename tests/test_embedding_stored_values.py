"""``semcache.embedding()`` and a stored value it did not write: every entry read back
from a cache is a client's input. What is not an embeddings answer (``add_cache`` with
another shape, an older version, a process with access to the backend) is a logged miss
that goes upstream, whose fresh answer replaces it; never an AttributeError out of the
call. An empty ``input`` is the caller's error, named before any upstream call."""

# The shared fixtures are imported from tests/calls_support.py; test parameters of the
# same name are pytest's injection, not redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import base64
import logging
import struct

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import semcache
from semcache import Cache, InvalidRequestError
from semcache_testing.fake_openai import fake_embedding
from tests.calls_support import api, fake, fake_server, kw  # noqa: F401

EMB = "embeddings"
MODEL = "text-embedding-3-small"
DIM = 8
ROW = {"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}

#: stored values no semcache writer produces under one item's key: each must be a miss
MALFORMED = {
    "a list": [1, 2],
    "a string": "abc",
    "no data": {"object": "list"},
    "data of numbers": {"data": [1]},
    "data of strings": {"data": ["x"]},
    "empty data": {"data": []},
    "two rows for one item": {"data": [ROW, {**ROW, "index": 1}]},
    "a row without embedding": {"data": [{"foo": 1}]},
    "an empty row": {"data": [{}]},
    "an empty embedding": {"data": [{"embedding": []}]},
    "an embedding of strings": {"data": [{"embedding": ["1.0"]}]},
    "an embedding of bools": {"data": [{"embedding": [True, False]}]},
    "an embedding of nulls (NaN written as JSON)": {"data": [{"embedding": [None]}]},
    "a nested embedding": {"data": [{"embedding": [[1.0]]}]},
    "a str embedding the request did not ask for": {"data": [{"embedding": "AACAPw=="}]},
    "index is a string": {"data": [{"embedding": [1.0], "index": "z"}]},
    "index is another item's": {"data": [{"embedding": [1.0], "index": 3}]},
    "object is not embedding": {"data": [{"embedding": [1.0], "object": 5}]},
    "usage is a number": {"data": [ROW], "usage": 5},
    "usage is a list": {"data": [ROW], "usage": [None]},
    "prompt_tokens is a string": {"data": [ROW], "usage": {"prompt_tokens": "x"}},
    "prompt_tokens is negative": {"data": [ROW], "usage": {"prompt_tokens": -1}},
    "total_tokens is a bool": {"data": [ROW], "usage": {"total_tokens": True}},
    "total_tokens is beyond any count": {"data": [ROW], "usage": {"total_tokens": 2**60}},
    "model is a number": {"data": [ROW], "model": 5},
    "an error object": {"error": {"message": "planted"}, "data": [ROW]},
}


def _req(kw, inp, **extra):
    return {"model": MODEL, "input": inp, "dimensions": DIM, **kw, **extra}


def _plant(value, kw, item="hello", **extra) -> Cache:
    """A cache holding ``value`` under ``item``'s key (the request with ``input=[item]``),
    as ``semcache.cache``."""
    semcache.cache = c = Cache()
    c.add_cache(value, call_type="embedding", **_req(kw, [item], **extra))
    return c


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_stored_item_is_a_miss_that_goes_upstream(api, fake, kw, case, caplog):
    for inp in ("hello", ["hello", "world"]):
        _plant(MALFORMED[case], kw)
        calls = fake.calls[EMB]
        with caplog.at_level(logging.WARNING, logger="semcache"):
            r = api.embedding(**_req(kw, inp))
        assert fake.calls[EMB] == calls + 1, case  # asked upstream
        assert fake.requests[-1]["body"]["input"] in (inp, [inp], ["hello", "world"]), case
        assert [d.index for d in r.data] == list(range(len(r.data))), case
        assert r.data[0].embedding == pytest.approx(fake_embedding("hello", DIM), abs=1e-6)
        assert r._hidden_params["cache_hit"] is False and r._hidden_params["cache_hits"] == 0
        assert r.usage.prompt_tokens > 0, case
        assert "not an embeddings answer" in caplog.text, case  # logged
        caplog.clear()
        # the fresh answer replaced the planted entry: the repeat is a hit
        again = api.embedding(**_req(kw, "hello"))
        assert again._hidden_params["cache_hit"] is True, case
        assert fake.calls[EMB] == calls + 1, case


def test_a_stored_entry_without_usage_or_model_is_served(api, fake, kw):
    """What a caller's ``add_cache`` writes (rows only) is an answer: usage counts zero,
    as an upstream that reports none does, and the model is the request's."""
    _plant({"data": [{"embedding": [1.0, 2.0]}]}, kw)
    r = api.embedding(**_req(kw, "hello"))
    assert fake.calls[EMB] == 0
    assert r._hidden_params["cache_hit"] is True
    assert r.data[0].embedding == [1.0, 2.0] and r.data[0].index == 0
    assert r.usage.prompt_tokens == r.usage.total_tokens == 0
    assert r.model == MODEL
    both = api.embedding(**_req(kw, ["world", "hello"]))  # reassembled with a fresh row
    assert fake.calls[EMB] == 1 and fake.requests[-1]["body"]["input"] == ["world"]
    assert both.data[1].embedding == [1.0, 2.0] and both.usage.prompt_tokens == 1


def test_a_well_formed_stored_entry_is_served_unchanged(api, fake, kw):
    stored = {"object": "list", "model": "m-1", "data": [{**ROW, "extra": "kept"}],
              "usage": {"prompt_tokens": 3, "total_tokens": 3}}
    _plant(stored, kw)
    r = api.embedding(**_req(kw, "hello"))
    assert fake.calls[EMB] == 0
    assert r.data[0].embedding == [0.5, -0.25] and r.data[0].extra == "kept"
    assert (r.model, r.usage.prompt_tokens, r.usage.total_tokens) == ("m-1", 3, 3)


def test_base64_rows_are_checked_and_served_to_a_base64_request(api, fake, kw):
    good = base64.b64encode(struct.pack("<2f", 0.5, -0.25)).decode()
    _plant({"data": [{"embedding": good}]}, kw, encoding_format="base64")
    r = api.embedding(**_req(kw, "hello", encoding_format="base64"))
    assert fake.calls[EMB] == 0 and r.data[0].embedding == good
    not_float32s = base64.b64encode(b"abc").decode()  # 3 bytes: no float32 vector
    nan = base64.b64encode(struct.pack("<f", float("nan"))).decode()
    for bad in ("abc", "!!!!", not_float32s, nan, ""):
        _plant({"data": [{"embedding": bad}]}, kw, encoding_format="base64")
        r = api.embedding(**_req(kw, "hello", encoding_format="base64"))
        assert r.data[0].embedding != bad and r._hidden_params["cache_hit"] is False, bad


def test_a_batch_under_a_custom_key_checks_every_stored_row(api, fake, kw):
    """A batch under a caller's key is one entry: a bad row in it is a miss too."""
    for bad in ({"data": [ROW, 1]}, {"data": [ROW, {"embedding": "x", "index": 1}]},
                {"data": [ROW, {**ROW, "index": 0}]}, {"data": [ROW, ROW], "usage": [1]}):
        semcache.cache = c = Cache()
        c.add_cache(bad, call_type="embedding", **_req(kw, ["a", "b"]), cache_key="mine")
        calls = fake.calls[EMB]
        r = api.embedding(**_req(kw, ["a", "b"]), cache_key="mine")
        assert fake.calls[EMB] == calls + 1, bad
        assert r._hidden_params["cache_hit"] is False, bad
        assert [d.index for d in r.data] == [0, 1], bad
    good = {"data": [ROW, {**ROW, "index": 1, "embedding": [1.0]}]}
    semcache.cache = c = Cache()
    c.add_cache(good, call_type="embedding", **_req(kw, ["a", "b"]), cache_key="mine")
    r = api.embedding(**_req(kw, ["a", "b"]), cache_key="mine")
    assert r._hidden_params["cache_hit"] is True
    assert [d.embedding for d in r.data] == [[0.5, -0.25], [1.0]]
    assert r.usage.prompt_tokens == 0


@pytest.mark.parametrize("cached", [False, True])
def test_an_empty_input_list_is_the_callers_error(api, fake, kw, cached):
    semcache.cache = Cache() if cached else None
    with pytest.raises(InvalidRequestError, match="input"):
        api.embedding(**_req(kw, []))
    assert fake.calls[EMB] == 0


#: any JSON value, and values close to an answer (where a check is easiest to miss)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["data", "embedding", "index", "usage",
                                       "prompt_tokens", "total_tokens", "model",
                                       "object", "error", "x"]), inner, max_size=5),
    max_leaves=20)
_ROWS = st.fixed_dictionaries(
    {"embedding": st.lists(st.floats(-1, 1), min_size=1, max_size=4) | _JSON},
    optional={"index": st.sampled_from([0, 1, "0", None, True]) | _JSON,
              "object": st.sampled_from(["embedding", "list"]), "x": _JSON})
_NEAR = st.fixed_dictionaries(
    {"data": st.lists(_ROWS | _JSON, min_size=0, max_size=2)},
    optional={"usage": st.fixed_dictionaries(
        {}, optional={"prompt_tokens": st.integers(-1, 10) | _JSON,
                      "total_tokens": st.integers(-1, 10) | _JSON}) | _JSON,
        "model": st.text(max_size=4) | _JSON, "error": _JSON, "object": _JSON})
_VALID = st.fixed_dictionaries(
    {"data": st.tuples(st.fixed_dictionaries(
        {"embedding": st.lists(st.floats(-1, 1) | st.integers(-9, 9), min_size=1,
                               max_size=4)},
        optional={"index": st.just(0), "object": st.just("embedding"),
                  "x": st.text(max_size=3)})).map(list)},
    optional={"usage": st.fixed_dictionaries({}, optional={
        "prompt_tokens": st.integers(0, 9), "total_tokens": st.integers(0, 9)}),
        "model": st.text(max_size=4), "object": st.just("list")})


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_VALID | _NEAR | _JSON, batch=st.booleans())
def test_any_stored_value_is_served_well_formed_or_goes_upstream(fake, kw, value, batch):
    """Whatever JSON sits under an item's key, ``embedding()`` answers with one vector
    of numbers per item: the stored one (then no upstream call for it) or a fresh one."""
    inp = ["hello", "world"] if batch else "hello"
    c = Cache()
    try:
        c.add_cache(value, call_type="embedding", **_req(kw, ["hello"]))
    except Exception:  # noqa: BLE001 - a value add_cache refuses to store: nothing to read
        return
    semcache.cache = c
    calls = fake.calls[EMB]
    r = semcache.embedding(**_req(kw, inp))
    n = 2 if batch else 1
    assert len(r.data) == n and [d.index for d in r.data] == list(range(n))
    for d in r.data:
        assert isinstance(d.embedding, list) and d.embedding
        assert all(type(x) in (int, float) for x in d.embedding)
    assert isinstance(r.usage.prompt_tokens, int) and isinstance(r.usage.total_tokens, int)
    assert isinstance(r.model, str)
    event("served from the cache" if r._hidden_params["cache_hits"] else "went upstream")
    if r._hidden_params["cache_hits"] == 0:
        assert fake.calls[EMB] == calls + 1  # the planted item went upstream
        assert r.data[0].embedding == pytest.approx(fake_embedding("hello", DIM), abs=1e-6)
    else:
        assert r.data[0].embedding == value["data"][0]["embedding"]
