"""semcache: a semantic cache for LLM responses.

    import semcache
    semcache.cache = semcache.Cache(type="faiss-semantic")
    hit = semcache.cache.lookup(model="m", messages=[{"role": "user", "content": "Hi"}])

    r = semcache.completion(model="gpt-4o-mini", messages=[...], api_base=..., api_key=...)
    r._hidden_params["cache_hit"]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._cache import Cache, CacheHit, Pending
from ._calls import (
    acompletion,
    aembedding,
    aresponses,
    atext_completion,
    atranscription,
    completion,
    embedding,
    responses,
    text_completion,
    transcription,
)
from ._calls._router import Router
from ._config import CacheMode, Controls
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
from ._threads import ThreadPolicy, set_threads
from .policies.base import Decision, DecisionPolicy, StaticThreshold

__version__ = "0.1.0"

#: the cache the call layer consults (LiteLLM's ``litellm.cache``); None = no caching
cache: Cache | None = None

#: called after every successful call, in either of two forms (told apart by how many
#: positional arguments the function takes):
#: - one argument, a dict: call_type, model, kwargs (api_key redacted), response,
#:   start_time, end_time, timings_ms, cache_hit, cache, response_cost, stream;
#: - LiteLLM's four, ``(kwargs, completion_response, start_time, end_time)``, with
#:   ``kwargs["cache_hit"]`` and datetimes for the times.
#: A raising callback is logged and never breaks the call.
success_callback: list[Callable[..., Any]] = []

#: called when the upstream call fails, in the same two forms; the dict (and LiteLLM's
#: kwargs) carry ``exception``, and the response is None. The call still raises.
failure_callback: list[Callable[..., Any]] = []


def _positional(host: str | None, port: str | int | None, password: str | None,
                supported_call_types: Any, params: dict[str, Any]) -> dict[str, Any]:
    """LiteLLM's positional ``(type, host, port, password, supported_call_types)``."""
    given = {"host": host, "port": port, "password": password,
             "supported_call_types": supported_call_types}
    return {**{k: v for k, v in given.items() if v is not None}, **params}


def enable_cache(type: str = "local", host: str | None = None,
                 port: str | int | None = None, password: str | None = None,
                 supported_call_types: list[str] | None = None, **params: Any) -> Cache:
    """Create a ``Cache`` and make it the module-level ``semcache.cache`` (LiteLLM's
    signature: ``enable_cache("redis", "localhost", "6379")`` works)."""
    global cache
    cache = Cache(type=type, **_positional(host, port, password, supported_call_types,
                                           params))
    return cache


def update_cache(type: str | None = None, host: str | None = None,
                 port: str | int | None = None, password: str | None = None,
                 supported_call_types: list[str] | None = None, **params: Any) -> Cache:
    """Rebuild ``semcache.cache`` with some parameters changed (the rest kept)."""
    global cache
    params = _positional(host, port, password, supported_call_types, params)
    if type is not None:
        params["type"] = type
    if cache is None:
        return enable_cache(**params)
    merged = {**cache._init_params, **params}
    if "type" in params:  # a new type: keep only the type-independent settings
        keep = ("mode", "ttl", "namespace", "supported_call_types", "on_error",
                "signing_key", "max_value_bytes", "clock", "key_include", "key_exclude")
        merged = {k: v for k, v in cache._init_params.items() if k in keep} | params
    old, cache = cache, Cache(**merged)
    if old.store is not cache.store:
        old.close()
    return cache


def disable_cache() -> None:
    """Stop caching: ``semcache.cache = None``."""
    global cache
    cache = None


__all__ = [
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "Cache",
    "CacheHit",
    "CacheMode",
    "ConfigError",
    "Controls",
    "Decision",
    "DecisionPolicy",
    "IntegrityError",
    "InvalidRequestError",
    "MissingDependency",
    "Pending",
    "Router",
    "SemcacheError",
    "StaticThreshold",
    "ThreadPolicy",
    "acompletion",
    "aembedding",
    "aresponses",
    "atext_completion",
    "atranscription",
    "cache",
    "completion",
    "disable_cache",
    "embedding",
    "enable_cache",
    "failure_callback",
    "responses",
    "set_threads",
    "success_callback",
    "text_completion",
    "transcription",
    "update_cache",
]
