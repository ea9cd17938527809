"""Honest splits of labeled pairs: by question group, so no question is on both sides.

A pair set is a graph whose nodes are texts and whose edges are pairs. Splitting the
*pairs* at random leaks: Quora asks the same question in many pairs, so a model fitted
on one pair has already seen the question it is scored on in another. Splitting by
connected component keeps every text, and everything linked to it, on one side. Fit,
choose thresholds and tune policies on the ``tune`` part; report only the ``test`` part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._errors import InvalidRequestError
from ._data import Pairs

__all__ = ["GroupSplit", "check_splittable", "group_split", "pair_groups"]


@dataclass(frozen=True)
class GroupSplit:
    tune: Pairs
    test: Pairs
    seed: int
    #: number of connected components on each side
    tune_groups: int
    test_groups: int


def _norm(text: str) -> str:
    # the same question typed with other spacing or case is the same question
    return " ".join(text.lower().split())


def pair_groups(pairs: Pairs) -> np.ndarray:
    """``int64[len(pairs)]``: the connected component (of the text graph) of each pair."""
    index: dict[str, int] = {}
    a = np.fromiter((index.setdefault(_norm(t), len(index)) for t in pairs.queries),
                    np.int64, len(pairs))
    b = np.fromiter((index.setdefault(_norm(t), len(index)) for t in pairs.candidates),
                    np.int64, len(pairs))
    parent = np.arange(len(index), dtype=np.int64)

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = int(parent[root])
        while parent[x] != root:  # path compression keeps later finds short
            parent[x], x = root, int(parent[x])
        return root

    for x, y in zip(a.tolist(), b.tolist()):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    roots = np.fromiter((find(x) for x in a.tolist()), np.int64, len(pairs))
    return np.unique(roots, return_inverse=True)[1].astype(np.int64)


def check_splittable(pairs: Pairs) -> None:
    """Raise unless ``group_split`` can put pairs on both sides: pairs that all share
    questions are one group, and one side of their split would be empty."""
    if len(pairs) < 2:
        raise InvalidRequestError("a split needs at least two pairs")
    if not pair_groups(pairs).any():
        raise InvalidRequestError(
            f"cannot split {pairs.source or 'the pairs'}: all {len(pairs)} pairs form one "
            "question group (they share questions), so the tune part would be empty")


def _take(pairs: Pairs, idx: np.ndarray, part: str) -> Pairs:
    return Pairs([pairs.queries[i] for i in idx], [pairs.candidates[i] for i in idx],
                 pairs.labels[idx], f"{pairs.source}#{part}")


def group_split(pairs: Pairs, *, test_fraction: float = 0.5, seed: int = 0) -> GroupSplit:
    """Split ``pairs`` by connected component: components are shuffled with ``seed`` and
    given to the test part until it holds about ``test_fraction`` of the pairs."""
    if not 0.0 < test_fraction < 1.0:
        raise InvalidRequestError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if len(pairs) < 2:
        raise InvalidRequestError("a split needs at least two pairs")
    groups = pair_groups(pairs)
    sizes = np.bincount(groups)
    order = np.random.default_rng(seed).permutation(len(sizes))
    # the first components of the shuffled order whose running size stays within the
    # target go to test: a giant component lands on whichever side it falls
    cum = np.cumsum(sizes[order])
    n_test = int(np.searchsorted(cum, test_fraction * len(pairs), side="right"))
    is_test = np.zeros(len(sizes), bool)
    is_test[order[:max(1, min(n_test, len(sizes) - 1))]] = True
    mask = is_test[groups]
    return GroupSplit(_take(pairs, np.flatnonzero(~mask), "tune"),
                      _take(pairs, np.flatnonzero(mask), "test"), seed,
                      int((~is_test).sum()), int(is_test.sum()))
