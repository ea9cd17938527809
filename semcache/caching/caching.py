"""``from semcache.caching.caching import Cache``: LiteLLM's module path (see
``semcache.caching``)."""

from __future__ import annotations

from typing import Any

from ._names import (
    Cache,
    CacheHit,
    CacheMode,
    DiskCache,
    DualCache,
    InMemoryCache,
    LiteLLMCacheType,
    disable_cache,
    enable_cache,
    update_cache,
)
from ._names import __getattr__ as _lazy

__all__ = [
    "Cache",
    "CacheHit",
    "CacheMode",
    "DiskCache",
    "DualCache",
    "InMemoryCache",
    "LiteLLMCacheType",
    "disable_cache",
    "enable_cache",
    "update_cache",
]


def __getattr__(name: str) -> Any:
    return _lazy(name)
