"""Embedders. ``get_embedder(name)`` is the public way to get one by name: one instance
per model per process, shared with every ``Cache`` that names the same model (so a
notebook that embeds a data set and the caches it builds load the model once)."""

from __future__ import annotations

from typing import Any

__all__ = ["get_embedder"]


def __getattr__(name: str) -> Any:
    # lazily, so importing a backend module does not load the model table
    if name == "get_embedder":
        from .registry import get_embedder

        return get_embedder
    raise AttributeError(f"module 'semcache.embedders' has no attribute {name!r}")
