"""A gradient-boosted tree ensemble stored as JSON and evaluated with numpy.

``scripts/train_verifier.py`` fits scikit-learn's ``HistGradientBoostingClassifier`` and
writes its trees here as flat arrays; at run time no training library is imported and
nothing is unpickled. Evaluation walks every tree at once: all trees are padded to the
same node count and laid end to end, leaves point to themselves, so ``depth`` rounds of
vectorised indexing reach every leaf (no Python loop over trees or samples).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._errors import ConfigError

__all__ = ["TreeEnsemble"]


def _float32_at_most(t: float) -> np.float32:
    """The largest float32 not above ``t``: for a float32 ``x``, ``x > result`` exactly
    when ``x > t``."""
    f = np.float32(t)
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return f


class TreeEnsemble:
    """``predict_proba(X) -> float64[n]``: the ensemble's probability of class 1."""

    def __init__(self, *, baseline: float, feature: np.ndarray, threshold: np.ndarray,
                 left: np.ndarray, right: np.ndarray, value: np.ndarray, depth: int,
                 n_features: int) -> None:
        n_trees, n_nodes = feature.shape
        self.baseline = float(baseline)
        self.n_features = n_features
        self.depth = depth
        self._n_trees = n_trees
        # as given (to_json writes these back unchanged)
        self._given = {"feature": feature, "threshold": threshold, "left": left,
                       "right": right, "value": value}
        # the evaluation layout: each tree renumbered breadth first so that a node's right
        # child follows its left one; a step is then ``child[node] + (x > thr[node])``,
        # and a leaf (threshold +inf, child itself) stays where it is
        feat = np.zeros((n_trees, n_nodes), np.int64)
        thr = np.full((n_trees, n_nodes), np.inf, np.float32)
        child = np.tile(np.arange(n_nodes, dtype=np.int64), (n_trees, 1))
        val = np.zeros((n_trees, n_nodes), np.float64)
        deepest = 0
        for t in range(n_trees):
            new = {0: 0}
            level = {0: 0}
            queue, free = deque([0]), 1
            while queue:
                old = queue.popleft()
                i = new[old]
                deepest = max(deepest, level[old])
                lo, hi = int(left[t, old]), int(right[t, old])
                if lo == old:  # a leaf
                    val[t, i] = value[t, old]
                    continue
                if lo in new or hi in new or lo == hi:
                    # a node reached twice: a cycle or a shared subtree, not a tree
                    raise ValueError(f"tree {t}: node {old} does not have two new children")
                new[lo], new[hi] = free, free + 1
                level[lo] = level[hi] = level[old] + 1
                child[t, i] = free
                feat[t, i] = feature[t, old]
                thr[t, i] = _float32_at_most(float(threshold[t, old]))
                queue += [lo, hi]
                free += 2
        if depth != deepest:
            # evaluation takes ``depth`` steps: fewer stop on inner nodes (their value, 0,
            # is summed as if a leaf's), a huge number loops for as long on every lookup
            raise ValueError(f"depth {depth} but the deepest node is at {deepest}")
        offset = (np.arange(n_trees, dtype=np.int64) * n_nodes)[:, None]
        self._feature = feat.ravel()
        self._threshold = thr.ravel()
        self._child = (child + offset).ravel()
        self._value = val.ravel()
        self._roots = offset.ravel()
        # the one-sample path's copies: half the bytes to read right after an embedding
        # (4,650 nodes for the shipped model); int64 where a node number needs it
        small = np.int32 if n_trees * n_nodes < 2**31 else np.int64
        self._child_small = self._child.astype(small)
        self._roots_small = self._roots.astype(small)

    def _rows(self, X: np.ndarray) -> np.ndarray:
        # features are float32, and every threshold is the largest float32 not above
        # scikit-learn's float64 one: ``x > thr32`` is exactly ``x > thr64``
        X = np.ascontiguousarray(X, np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            # a flat index past a row's end reads the next sample's features
            raise ValueError(f"{X.shape} features for an ensemble of {self.n_features}")
        return X

    def raw(self, X: np.ndarray) -> np.ndarray:
        X = self._rows(X)
        n = X.shape[0]
        flat_x = X.ravel()
        feature, threshold, child = self._feature, self._threshold, self._child
        if n == 1:
            return np.array([self._one(flat_x)])
        node = np.repeat(self._roots[:, None], n, axis=1)  # [trees, samples]
        col = np.arange(n, dtype=np.int64) * X.shape[1]
        for _ in range(self.depth):
            node = child[node] + (flat_x[col + feature[node]] > threshold[node])
        return self.baseline + self._value[node].sum(axis=0)

    def _one(self, x: np.ndarray) -> float:
        """The raw score of one sample (a lookup with one candidate above the floor):
        every node's next node at once (leaves compare against +inf and stay), then one
        gather a level, with ``take`` on int32 node numbers. It runs right after the
        query's embedding, when each numpy call costs 2-3x what it costs warm: 7 calls
        instead of 19, and node numbers of half the width (``benchmarks/verify_in_hit.py``)."""
        go = self._child_small + (x.take(self._feature) > self._threshold)
        node = self._roots_small
        for _ in range(self.depth):
            node = go.take(node)
        return self.baseline + float(self._value.take(node).sum())

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = self._rows(X)
        if X.shape[0] == 1:  # math.exp: the same float64 as np.exp, without an array
            try:
                return np.array([1.0 / (1.0 + math.exp(-self._one(X.ravel())))])
            except OverflowError:  # where np.exp is inf: the probability is 0
                return np.zeros(1)
        return 1.0 / (1.0 + np.exp(-self.raw(X)))

    # -- JSON --
    def to_json(self) -> dict[str, Any]:
        g = self._given
        return {
            "baseline": self.baseline, "depth": self.depth, "n_features": self.n_features,
            "feature": np.asarray(g["feature"]).astype(np.int64).tolist(),
            "threshold": [[float(v) for v in row] for row in np.asarray(g["threshold"])],
            "left": np.asarray(g["left"]).astype(np.int64).tolist(),
            "right": np.asarray(g["right"]).astype(np.int64).tolist(),
            "value": [[round(float(v), 7) for v in row] for row in np.asarray(g["value"])],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TreeEnsemble:
        try:
            arrays = {k: np.asarray(d[k]) for k in ("feature", "threshold", "left", "right",
                                                   "value")}
            shape = arrays["feature"].shape
            if len(shape) != 2 or any(a.shape != shape for a in arrays.values()):
                raise ValueError("tree arrays differ in shape")
            n_nodes, n_features = shape[1], int(d["n_features"])
            for k in ("feature", "left", "right"):
                if not np.issubdtype(arrays[k].dtype, np.integer):
                    raise ValueError(f"{k} indices must be integers")
            for k in ("threshold", "value"):
                if not np.issubdtype(arrays[k].dtype, np.number):
                    raise ValueError(f"{k} must be numbers")
            # a NaN split sends every sample left, a NaN leaf or baseline makes every
            # probability NaN: a broken file, refused here rather than on every lookup
            if np.isnan(arrays["threshold"]).any():
                raise ValueError("a split threshold is NaN")
            baseline = float(d["baseline"])
            if not (np.isfinite(arrays["value"]).all() and np.isfinite(baseline)):
                raise ValueError("a leaf value or the baseline is not finite")
            for k in ("left", "right"):
                if arrays[k].min() < 0 or arrays[k].max() >= n_nodes:
                    raise ValueError(f"{k} child out of range")
            if arrays["feature"].min() < 0 or arrays["feature"].max() >= n_features:
                raise ValueError("feature index out of range")
            return cls(baseline=baseline, depth=int(d["depth"]),
                       n_features=n_features, **arrays)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a valid tree ensemble: {exc}",
                              parameter="verifier") from exc

    @classmethod
    def from_sklearn(cls, model: Any) -> TreeEnsemble:
        """From a fitted binary ``HistGradientBoostingClassifier`` (training time only)."""
        trees: Sequence[Any] = [p[0].nodes for p in model._predictors]
        n_nodes = max(len(t) for t in trees)
        depth = int(max(t["depth"].max() for t in trees))
        n = len(trees)
        feature = np.zeros((n, n_nodes), np.int64)
        threshold = np.zeros((n, n_nodes), np.float64)
        left = np.tile(np.arange(n_nodes), (n, 1))
        right = left.copy()
        value = np.zeros((n, n_nodes), np.float64)
        for i, t in enumerate(trees):
            m = len(t)
            inner = ~t["is_leaf"].astype(bool)
            feature[i, :m] = np.where(inner, t["feature_idx"], 0)
            threshold[i, :m] = np.where(inner, t["num_threshold"], 0.0)
            # features never hold NaN here, so missing_go_to_left never matters
            left[i, :m] = np.where(inner, t["left"], np.arange(m))
            right[i, :m] = np.where(inner, t["right"], np.arange(m))
            value[i, :m] = np.where(inner, 0.0, t["value"])
        return cls(baseline=float(np.ravel(model._baseline_prediction)[0]), feature=feature,
                   threshold=threshold, left=left, right=right, value=value, depth=depth,
                   n_features=int(model.n_features_in_))
