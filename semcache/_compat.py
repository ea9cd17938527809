"""LiteLLM's ``Cache(...)`` parameter conventions, mapped onto semcache's at the edge.

``Cache.__init__`` runs ``litellm_params`` over its ``**params`` before it checks the
names, so the rest of the package only ever sees semcache's own spelling:

- ``"os.environ/NAME"`` as a value (LiteLLM's proxy-config convention) reads the
  environment variable; a missing one is a ``ConfigError`` naming the parameter.
- ``url=`` on the Redis types is ``redis_url=`` (LiteLLM passes it to ``redis.Redis``).
- ``default_in_memory_ttl`` on ``local`` and ``default_in_redis_ttl`` on the Redis types
  are the cache's TTL, as in LiteLLM (there is no second tier there to apply them to).
- Parameters LiteLLM has and semcache does not need (``redis_flush_size``: semcache
  writes each answer as it arrives, there is no batch to flush) are accepted and
  ignored, with one warning per parameter per process so a config that relies on them
  is not silently misread.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from ._errors import ConfigError

__all__ = ["IGNORED", "TYPE_ALIASES", "litellm_params", "resolve_env"]

log = logging.getLogger("semcache")

_ENV_PREFIX = "os.environ/"

#: LiteLLM parameters that do not apply to semcache, with why (the warning says it)
IGNORED: dict[str, str] = {
    "redis_flush_size": "semcache writes each answer when it arrives; there is no "
                        "batch of pending writes to flush",
    "qdrant_semantic_cache_vector_size": "the vector size is the embedder's dimension",
    "semantic_cache_embedding_max_input_tokens": "the local embedder truncates to its "
                                                 "own maximum",
    "semantic_cache_embedding_timeout": "an embedder fault is already a counted miss",
}

_REDIS_TYPES = frozenset({"redis", "redis-semantic"})
_warned: set[str] = set()
_warned_lock = threading.Lock()


def resolve_env(name: str, value: Any) -> Any:
    """``"os.environ/NAME"`` -> the value of ``NAME``; anything else unchanged."""
    if isinstance(value, str) and value.startswith(_ENV_PREFIX):
        var = value[len(_ENV_PREFIX):]
        got = os.environ.get(var)
        if not var or got is None:
            raise ConfigError(f"{name}={value!r}: environment variable {var!r} is not set",
                              parameter=name)
        return got
    return value


def _warn_once(name: str) -> None:
    with _warned_lock:
        if name in _warned:
            return
        _warned.add(name)
    log.warning("semcache: LiteLLM's %s is accepted and ignored: %s", name, IGNORED[name])


#: LiteLLM's spelling of a type where it differs from semcache's
TYPE_ALIASES = {"azure-blob": "azure_blob"}


def litellm_params(type: Any, params: dict[str, Any], ttl: Any
                   ) -> tuple[str | None, dict[str, Any], Any]:
    """(type, params, ttl) in semcache's terms from LiteLLM-style ones; ``type`` may be
    a ``LiteLLMCacheType`` (a str enum) or LiteLLM's spelling of a type."""
    if isinstance(type, str):
        type = TYPE_ALIASES.get(str(getattr(type, "value", type)),
                                str(getattr(type, "value", type)))
    out: dict[str, Any] = {}
    for name, value in params.items():
        value = resolve_env(name, value)
        if name in IGNORED:
            _warn_once(name)
            continue
        if name == "url" and type in _REDIS_TYPES:
            name = "redis_url"
        elif (name == "default_in_memory_ttl" and type == "local") or (
                name == "default_in_redis_ttl" and type in _REDIS_TYPES):
            if value is not None and ttl is None:
                ttl = value
            continue
        out[name] = value
    ttl = resolve_env("ttl", ttl)
    if isinstance(ttl, str):  # from the environment or a YAML string: a number
        try:
            ttl = float(ttl)
        except ValueError:
            raise ConfigError(f"ttl must be a number of seconds, got {ttl!r}",
                              parameter="ttl") from None
    return type, out, ttl
