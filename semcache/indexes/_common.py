"""Shared checks for the vector-index adapters: one place validates what reaches a backend.

A NaN or a wrong dimension is rejected here, as ``InvalidRequestError``, before any
backend sees it: Qdrant would answer a 400 and RedisVL would store garbage bytes.
"""

from __future__ import annotations

import numpy as np

from .._errors import InvalidRequestError

__all__ = ["check_k", "check_vectors"]


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
