"""TTL edge values through the public API on the exact stores: each is a ConfigError,
or a documented behaviour (0: store nothing; None in ``cache=``: never expire), never a
crash and never an entry that lives forever by accident."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semcache import Cache, ConfigError
from semcache._config import MAX_TTL

EDGES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(10**30),
                                                                 max_value=10**400),
    st.booleans(), st.text(max_size=5), st.sampled_from([0, -0.0, 1e-9, MAX_TTL,
                                                         MAX_TTL + 1, 10**400]))


def ask(q: str) -> dict:
    return dict(model="m", messages=[{"role": "user", "content": q}])


@pytest.fixture(params=["local", "redis"])
def cache(request):
    if request.param == "local":
        c = Cache(type="local")
    else:
        c = Cache(type="redis", redis_url=request.getfixturevalue("redis_stack_url"),
                  namespace="ttl" + uuid.uuid4().hex[:8])
    yield c
    c.flush()
    c.close()


def check(c: Cache, ttl: object, how: str) -> None:
    q = f"{how}{ttl!r}{uuid.uuid4().hex}"
    kw = {"ttl": ttl} if how == "kw" else {"cache": {"ttl": ttl}}
    valid = (isinstance(ttl, (int, float)) and not isinstance(ttl, bool)
             and (ttl == 0 or 0 < ttl <= MAX_TTL))  # (NaN fails both comparisons)
    if not valid:
        with pytest.raises(ConfigError) as info:
            c.add_cache({"a": 1}, **ask(q), **kw)
        assert info.value.parameter in ("ttl", "cache['ttl']")
        return
    key = c.add_cache({"a": 1}, **ask(q), **kw)
    if ttl == 0:  # LiteLLM's "expire at once": nothing stored
        assert key is None and c.lookup(**ask(q)) is None
        return
    raw = c.store.get(key)  # (may have expired already: a TTL of microseconds)
    rec = None if raw is None else c._codec.decode(raw)
    assert rec is None or rec.expires_at is not None  # a TTL given: never "forever"


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ttl=EDGES, how=st.sampled_from(["kw", "cache"]))
def test_ttl_edges_are_refused_or_bounded(cache, ttl, how) -> None:
    check(cache, ttl, how)


def test_request_ttl_none_in_cache_controls_means_never_expire() -> None:
    c = Cache(type="local", ttl=60)
    key = c.add_cache({"a": 1}, cache={"ttl": None}, **ask("q"))
    assert c._codec.decode(c.store.get(key)).expires_at is None
    c.close()
