"""``Observation.from_json``: what the index adapters read back from a stored entry.
Another writer may have stored anything there; only what ``to_json`` writes (and the
JSON bool form of ``correct``) is an observation, the rest raises TypeError or
ValueError so the adapter skips or repairs it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semcache.indexes.base import Observation

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.floats(allow_nan=True)
    | st.text(max_size=5),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=3), kids,
                                                             max_size=3),
    max_leaves=10)


@given(st.floats(-1.0, 1.0), st.booleans(), st.none() | st.text(max_size=16))
def test_what_to_json_writes_reads_back(sim, correct, query):
    o = Observation(sim, correct, query)
    back = Observation.from_json(o.to_json())
    assert back == Observation(round(sim, 6), correct, query)


@pytest.mark.parametrize("correct", [7, -1, 0.5, "no", "false", {"x": 1}, [], None, 2.0])
def test_a_correct_that_is_not_0_1_or_a_bool_is_malformed(correct):
    """bool(v) read "no" or a dict as "the answer was right": the policy then learned
    that a wrong answer was right. Now the observation is malformed."""
    with pytest.raises(ValueError, match="malformed observation"):
        Observation.from_json([0.8, correct, None])


@pytest.mark.parametrize(("correct", "want"), [(0, False), (1, True), (True, True),
                                               (False, False), (1.0, True), (0.0, False)])
def test_0_1_and_bools_are_read(correct, want):
    assert Observation.from_json([0.8, correct, "q"]).correct is want


@given(JSONISH)
def test_anything_stored_reads_as_an_observation_or_raises_type_or_value_error(v):
    try:
        o = Observation.from_json(v)
    except (TypeError, ValueError):
        return
    assert isinstance(v, list) and v[1] in (0, 1) and type(v[1]) in (int, bool, float)
    assert o.correct is bool(v[1])
