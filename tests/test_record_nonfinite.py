"""NaN and Infinity in an answer to cache: refused when stored, never served back as None.

orjson (the record codec's encoder) writes NaN and +-Infinity as ``null`` and has no
option to refuse them (ijl/orjson#441), so ``{"score": nan}`` was stored and served as
``{"score": None}``. The codec now refuses such a value with ``InvalidRequestError``, as
it refuses an integer too large for 64 bits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semcache import Cache, InvalidRequestError
from semcache._record import Record, RecordCodec

REQ = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
#: a chat answer as ``to_jsonable`` gives it: with the nulls the API sends
CHAT = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
        "model": "gpt-4o-mini", "system_fingerprint": None,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "refusal": None,
                                 "content": "The capital of France is Paris. " * 12}}],
        "usage": {"prompt_tokens": 14, "completion_tokens": 90, "total_tokens": 104}}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["top", "list", "nested"])
def test_a_non_finite_number_is_refused_not_served_as_none(bad, where):
    value = {"top": {"score": bad}, "list": {"v": [1.0, bad]},
             "nested": {**CHAT, "usage": {"logprob": [[None, {"x": bad}]]}}}[where]
    c = Cache(type="local")
    with pytest.raises(InvalidRequestError, match="NaN or Infinity"):
        c.add_cache(value, **REQ)
    assert c.get_cache(**REQ) is None  # nothing was stored
    with pytest.raises(InvalidRequestError, match="NaN or Infinity"):
        asyncio.run(c.async_add_cache(value, **REQ))


def test_a_null_is_still_a_null_and_a_signed_cache_refuses_too():
    c = Cache(type="local")
    c.add_cache({"score": None, "v": [1.0, None], **CHAT}, **REQ)
    assert c.get_cache(**REQ) == {"score": None, "v": [1.0, None], **CHAT}
    signed = Cache(type="local", signing_key="k" * 32)
    with pytest.raises(InvalidRequestError, match="NaN or Infinity"):
        signed.add_cache({"score": None, "nan": math.nan}, **REQ)


@dataclasses.dataclass
class Point:
    x: float
    at: dt.date | None = None


def test_values_orjson_serialises_natively_are_checked_too():
    codec = RecordCodec()
    rec = Record("ns:k", {"p": Point(math.nan)}, 0.0, None, "completion")
    with pytest.raises(InvalidRequestError, match="NaN or Infinity"):
        codec.encode(rec)
    # a date, a None and a dataclass without NaN pass (the stdlib check does not trip on
    # the types only orjson knows)
    ok = Record("ns:k", {"p": Point(1.5, dt.date(2024, 1, 1)), "n": None}, 0.0, None,
                "completion")
    assert codec.decode(codec.encode(ok)).value == {"p": {"x": 1.5, "at": "2024-01-01"},
                                                    "n": None}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.text(max_size=8)
    | st.floats(allow_nan=True, allow_infinity=True),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                               max_size=4),
    max_leaves=12)


def _finite(v: Any) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, list):
        return all(_finite(x) for x in v)
    if isinstance(v, dict):
        return all(_finite(x) for x in v.values())
    return True


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_any_value_round_trips_exactly_or_is_refused(value):
    codec = RecordCodec()
    rec = Record("ns:k", value, 0.0, None, "completion")
    if _finite(value):
        assert codec.decode(codec.encode(rec)).value == value
    else:
        with pytest.raises(InvalidRequestError, match="NaN or Infinity"):
            codec.encode(rec)
