"""A gradient-boosted tree ensemble stored as JSON and evaluated with numpy.

``scripts/train_verifier.py`` fits scikit-learn's ``HistGradientBoostingClassifier`` and
writes its trees here as flat arrays; at run time no training library is imported and
nothing is unpickled. Evaluation walks every tree at once: all trees are padded to the
same node count and laid end to end, leaves point to themselves, so ``depth`` rounds of
vectorised indexing reach every leaf (no Python loop over trees or samples).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._errors import ConfigError

__all__ = ["TreeEnsemble"]


class TreeEnsemble:
    """``predict_proba(X) -> float64[n]``: the ensemble's probability of class 1."""

    def __init__(self, *, baseline: float, feature: np.ndarray, threshold: np.ndarray,
                 left: np.ndarray, right: np.ndarray, value: np.ndarray, depth: int,
                 n_features: int) -> None:
        n_trees, n_nodes = feature.shape
        offset = (np.arange(n_trees, dtype=np.int64) * n_nodes)[:, None]
        self.baseline = float(baseline)
        self.n_features = n_features
        self.depth = depth
        self._n_trees = n_trees
        self._feature = feature.ravel().astype(np.int64)
        self._threshold = threshold.ravel().astype(np.float64)
        # children as global indices into the flat arrays
        self._left = (left + offset).ravel().astype(np.int64)
        self._right = (right + offset).ravel().astype(np.int64)
        self._value = value.ravel().astype(np.float64)
        self._roots = offset.ravel()

    def raw(self, X: np.ndarray) -> np.ndarray:
        # float64 like scikit-learn, so a value on a split point goes the same way
        X = np.asarray(X, np.float64)
        n = X.shape[0]
        node = np.repeat(self._roots[:, None], n, axis=1)  # [trees, samples]
        flat_x = X.ravel()
        col = np.arange(n, dtype=np.int64) * X.shape[1]
        for _ in range(self.depth):
            x = flat_x[col + self._feature[node]]
            node = np.where(x <= self._threshold[node], self._left[node], self._right[node])
        return self.baseline + self._value[node].sum(axis=0)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.raw(X)))

    # -- JSON --
    def to_json(self) -> dict[str, Any]:
        nodes = self._feature.size // self._n_trees
        shape = (self._n_trees, nodes)
        base = (np.arange(self._n_trees) * nodes)[:, None]
        return {
            "baseline": self.baseline, "depth": self.depth, "n_features": self.n_features,
            "feature": self._feature.reshape(shape).tolist(),
            "threshold": [[float(v) for v in row]
                          for row in self._threshold.reshape(shape)],
            "left": (self._left.reshape(shape) - base).tolist(),
            "right": (self._right.reshape(shape) - base).tolist(),
            "value": [[round(float(v), 7) for v in row]
                      for row in self._value.reshape(shape)],
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
            for k in ("left", "right"):
                if arrays[k].min() < 0 or arrays[k].max() >= n_nodes:
                    raise ValueError(f"{k} child out of range")
            if arrays["feature"].min() < 0 or arrays["feature"].max() >= n_features:
                raise ValueError("feature index out of range")
            return cls(baseline=float(d["baseline"]), depth=int(d["depth"]),
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
