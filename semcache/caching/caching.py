"""``from semcache.caching.caching import Cache``: LiteLLM's module path (see
``semcache.caching``)."""

from .._cache import Cache, CacheHit
from .._config import CacheMode

__all__ = ["Cache", "CacheHit", "CacheMode"]
