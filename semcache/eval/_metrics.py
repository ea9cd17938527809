"""Threshold metrics over labeled similarities, vectorised.

Every statistic at every threshold comes from two sorted arrays (positives' and
negatives' similarities) and ``np.searchsorted``: counting the pairs at or above ``t`` is
a binary search, so a sweep over any grid costs O((P + N) log(P + N) + G log(P + N)) with
no Python loop over thresholds or pairs. "At or above" matches the cache's rule: a
candidate is served when ``similarity >= similarity_threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InvalidRequestError

__all__ = ["DEFAULT_GRID", "Sweep", "roc_auc", "sweep"]

#: 0.50, 0.51, ..., 1.00
DEFAULT_GRID = np.round(np.linspace(0.5, 1.0, 51), 2)


@dataclass(frozen=True)
class Sweep:
    """Counts and rates at each threshold of ``thresholds`` (arrays of equal length).

    ``precision`` is NaN where nothing is predicted positive; ``false_hit_rate`` is the
    share of negatives served (the false-positive rate), ``recall`` the share of
    positives served.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_pos: int
    n_neg: int

    @property
    def fn(self) -> np.ndarray:
        return self.n_pos - self.tp

    @property
    def tn(self) -> np.ndarray:
        return self.n_neg - self.fp

    @property
    def precision(self) -> np.ndarray:
        served = self.tp + self.fp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(served > 0, self.tp / np.maximum(served, 1), np.nan)

    @property
    def recall(self) -> np.ndarray:
        return self.tp / self.n_pos if self.n_pos else np.full(len(self.tp), np.nan)

    @property
    def false_hit_rate(self) -> np.ndarray:
        return self.fp / self.n_neg if self.n_neg else np.full(len(self.fp), np.nan)

    @property
    def f1(self) -> np.ndarray:
        denom = 2 * self.tp + self.fp + self.fn
        return np.where(denom > 0, 2 * self.tp / np.maximum(denom, 1), 0.0)

    @property
    def hit_rate(self) -> np.ndarray:
        return (self.tp + self.fp) / max(self.n_pos + self.n_neg, 1)

    def best_f1(self) -> tuple[float, float]:
        """(threshold, F1) of the highest F1; the highest threshold on ties."""
        f1 = self.f1
        i = len(f1) - 1 - int(np.argmax(f1[::-1]))
        return float(self.thresholds[i]), float(f1[i])

    def threshold_for_precision(self, target: float, min_hits: int = 1) -> float | None:
        """The lowest threshold from which precision stays >= ``target`` at every higher
        threshold with at least ``min_hits`` served pairs; None if no threshold does.

        "Stays" makes the answer robust to a lucky dip: precision is not monotonic in the
        threshold, and a threshold whose neighbours above it fall short is not one to
        ship."""
        if not 0 < target <= 1:
            raise InvalidRequestError(f"target precision must be in (0, 1], got {target}")
        p = self.precision
        served = self.tp + self.fp
        ok = np.where(served >= min_hits, p >= target, True)  # empty tail: no evidence
        # ok_from[i]: every threshold >= thresholds[i] is ok
        ok_from = np.flip(np.logical_and.accumulate(np.flip(ok)))
        good = np.flatnonzero(ok_from & (served >= min_hits))
        return None if len(good) == 0 else float(self.thresholds[good[0]])

    def at(self, threshold: float) -> dict[str, Any]:
        """The row of a threshold (the nearest one in the grid)."""
        i = int(np.argmin(np.abs(self.thresholds - threshold)))
        return self.row(i)

    def row(self, i: int) -> dict[str, Any]:
        def f(x: Any) -> float | None:
            x = float(x)
            return None if np.isnan(x) else round(x, 6)

        return {"threshold": f(self.thresholds[i]), "tp": int(self.tp[i]),
                "fp": int(self.fp[i]), "fn": int(self.fn[i]), "tn": int(self.tn[i]),
                "precision": f(self.precision[i]), "recall": f(self.recall[i]),
                "f1": f(self.f1[i]), "false_hit_rate": f(self.false_hit_rate[i]),
                "hit_rate": f(self.hit_rate[i])}

    def rows(self) -> list[dict[str, Any]]:
        return [self.row(i) for i in range(len(self.thresholds))]


def _split(similarities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(similarities, dtype=np.float64)
    y = np.asarray(labels)
    if s.shape != y.shape or s.ndim != 1:
        raise InvalidRequestError(f"similarities {s.shape} and labels {y.shape} must be "
                                  "1-d and of equal length")
    if not np.isin(y, (0, 1)).all():
        raise InvalidRequestError("labels must be 0 or 1")
    return np.sort(s[y == 1]), np.sort(s[y == 0])


def sweep(similarities: np.ndarray, labels: np.ndarray,
          thresholds: np.ndarray | None = None) -> Sweep:
    """Counts at each threshold; ``thresholds=None`` uses every distinct similarity (the
    exact operating points), else the given grid (sorted ascending)."""
    pos, neg = _split(similarities, labels)
    if thresholds is None:
        thresholds = np.unique(np.concatenate([pos, neg]))
    t = np.sort(np.asarray(thresholds, dtype=np.float64))
    tp = len(pos) - np.searchsorted(pos, t, side="left")
    fp = len(neg) - np.searchsorted(neg, t, side="left")
    return Sweep(t, tp, fp, len(pos), len(neg))


def roc_auc(similarities: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: P(a random positive outscores a random negative), ties
    counted half (the Mann-Whitney U statistic)."""
    pos, neg = _split(similarities, labels)
    if not len(pos) or not len(neg):
        return float("nan")
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (len(pos) * len(neg)))
