"""A pair set's structural features and the verifier's scores on it, parsing each
distinct text once (fitting and evaluation score tens of thousands of pairs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..verifiers.features import FEATURES, features, parse
from ..verifiers.rules import decide_many

__all__ = ["pair_features", "pair_scores"]


def _parser() -> Any:
    parsed: dict[str, Any] = {}

    def p(t: str) -> Any:
        got = parsed.get(t)
        if got is None:
            got = parsed[t] = parse(t)
        return got
    return p


def pair_features(queries: Sequence[str], candidates: Sequence[str],
                  cosines: Sequence[float] | np.ndarray, parser: Any = None) -> np.ndarray:
    if not len(queries):
        return np.zeros((0, len(FEATURES)), np.float32)
    p = parser or _parser()
    return np.concatenate([features(p(q), [p(c)], [s])
                           for q, c, s in zip(queries, candidates, cosines)])


def pair_scores(ens: Any, queries: Sequence[str], candidates: Sequence[str],
                cosines: Sequence[float] | np.ndarray) -> np.ndarray:
    """What the verifier serves on: the ensemble's probabilities with the rules'
    decisions put in (``semcache/verifiers/rules.py``), as ``StructuralVerifier`` does."""
    if not len(queries):
        return np.zeros(0, np.float64)
    p = _parser()
    return decide_many([p(q) for q in queries], [p(c) for c in candidates],
                       ens.predict_proba(pair_features(queries, candidates, cosines, p)))
