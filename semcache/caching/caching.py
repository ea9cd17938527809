"""``from semcache.caching.caching import Cache``: LiteLLM's module path (see
``semcache.caching``)."""

from __future__ import annotations

from ._names import *  # noqa: F403 - the same names, written once in _names
from ._names import __all__ as __all__
from ._names import __getattr__ as __getattr__
