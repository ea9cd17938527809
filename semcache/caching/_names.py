"""The names both ``semcache.caching`` and ``semcache.caching.caching`` export."""

from __future__ import annotations

import importlib
from enum import Enum
from typing import Any

from .. import disable_cache, enable_cache, update_cache
from .._cache import Cache, CacheHit
from .._config import CacheMode
from ..exact.disk import DiskStore as DiskCache
from ..exact.memory import MemoryStore as InMemoryCache
from ..exact.tiered import TieredStore as DualCache

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


class LiteLLMCacheType(str, Enum):
    """LiteLLM's type names; ``Cache(type=LiteLLMCacheType.REDIS)`` works."""

    LOCAL = "local"
    REDIS = "redis"
    REDIS_SEMANTIC = "redis-semantic"
    S3 = "s3"
    DISK = "disk"
    QDRANT_SEMANTIC = "qdrant-semantic"
    AZURE_BLOB = "azure-blob"
    GCS = "gcs"
    FAISS_SEMANTIC = "faiss-semantic"  #: semcache's embedded semantic default


#: stores whose modules need an optional extra: imported on first use of the name
_LAZY = {
    "RedisCache": ("semcache.exact.redis", "RedisStore"),
    "S3Cache": ("semcache.exact.s3", "S3Store"),
    "GCSCache": ("semcache.exact.gcs", "GCSStore"),
    "AzureBlobCache": ("semcache.exact.azure", "AzureBlobStore"),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'semcache.caching' has no attribute {name!r}")
    return getattr(importlib.import_module(target[0]), target[1])
