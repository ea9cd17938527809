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
from hypothesis import given, settings
from hypothesis import strategies as st

from semcache import ConfigError, Controls
from semcache._config import _CONTROL_NAMES

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
    assert getattr(c, _CONTROL_NAMES[name]) is not None or value is None


@pytest.mark.parametrize("name", ["ttl", "s-maxage", "similarity_threshold",
                                  "target_error_rate"])
@pytest.mark.parametrize("value", [HUGE, -HUGE])
def test_an_int_too_large_for_a_float_is_a_config_error(name: str, value: int) -> None:
    with pytest.raises(ConfigError, match=name) as e:
        Controls.parse({name: value})
    assert e.value.parameter == f"cache[{name!r}]"
