"""semcache: a semantic cache for LLM responses."""
from ._errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    IntegrityError,
    InvalidRequestError,
    MissingDependency,
    SemcacheError,
)

__version__ = "0.1.0"
