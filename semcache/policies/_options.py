"""``VerifiedPolicy``'s options, checked before any is used.

Comparisons alone (``if memory < 0``) let a NaN through (every comparison with it is
false: a NaN ``explore_allowance`` stopped all exploration, so the policy never learned
and never served), raised a raw ``TypeError`` on a string, took a bool as a number, and
sized the decision window from whatever came (``budget_window=10**12``: a
``MemoryError``). Each option is a ``ConfigError`` naming it unless it is a number of
the right kind in its range (``semcache eval --policy-param`` reads JSON, where
``NaN`` parses).
"""

from __future__ import annotations

import math
from typing import Any

from .._checks import finite_number
from .._errors import ConfigError

__all__ = ["MAX_BUDGET_WINDOW", "MAX_COUNT", "check_count", "check_fraction",
           "check_memory", "check_seed"]

#: the decision window is a list of this many slots, allocated up front
MAX_BUDGET_WINDOW = 1_000_000
#: any other count: large enough to mean "never", small enough to add to a float
MAX_COUNT = 10**9


def check_count(value: Any, name: str, low: int, high: int = MAX_COUNT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number in [{low}, {high}], got "
                          f"{str(value)[:40]}", parameter=name)
    return value


def check_fraction(value: Any, name: str, low: float, high: float, *,
                   open_low: bool = False, open_high: bool = False) -> float:
    ok = finite_number(value) and (low < value if open_low else low <= value) and \
        (value < high if open_high else value <= high)
    if not ok:
        span = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise ConfigError(f"{name} must be a number in {span}, got {str(value)[:40]}",
                          parameter=name)
    return float(value)


def check_memory(value: Any) -> float:
    """Judged outcomes over which older ones fade by 1/e: >= 0 (0 and infinity: never)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == math.inf:
        return math.inf
    return check_fraction(value, "memory", 0.0, math.inf, open_high=True)


def check_seed(value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"seed must be a whole number or None, got {str(value)[:40]}",
                          parameter="seed")
    return value
