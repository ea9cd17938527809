"""Value checks that both the core's configuration and the seams apply.

They sit in the errors layer, beside ``_errors``, so that a seam (the verified policy's
``target_error_rate``) validates a value exactly as ``Cache(...)`` and the per-request
``cache={...}`` controls do without importing the core (``.importlinter``, issue #19).
"""

from __future__ import annotations

import math
from typing import Any

from ._errors import ConfigError

__all__ = ["MAX_TTL", "check_cache_ttl", "check_rate", "check_store_ttl", "check_ttl",
           "finite_number"]

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


def check_ttl(value: Any, parameter: str) -> float | None:
    """A ttl that must last: seconds in (0, ``MAX_TTL``], or None (never expire)."""
    if value is None:
        return None
    if not finite_number(value) or not 0 < value <= MAX_TTL:
        raise ConfigError(f"{parameter} must be a positive number of seconds, at most "
                          f"{MAX_TTL:.0f} (ten years), or None (never expire), got "
                          f"{value!r:.80}", parameter=parameter)
    return float(value)


def check_cache_ttl(value: Any, parameter: str) -> float | None:
    """A cache's, a request's or a store write's TTL: as ``check_ttl``, and 0 is
    LiteLLM's "expire at once", so a cache or request with ``ttl=0`` stores nothing (it
    could serve nothing), and a store given 0 removes any entry under the key (what a
    front tier is given for a back entry with nothing left)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        return 0.0
    return check_ttl(value, parameter)


def check_store_ttl(value: Any) -> float | None:
    """An ``ExactStore.set`` ``ttl``, the one rule every store applies before touching its
    backend (``check_cache_ttl``): NaN, infinities, bools, negatives and non-numbers were
    kept forever by some stores, dropped by others, a raw ValueError in Redis; now a
    ``ConfigError`` naming ``ttl``, and the stored entry is left as it was."""
    return check_cache_ttl(value, "ttl")
