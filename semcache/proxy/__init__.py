"""``semcache serve``: an OpenAI-compatible caching proxy (see docs/proxy.md)."""

from __future__ import annotations

from typing import Any

__all__ = ["ProxyConfig", "ProxyConfigError", "create_app", "load_config"]


def __getattr__(name: str) -> Any:
    # lazy, so that ``import semcache.proxy.config`` does not need starlette installed
    if name == "create_app":
        from .app import create_app

        return create_app
    if name in ("load_config", "ProxyConfig", "ProxyConfigError"):
        from . import config

        return getattr(config, name)
    raise AttributeError(name)
