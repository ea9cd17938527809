from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from semcache import InvalidRequestError
from semcache.eval import roc_auc, sweep

SIMS = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
LABELS = np.array([1, 1, 0, 1, 0, 0])


def test_counts_at_thresholds_are_inclusive_like_the_cache():
    s = sweep(SIMS, LABELS, np.array([0.5, 0.8, 0.85, 1.0]))
    assert s.tp.tolist() == [3, 2, 2, 0]
    assert s.fp.tolist() == [3, 1, 0, 0]
    assert s.fn.tolist() == [0, 1, 1, 3]
    assert s.tn.tolist() == [0, 2, 3, 3]
    np.testing.assert_allclose(s.precision[:3], [0.5, 2 / 3, 1.0])
    assert np.isnan(s.precision[3])  # nothing served: precision undefined, not 0 or 1
    np.testing.assert_allclose(s.recall, [1.0, 2 / 3, 2 / 3, 0.0])
    np.testing.assert_allclose(s.false_hit_rate, [1.0, 1 / 3, 0.0, 0.0])
    np.testing.assert_allclose(s.f1, [2 * 3 / (6 + 3), 2 * 2 / (4 + 1 + 1), 2 * 2 / (4 + 1), 0])


def test_best_f1_and_target_precision():
    s = sweep(SIMS, LABELS)  # every distinct similarity
    t, f1 = s.best_f1()
    assert (t, round(f1, 4)) == (0.7, round(2 * 3 / (6 + 1), 4))
    assert s.threshold_for_precision(1.0) == 0.9
    assert s.threshold_for_precision(0.75) == 0.9  # 0.7 has 3/4, but 0.8 only 2/3
    assert s.threshold_for_precision(2 / 3) == 0.7
    assert s.threshold_for_precision(0.7, min_hits=10) is None  # too little evidence


def test_target_precision_must_hold_at_every_higher_threshold():
    # precision is 3/5 at 0.5 but dips to 1/2 at 0.8 and 1/3 at 0.7: 0.5 is not a
    # threshold to ship for a 0.6 target, although its own precision reaches it
    sims = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    labels = np.array([1, 0, 0, 1, 1])
    s = sweep(sims, labels, np.array([0.5, 0.6, 0.7, 0.8, 0.9]))
    np.testing.assert_allclose(s.precision, [0.6, 0.5, 1 / 3, 0.5, 1.0])
    assert s.threshold_for_precision(0.6) == 0.9
    assert s.threshold_for_precision(0.5) == 0.8


def test_roc_auc_known_value_with_ties():
    assert roc_auc(np.array([0.9, 0.7, 0.8, 0.6]), np.array([1, 1, 0, 0])) == 0.75
    assert roc_auc(np.array([0.5, 0.5]), np.array([1, 0])) == 0.5
    assert np.isnan(roc_auc(np.array([0.5]), np.array([1])))


def test_bad_input_is_rejected():
    with pytest.raises(InvalidRequestError):
        sweep(np.array([0.1, 0.2]), np.array([1]))
    with pytest.raises(InvalidRequestError):
        sweep(np.array([0.1]), np.array([2]))
    with pytest.raises(InvalidRequestError):
        sweep(SIMS, LABELS).threshold_for_precision(1.5)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(2, 40),
              elements=st.floats(-1, 1).map(lambda x: round(x, 2))),
       st.data())
def test_vectorised_sweep_matches_brute_force(sims, data):
    labels = np.array(data.draw(st.lists(st.integers(0, 1), min_size=len(sims),
                                         max_size=len(sims))))
    grid = np.round(np.linspace(-1, 1, 41), 2)
    s = sweep(sims, labels, grid)
    for i, t in enumerate(grid):
        served = sims >= t
        assert s.tp[i] == int((served & (labels == 1)).sum())
        assert s.fp[i] == int((served & (labels == 0)).sum())
    pos, neg = sims[labels == 1], sims[labels == 0]
    if len(pos) and len(neg):
        brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
        assert roc_auc(sims, labels) == pytest.approx(brute)
