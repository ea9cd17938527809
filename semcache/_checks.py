"""Value checks that both the core's configuration and the seams apply.

They sit in the errors layer, beside ``_errors``, so that a seam (the verified policy's
``target_error_rate``) validates a value exactly as ``Cache(...)`` and the per-request
``cache={...}`` controls do without importing the core (``.importlinter``, issue #19).
"""

from __future__ import annotations

import math
from typing import Any

from ._errors import ConfigError

__all__ = ["check_rate", "finite_number"]


def finite_number(value: Any) -> bool:
    """Whether ``value`` is a real number (not a bool) that a float holds finitely. An
    int too large for a float (``10**400``) is not one: ``math.isfinite`` raises
    ``OverflowError`` on it, which a check must never let escape in place of its
    ``ConfigError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_rate(value: Any, parameter: str = "target_error_rate") -> float:
    """A rate strictly between 0 and 1 (an error rate of 0 or 1 bounds nothing)."""
    if not finite_number(value) or not 0.0 < value < 1.0:
        raise ConfigError(f"{parameter} must be a number in (0, 1), got {value!r}",
                          parameter=parameter)
    return float(value)
