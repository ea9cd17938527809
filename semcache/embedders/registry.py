"""Model names -> embedders: one table, classes imported only when chosen.

``resolve_embedder`` is the edge where strings become instances (STYLE.md: constructors
take instances; strings live at the edge)::

    all-MiniLM-L6-v2, sentence-transformers/all-MiniLM-L6-v2   -> OnnxEmbedder (packaged)
    all-mpnet-base-v2, sentence-transformers/all-mpnet-base-v2 -> OnnxEmbedder (mpnet extra)
    onnx:<folder>                                              -> OnnxEmbedder
    sentence-transformers/<other>, <local folder>              -> SentenceTransformerEmbedder
    text-embedding-3-small|-large, text-embedding-ada-002,
    openai/<any model>                                         -> OpenAIEmbedder

``KNOWN_DIMS`` gives the vector size of the named models without loading anything, so an
index can be created (or its manifest checked) before the first embedding.

``get_embedder`` keeps one instance per model per process, so every ``Cache`` naming a
model shares its weights and LRU.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from .base import Embedder

__all__ = ["BACKENDS", "DEFAULT_EMBEDDING_MODEL", "KNOWN_DIMS", "embedder_dim", "get_embedder",
           "resolve_embedder"]

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"

#: backend name -> "module:Class", imported on use (torch, onnxruntime and the openai
#: client stay out of ``import semcache``)
BACKENDS = {
    "onnx": "semcache.embedders.onnx:OnnxEmbedder",
    "sentence-transformers": "semcache.embedders.local:SentenceTransformerEmbedder",
    "openai": "semcache.embedders.openai:OpenAIEmbedder",
}

#: exact model names -> (backend, model argument)
MODELS: dict[str, tuple[str, str]] = {
    "all-MiniLM-L6-v2": ("onnx", "all-MiniLM-L6-v2"),
    "sentence-transformers/all-MiniLM-L6-v2": ("onnx", "all-MiniLM-L6-v2"),
    # issue #20: better Quora ranking, several times the cost (docs/embedders.md)
    "all-mpnet-base-v2": ("onnx", "all-mpnet-base-v2"),
    "sentence-transformers/all-mpnet-base-v2": ("onnx", "all-mpnet-base-v2"),
    "text-embedding-3-small": ("openai", "text-embedding-3-small"),
    "text-embedding-3-large": ("openai", "text-embedding-3-large"),
    "text-embedding-ada-002": ("openai", "text-embedding-ada-002"),
}

#: native vector sizes of the models above (``dimensions=`` overrides OpenAI's)
KNOWN_DIMS = {
    "all-MiniLM-L6-v2": 384,
    "sentence-transformers/all-MiniLM-L6-v2": 384,
    "all-mpnet-base-v2": 768,
    "sentence-transformers/all-mpnet-base-v2": 768,
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def _route(name: str) -> tuple[str, str]:
    if name in MODELS:
        return MODELS[name]
    if name.startswith("openai/") and len(name) > len("openai/"):
        return "openai", name[len("openai/"):]
    if name.startswith("onnx:"):
        return "onnx", name[len("onnx:"):]
    if name.startswith("sentence-transformers/") or Path(name).expanduser().is_dir():
        return "sentence-transformers", name
    raise ConfigError(
        f"unknown embedding model {name!r}: use one of {sorted(MODELS)}, "
        "'openai/<model>' for an OpenAI-compatible endpoint, 'onnx:<folder>', "
        "'sentence-transformers/<model>' or a local model folder",
        parameter="embedding_model",
    )


def _load(backend: str) -> Callable[..., Embedder]:
    module, _, cls = BACKENDS[backend].partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def resolve_embedder(name_or_instance: str | os.PathLike[str] | Embedder,
                     **opts: Any) -> Embedder:
    """An ``Embedder`` for a model name, a folder, or an instance (returned as is).

    ``opts`` go to the chosen class (``api_base``, ``api_key``, ``dimensions``,
    ``timeout`` for OpenAI; ``variant``, ``threads`` for ONNX; ...). Nothing is loaded
    and no request is made here.
    """
    if isinstance(name_or_instance, Embedder):
        if opts:
            raise ConfigError(
                f"options {sorted(opts)} cannot apply to an embedder instance; "
                "configure the instance instead", parameter=min(opts))
        return name_or_instance
    if not isinstance(name_or_instance, (str, os.PathLike)):
        raise ConfigError(
            f"embedding model must be a name, a folder or an Embedder, not "
            f"{type(name_or_instance).__name__}", parameter="embedding_model")
    backend, model = _route(os.fspath(name_or_instance))
    cls = _load(backend)
    try:
        return cls(model, **opts)
    except TypeError as exc:  # an option the class does not take: name it
        raise ConfigError(f"{getattr(cls, '__name__', backend)}: {exc}",
                          parameter="embedding_model") from exc


def embedder_dim(name: str, *, dimensions: int | None = None) -> int | None:
    """Vector size of a named model without loading it, or None if unknown."""
    if dimensions is not None:
        return dimensions
    name = name.removeprefix("openai/")
    return KNOWN_DIMS.get(name)


# -- one instance per model per process, so models and LRUs are shared --
_EMBEDDERS: dict[str, Embedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def get_embedder(model: str | os.PathLike[str] | Embedder | None) -> Embedder:
    """The process's embedder for ``model`` (the default model when None), made once."""
    if isinstance(model, Embedder):
        return model
    name = model or DEFAULT_EMBEDDING_MODEL
    if not isinstance(name, (str, os.PathLike)):
        raise ConfigError(f"embedding model must be a name, a path or an Embedder, got "
                          f"{type(name).__name__}", parameter="embedding_model")
    key = str(name)
    with _EMBEDDERS_LOCK:
        emb = _EMBEDDERS.get(key)
        if emb is None:
            emb = _EMBEDDERS[key] = resolve_embedder(key)
        return emb
