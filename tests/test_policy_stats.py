"""The one Wilson interval (semcache/policies/_stats.py) against its definition."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semcache.policies._stats import wilson_interval

#: the brute force's grid of candidate proportions
GRID = np.linspace(0.0, 1.0, 200_001)


def brute_force(k: int, n: int, z: float) -> tuple[float, float]:
    """The interval by definition: every proportion p0 that the score test at z does
    not reject for k successes in n trials (|k/n - p0| <= z * sqrt(p0 (1 - p0) / n)),
    found by trying every p0 of a fine grid."""
    ok = np.abs(k / n - GRID) <= z * np.sqrt(GRID * (1 - GRID) / n)
    kept = GRID[ok]
    return float(kept.min()), float(kept.max())


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 5000), data=st.data(), z=st.floats(0.5, 3.5))
def test_the_interval_is_what_the_score_test_keeps(n, data, z):
    k = data.draw(st.integers(0, n))
    lo, hi = wilson_interval(k / n, n, z)
    blo, bhi = brute_force(k, n, z)
    # the grid finds each end to within a step; a grid point exactly on an end (0.8 at
    # n=1, z=2) may fall either side of the test's equality in floating point
    step = 2 * GRID[1]
    assert lo == pytest.approx(blo, abs=step) and hi == pytest.approx(bhi, abs=step)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_known_values():
    # none (all) of n: the bound has the closed form z^2 / (n + z^2) (n / (n + z^2))
    z = 1.96
    assert wilson_interval(0.0, 10) == pytest.approx((0.0, z * z / (10 + z * z)))
    assert wilson_interval(1.0, 10) == pytest.approx((10 / (10 + z * z), 1.0))
    # 50 of 100: the textbook example, 0.4038 to 0.5962
    assert wilson_interval(0.5, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    # no trials say nothing
    assert wilson_interval(0.0, 0) == (0.0, 1.0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 1000)), min_size=1,
                max_size=20))
def test_arrays_give_the_scalar_intervals(rows):
    """The vectorised form (the running error of a replay) is the scalar one, row by
    row, n == 0 included."""
    k = np.array([min(a, b) for a, b in rows], float)
    n = np.array([max(a, b) for a, b in rows], float)
    p = np.divide(k, n, out=np.zeros_like(k), where=n > 0)
    lo, hi = wilson_interval(p, n)
    assert isinstance(lo, np.ndarray) and lo.shape == p.shape
    for i in range(len(rows)):
        assert (lo[i], hi[i]) == wilson_interval(float(p[i]), float(n[i]))
