"""The Wilson score interval of a proportion: the one binomial interval of the package.

The verified policy's audits, the policy comparison's error intervals and its running
error all report it; one function so the three cannot drift apart (they were three
copies, one vectorised by hand).
"""

from __future__ import annotations

from typing import overload

import numpy as np

__all__ = ["Z95", "wilson_interval"]

#: the normal quantile of a two-sided 95% interval
Z95 = 1.96


@overload
def wilson_interval(p: float, n: float, z: float = Z95) -> tuple[float, float]: ...
@overload
def wilson_interval(p: np.ndarray, n: np.ndarray | float,
                    z: float = Z95) -> tuple[np.ndarray, np.ndarray]: ...
def wilson_interval(p: float | np.ndarray, n: float | np.ndarray, z: float = Z95
                    ) -> tuple[float, float] | tuple[np.ndarray, np.ndarray]:
    """(low, high) of the Wilson score interval of a proportion ``p`` seen in ``n``
    trials: the proportions a score test at ``z`` does not reject, clipped to [0, 1].

    ``p`` and ``n`` may be arrays (one interval per element, no Python loop over
    them). No trials (``n == 0``) says nothing: (0, 1)."""
    pa, na = np.asarray(p, float), np.asarray(n, float)
    # n == 0 gets a dummy 1 so the division is defined; its row is replaced below
    m = np.where(na > 0, na, 1.0)
    zz = z * z
    centre = (pa + zz / (2 * m)) / (1 + zz / m)
    half = z * np.sqrt(pa * (1 - pa) / m + zz / (4 * m * m)) / (1 + zz / m)
    # the interval always holds p; min/max only undo rounding (at p = 1, centre + half
    # came out as 0.9999999999999999)
    low = np.where(na > 0, np.clip(np.minimum(centre - half, pa), 0.0, 1.0), 0.0)
    high = np.where(na > 0, np.clip(np.maximum(centre + half, pa), 0.0, 1.0), 1.0)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high
