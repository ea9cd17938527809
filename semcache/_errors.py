"""The exceptions semcache raises, in one tree.

The tree (everything semcache raises on purpose derives from ``SemcacheError``)::

    SemcacheError
    ├── ConfigError              invalid Cache(...) parameters or per-request controls
    ├── InvalidRequestError      a request or input the cache cannot key or embed
    ├── BackendError             a store, index or embedder failed (``.backend`` names it)
    │   ├── BackendUnavailable   connection refused / server down
    │   └── BackendTimeout       the backend did not answer in time
    ├── IntegrityError           a stored value failed its signature or format check
    └── MissingDependency        an optional extra is not installed (with an install hint)

Backends map their library's errors to these in exactly one place each
(``map_errors``), always raising ``from`` the original so no type information is lost.
Inside the lookup pipeline ``BackendError`` and ``IntegrityError`` become counted misses
(fail open) unless the cache was built with ``on_error="raise"``.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "ConfigError",
    "IntegrityError",
    "InvalidRequestError",
    "MissingDependency",
    "SemcacheError",
]


class SemcacheError(Exception):
    """Root of every error semcache raises on purpose."""


class ConfigError(SemcacheError, ValueError):
    """A configuration value is invalid; the message names the parameter."""

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class InvalidRequestError(SemcacheError, ValueError):
    """A request, text or vector that the cache cannot key, embed or index."""


class BackendError(SemcacheError):
    """A backend (exact store, vector index or embedder) failed."""

    def __init__(self, message: str, *, backend: str = "unknown") -> None:
        super().__init__(message)
        self.backend = backend


class BackendUnavailable(BackendError):
    """The backend could not be reached."""


class BackendTimeout(BackendError):
    """The backend did not answer within its timeout."""


class IntegrityError(SemcacheError):
    """A stored value is malformed, oversized or failed its HMAC signature."""


class MissingDependency(SemcacheError, ImportError):
    """An optional dependency is missing; the message says which extra to install."""


def missing(package: str, extra: str, what: str) -> MissingDependency:
    return MissingDependency(
        f"{what} needs the '{package}' package: pip install 'semcache[{extra}]'"
    )
