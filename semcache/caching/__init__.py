"""LiteLLM's import paths, so its caching examples run with ``semcache`` in place of
``litellm``: ``from semcache.caching import Cache`` and
``from semcache.caching.caching import Cache``. The names live in ``semcache``."""

from .._cache import Cache, CacheHit
from .._config import CacheMode

__all__ = ["Cache", "CacheHit", "CacheMode"]
