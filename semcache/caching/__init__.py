"""``litellm.caching``'s public names, so its caching examples run with ``semcache`` in
place of ``litellm``: ``from semcache.caching import Cache, enable_cache, disable_cache``
and ``from semcache.caching.caching import Cache``.

``Cache``, ``enable_cache``, ``update_cache`` and ``disable_cache`` are semcache's own
(they set ``semcache.cache``). The backend class names (``InMemoryCache``,
``DualCache``, ``DiskCache``, ``RedisCache``, ``S3Cache``, ``GCSCache``,
``AzureBlobCache``) name semcache's stores, which implement semcache's ``ExactStore``
seam (``get``/``set``/``delete``/``clear``), not LiteLLM's ``get_cache``/``set_cache``:
they exist so that ``isinstance(cache.cache, InMemoryCache)`` and imports keep working.
The optional backends are imported only when their name is used.
"""

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
    "AzureBlobCache",
    "Cache",
    "CacheHit",
    "CacheMode",
    "DiskCache",
    "DualCache",
    "GCSCache",
    "InMemoryCache",
    "LiteLLMCacheType",
    "RedisCache",
    "S3Cache",
    "disable_cache",
    "enable_cache",
    "update_cache",
]


def __getattr__(name: str) -> Any:
    return _lazy(name)
