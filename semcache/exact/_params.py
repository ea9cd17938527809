"""Validation of LiteLLM-style parameters for the stores' ``from_params``.

Every error names the offending parameter (``ConfigError.parameter``) so that
``Cache(type="s3", s3_bucket=...)`` says which name is wrong instead of failing later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .._errors import ConfigError

__all__ = ["check_names", "opt_bool", "opt_float", "opt_int", "opt_str", "require"]


def check_names(params: Mapping[str, Any], accepted: frozenset[str], type_name: str) -> None:
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ConfigError(
            f"type={type_name!r} does not accept parameter {unknown[0]!r} "
            f"(accepted: {', '.join(sorted(accepted))})",
            parameter=unknown[0],
        )


def require(params: Mapping[str, Any], name: str, type_name: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise ConfigError(f"type={type_name!r} needs {name}", parameter=name)
    return value


def opt_str(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, not {type(value).__name__}", parameter=name)
    return value


def opt_int(params: Mapping[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, not a bool", parameter=name)
    try:
        return int(value)  # "6379" from an env var or YAML is fine
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(float("inf"))
        raise ConfigError(f"{name} must be an integer, got {value!r}", parameter=name) from None


def opt_float(params: Mapping[str, Any], name: str, *, positive: bool = True) -> float | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: float(10**400)
        raise ConfigError(f"{name} must be a number, got {value!r}", parameter=name) from None
    if not math.isfinite(out):  # "1e400" or inf: no timeout or TTL is infinite (None is)
        raise ConfigError(f"{name} must be a finite number, got {value!r}", parameter=name)
    if isinstance(value, bool) or (positive and not out > 0):
        raise ConfigError(f"{name} must be a positive number, got {value!r}", parameter=name)
    return out


def opt_bool(params: Mapping[str, Any], name: str) -> bool | None:
    value = params.get(name)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ConfigError(f"{name} must be true or false, got {value!r}", parameter=name)
