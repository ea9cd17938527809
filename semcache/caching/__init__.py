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

from . import _names
from ._names import *  # noqa: F403 - the names both modules export, written once there
from ._names import __getattr__ as __getattr__

#: plus the optional backends' classes, imported on first use (``_names.__getattr__``)
__all__ = sorted([*_names.__all__, *_names._LAZY])
