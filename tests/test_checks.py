"""``check_rate`` (semcache/_checks.py) is the one check of an error rate: the verified
policy (a seam, which cannot import the core's config) and the per-request controls
(the core) reject the same values with an error naming the parameter (issue #19)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semcache import ConfigError, Controls
from semcache._checks import check_rate
from semcache.policies import VerifiedPolicy

NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(-3, 3), st.booleans(), st.none(), st.text(max_size=3))


def valid(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and 0 < value < 1)


@given(NUMBERS)
def test_policy_and_request_controls_agree_on_a_rate(value: Any) -> None:
    if valid(value):
        assert check_rate(value) == float(value)
        assert VerifiedPolicy(value).target_error_rate == float(value)
        got = Controls.parse({"target_error_rate": value}).target_error_rate
        assert got == float(value)
        return
    with pytest.raises(ConfigError, match="target_error_rate") as policy_error:
        VerifiedPolicy(value)
    with pytest.raises(ConfigError, match="target_error_rate") as request_error:
        Controls.parse({"target_error_rate": value})
    assert policy_error.value.parameter == "target_error_rate"
    assert request_error.value.parameter == "cache['target_error_rate']"


@pytest.mark.parametrize("edge", [0, 0.0, 1, 1.0])
def test_the_ends_bound_nothing(edge: float) -> None:
    # 0 would serve nothing and 1 anything: neither is an error bound
    with pytest.raises(ConfigError, match=r"\(0, 1\)"):
        VerifiedPolicy(edge)


TTLS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                 st.booleans(), st.none(), st.text(max_size=3), st.binary(max_size=2))


@given(TTLS)
def test_store_ttl_takes_none_zero_and_seconds_up_to_max_ttl(value: Any) -> None:
    """Every ExactStore applies check_store_ttl: None, or a finite non-bool number in
    [0, MAX_TTL] passes as a float; anything else is a ConfigError naming ttl."""
    from semcache._checks import MAX_TTL, check_store_ttl

    if value is None:
        assert check_store_ttl(value) is None
    elif (isinstance(value, (int, float)) and not isinstance(value, bool)
          and 0 <= value <= MAX_TTL):  # NaN and the infinities fail the range
        assert check_store_ttl(value) == float(value)
    else:
        with pytest.raises(ConfigError, match="ttl") as info:
            check_store_ttl(value)
        assert info.value.parameter == "ttl"
