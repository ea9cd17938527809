"""Value checks that both the core's configuration and the seams apply.

They sit in the errors layer, beside ``_errors``, so that a seam (the verified policy's
``target_error_rate``) validates a value exactly as ``Cache(...)`` and the per-request
``cache={...}`` controls do without importing the core (``.importlinter``, issue #19).
"""

from __future__ import annotations

import math
from typing import Any

from ._errors import ConfigError

__all__ = ["MAX_TTL", "check_rate", "check_store_ttl", "finite_number"]

#: the longest ttl a cache, a request or ``update_ttl`` may give (ten years). Larger
#: finite values passed the check and then failed every Redis write (an expiry past
#: what ``PX`` holds): the answer silently not cached, a backend error counted against
#: a healthy server. ``None`` is the way to say "never expire".
MAX_TTL = 10 * 365 * 86400.0


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


def check_store_ttl(value: Any) -> float | None:
    """An ``ExactStore.set`` ``ttl``, the one rule every store applies before touching its
    backend: ``None`` never expires; ``0`` expires at once (the store removes any entry
    under the key and keeps nothing: LiteLLM's ``ttl=0``, and what a front tier is given
    for a back entry with nothing left); otherwise seconds in (0, ``MAX_TTL``]. NaN,
    infinities, bools, negatives and non-numbers raise a ``ConfigError`` naming ``ttl``
    (they were kept forever by some stores, dropped by others, a raw ValueError in Redis)
    and leave the stored entry as it was."""
    if value is None:
        return None
    if not finite_number(value) or not 0 <= value <= MAX_TTL:
        raise ConfigError(f"ttl must be a number of seconds in [0, {MAX_TTL:.0f}] (0: "
                          f"expire at once) or None (never expire), got {value!r:.80}",
                          parameter="ttl")
    return float(value)
