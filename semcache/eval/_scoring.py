"""A pair set's structural features and the verifier's scores on it, parsing each
distinct text once (fitting and evaluation score tens of thousands of pairs)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from ..verifiers.features import FEATURES, Parsed, features, parse
from ..verifiers.rules import decide_many

__all__ = ["cached_parser", "pair_features", "pair_scores"]


def cached_parser() -> Callable[[str], Parsed]:
    """``parse`` with a cache of its own: pair sets repeat their texts, and a scoring
    pass that ends drops the cache with it."""
    return lru_cache(maxsize=None)(parse)


def pair_features(queries: Sequence[str], candidates: Sequence[str],
                  cosines: Sequence[float] | np.ndarray, parser: Any = None) -> np.ndarray:
    if not len(queries):
        return np.zeros((0, len(FEATURES)), np.float32)
    p = parser or cached_parser()
    return np.concatenate([features(p(q), [p(c)], [s])
                           for q, c, s in zip(queries, candidates, cosines)])


def pair_scores(ens: Any, queries: Sequence[str], candidates: Sequence[str],
                cosines: Sequence[float] | np.ndarray) -> np.ndarray:
    """What the verifier serves on: the ensemble's probabilities with the rules'
    decisions put in (``semcache/verifiers/rules.py``), as ``StructuralVerifier`` does."""
    if not len(queries):
        return np.zeros(0, np.float64)
    p = cached_parser()
    return decide_many([p(q) for q in queries], [p(c) for c in candidates],
                       ens.predict_proba(pair_features(queries, candidates, cosines, p)))
