"""Shared checks for the vector-index adapters: one place validates what reaches a
backend, and what comes back from it.

A NaN or a wrong dimension is rejected here, as ``InvalidRequestError``, before any
backend sees it: Qdrant would answer a 400 and RedisVL would store garbage bytes.
A stored entry another writer shaped otherwise (an older version, a hostile client of
the same server) is skipped by ``candidates``, never a reason to fail the whole search:
one such point would otherwise turn every lookup in its context into a miss.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import numpy as np

from .._errors import InvalidRequestError
from .base import Candidate, Observation

__all__ = ["MALFORMED", "candidate", "candidates", "check_k", "check_vectors"]

log = logging.getLogger("semcache.indexes")

_Row = TypeVar("_Row")

#: what building a candidate from a malformed stored row raises (a JSON decode error
#: and binascii.Error are ValueErrors; the stdlib's json raises RecursionError on deep
#: nesting); an IntegrityError is not among them: it is a damaged folder or file, not
#: one bad row
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, OverflowError, IndexError,
             RecursionError)


def check_vectors(vectors: np.ndarray, n: int | None, dim: int) -> np.ndarray:
    """``vectors`` as C-contiguous float32[n, dim] of finite values, or raise."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or (n is not None and arr.shape[0] != n):
        raise InvalidRequestError(f"vectors have shape {arr.shape}, expected ({n}, {dim})")
    if arr.shape[1] != dim:
        raise InvalidRequestError(
            f"vector dimension {arr.shape[1]} does not match the index's {dim}")
    if not np.isfinite(arr).all():
        raise InvalidRequestError("vectors contain NaN or Infinity")
    return np.ascontiguousarray(arr)


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidRequestError(f"k must be an int >= 1, got {k!r}")
    return k


def candidate(key: Any, similarity: Any, prompt: Any, created_at: Any, expires_at: Any,
              observations: tuple[Observation, ...]) -> Candidate:
    """A ``Candidate`` from values read back from a backend, checked: anything the
    adapters do not write raises one of ``MALFORMED``."""
    if not isinstance(key, str) or not isinstance(prompt, str):
        raise TypeError("a stored entry's key and prompt must be strings")
    sim = _finite(similarity, "similarity")
    return Candidate(key, max(-1.0, min(1.0, sim)), prompt, _finite(created_at, "created"),
                     None if expires_at is None else _finite(expires_at, "expiry"),
                     observations)


def candidates(rows: Iterable[_Row], build: Callable[[_Row], Candidate],
               where: str) -> tuple[list[Candidate], int]:
    """``build(row)`` for each row of a search; a malformed row is skipped. Returns the
    candidates and how many rows were skipped, with one warning per search (not one
    per row) when any was."""
    out: list[Candidate] = []
    skipped, first = 0, None
    for row in rows:
        try:
            out.append(build(row))
        except MALFORMED as exc:
            skipped, first = skipped + 1, first or exc
    if skipped:
        log.warning("%s: skipped %d malformed stored entr%s in a search, served the "
                    "others (first: %s: %s); delete or rewrite them", where, skipped,
                    "y" if skipped == 1 else "ies", type(first).__name__,
                    str(first)[:200])
    return out, skipped


def _finite(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{what} {str(v)[:40]} is not a finite number")
    return float(v)
