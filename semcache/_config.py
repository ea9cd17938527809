"""Cache modes, call types, per-request ``cache={...}`` controls and value validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ._checks import (  # beside _errors: the seams share them
    MAX_TTL,
    check_cache_ttl,
    check_rate,
    check_ttl,
    finite_number,
)
from ._errors import ConfigError

__all__ = ["CALL_TYPES", "DEFAULT_CALL_TYPES", "MAX_TTL", "UNSET", "CacheMode", "Controls",
           "check_cache_ttl", "check_ttl"]


class _Unset:
    """'Not given', as opposed to None (httpx's USE_CLIENT_DEFAULT)."""

    _instance = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


class CacheMode(str, Enum):
    """``default_on``: every supported call is cached; ``default_off``: only calls that
    pass ``cache={"use-cache": True}``."""

    default_on = "default_on"
    default_off = "default_off"


CALL_TYPES = (
    "completion", "acompletion", "text_completion", "atext_completion",
    "embedding", "aembedding", "transcription", "atranscription",
    "rerank", "arerank",
)
DEFAULT_CALL_TYPES = CALL_TYPES  # LiteLLM's default list


# MAX_TTL and the ttl checks live in _checks: every ExactStore applies them too


def check_threshold(value: Any, parameter: str = "similarity_threshold") -> float:
    # 0.0 is a valid threshold (serve the nearest candidate whatever it is)
    if not finite_number(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{parameter} must be a number in [0, 1], got {value!r}",
                          parameter=parameter)
    return float(value)


def check_bool(value: Any, parameter: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{parameter} must be true or false, got {value!r}",
                          parameter=parameter)
    return value


def check_type_name(value: Any) -> Any:
    """``Cache(type=...)``: a type's name (a str, or LiteLLM's str enum) or None; a list
    or a dict was an unhashable TypeError from the type table."""
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"type must be a cache type name (a str such as 'local') or "
                          f"None, got {value!r:.80}", parameter="type")
    return value


def check_clock(value: Any) -> Any:
    """``Cache(clock=...)``: a function returning the unix time. Read once here: one
    that is not callable failed the first lookup (a raw TypeError), and one returning
    None or a str made every stored entry unreadable, each read a counted miss."""
    try:
        now = value() if callable(value) else None
    except Exception as exc:
        raise ConfigError(f"clock() failed: {type(exc).__name__}: {exc}",
                          parameter="clock") from exc
    if not finite_number(now):
        raise ConfigError(f"clock must be a function returning the time in seconds (a "
                          f"number), got {value!r:.80}", parameter="clock")
    return value


@dataclass(frozen=True, slots=True)
class Controls:
    """A request's ``cache={...}``: LiteLLM's keys plus the similarity overrides."""

    ttl: Any = UNSET  # float | None | UNSET
    s_maxage: float | None = None
    no_cache: bool = False
    no_store: bool = False
    namespace: str | None = None
    use_cache: bool | None = None
    similarity_threshold: float | None = None
    target_error_rate: float | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> Controls:
        if raw is None:
            return _EMPTY
        if not isinstance(raw, Mapping):
            raise ConfigError(f"cache= must be a dict of controls, got {type(raw).__name__}",
                              parameter="cache")
        if not raw:
            return _EMPTY
        out: dict[str, Any] = {}
        named: dict[str, Any] = {}  #: field -> the name it was first given under
        for name, value in raw.items():
            field = _CONTROL_NAMES.get(name)
            if field is None:
                raise ConfigError(
                    f"unknown cache control {name!r}; known: {sorted(_CONTROL_NAMES)}",
                    parameter=f"cache[{name!r}]")
            p = f"cache[{name!r}]"
            if field == "ttl":
                value = check_cache_ttl(value, p)
            elif field == "s_maxage":
                if not finite_number(value) or value < 0:
                    raise ConfigError(f"{p} must be a number of seconds >= 0, got {value!r}",
                                      parameter=p)
                value = float(value)
            elif field in ("no_cache", "no_store", "use_cache"):
                value = check_bool(value, p)
            elif field == "namespace":
                from ._keys import validate_namespace

                value = validate_namespace(value, p)
            elif field == "similarity_threshold":
                value = check_threshold(value, p)
            elif field == "target_error_rate":
                value = check_rate(value, p)
            if field in out and out[field] != value:
                # one control under two names (no-store, no_store): neither may win
                # silently, or a merged-in default undoes what the user asked for
                raise ConfigError(
                    f"cache[{named[field]!r}] and {p} are one control, given "
                    f"{out[field]!r} and {value!r}: give it once", parameter=p)
            named.setdefault(field, name)
            out[field] = value
        return cls(**out)


_CONTROL_NAMES = {
    "ttl": "ttl",
    "s-maxage": "s_maxage",
    "s-max-age": "s_maxage",
    "s_maxage": "s_maxage",
    "no-cache": "no_cache",
    "no_cache": "no_cache",
    "no-store": "no_store",
    "no_store": "no_store",
    "namespace": "namespace",
    "use-cache": "use_cache",
    "use_cache": "use_cache",
    "similarity_threshold": "similarity_threshold",
    "target_error_rate": "target_error_rate",
}
_EMPTY = Controls()
