"""One table from LiteLLM's type strings to lazily imported backends.

Each type names a builder ("module:attr") and the parameters it accepts. Builders of
exact-only types return an ``ExactStore``; builders of semantic types take the resolved
``Embedder`` and return ``(ExactStore, VectorIndex)``. The semantic builders live here,
not in the seams: pairing a store with an index (and giving both one connection) is the
only place that knows both, so ``exact/`` and ``indexes/`` never import each other. A
missing optional dependency surfaces as ``MissingDependency`` with the extra to install.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import ConfigError, MissingDependency
from .embedders.base import Embedder

# re-exported: they lived here before the per-process instances moved to the embedders'
# own table (a seam never imports the core)
from .embedders.registry import DEFAULT_EMBEDDING_MODEL, get_embedder
from .exact.base import ExactStore
from .indexes.base import VectorIndex

if TYPE_CHECKING:
    from .exact.memory import MemoryStore

__all__ = ["DEFAULT_EMBEDDING_MODEL", "TYPES", "TypeSpec", "build_backends", "get_embedder"]



@dataclass(frozen=True, slots=True)
class TypeSpec:
    target: str  #: "module:attr" (a class with ``from_params`` or a function)
    params: frozenset[str]
    semantic: bool = False
    extra: str = ""  #: pip extra that provides it
    embedder_param: str | None = None  #: LiteLLM's name for the embedding model
    remote: bool = False  #: a shared store: the in-memory names build a front tier


_MEMORY = frozenset({"max_size_in_memory", "max_size_per_item"})
# Each exact-store type accepts its module's PARAMS less ``ttl`` (the Cache's own);
# tests/test_registry.py keeps the table and the modules in step.
_REDIS = frozenset({"host", "port", "password", "username", "db", "ssl", "redis_url",
                    "redis_startup_nodes", "socket_timeout", "socket_connect_timeout"})

#: on a remote exact-store type, any of these puts a bounded in-memory tier in front
#: (LiteLLM's DualCache). Never on the in-process types: there the bounds are the
#: store's own, exactly (a front tier over a default-sized store honoured neither).
_TIER = frozenset({"max_size_in_memory", "max_size_per_item", "default_in_memory_ttl"})

TYPES: dict[str, TypeSpec] = {
    "local": TypeSpec("semcache._registry:build_local", _MEMORY),
    "disk": TypeSpec("semcache._registry:build_disk", frozenset({"disk_cache_dir",
                                                                 "disk_size_limit"})),
    "faiss-semantic": TypeSpec(
        "semcache._registry:build_faiss_semantic",
        _MEMORY | {"disk_cache_dir", "disk_size_limit", "embedding_model"},
        semantic=True, extra="local", embedder_param="embedding_model"),
    "redis": TypeSpec("semcache.exact.redis:RedisStore", _REDIS | _TIER, extra="redis",
                      remote=True),
    "redis-semantic": TypeSpec(
        "semcache._registry:build_redis_semantic",
        _REDIS | {"redis_semantic_cache_embedding_model", "redis_semantic_cache_index_name",
                  "redis_semantic_cache_use_async"},
        semantic=True, extra="redisvl", embedder_param="redis_semantic_cache_embedding_model"),
    "qdrant-semantic": TypeSpec(
        "semcache._registry:build_qdrant_semantic",
        frozenset({"qdrant_api_base", "qdrant_api_key", "qdrant_collection_name",
                   "qdrant_semantic_cache_embedding_model", "qdrant_quantization_config",
                   "qdrant_path", "qdrant_timeout"}),
        semantic=True, extra="qdrant", embedder_param="qdrant_semantic_cache_embedding_model"),
    "s3": TypeSpec(
        "semcache.exact.s3:S3Store",
        frozenset({"s3_bucket_name", "s3_region_name", "s3_api_version", "s3_use_ssl",
                   "s3_verify", "s3_endpoint_url", "s3_aws_access_key_id",
                   "s3_aws_secret_access_key", "s3_aws_session_token", "s3_config",
                   "s3_path", "s3_create_bucket", "s3_timeout"}) | _TIER,
        extra="s3", remote=True),
    "gcs": TypeSpec(
        "semcache.exact.gcs:GCSStore",
        frozenset({"gcs_bucket_name", "gcs_path_service_account", "gcs_path",
                   "gcs_endpoint_url", "gcs_project", "gcs_create_bucket",
                   "gcs_timeout"}) | _TIER,
        extra="gcs", remote=True),
    "azure_blob": TypeSpec(
        "semcache.exact.azure:AzureBlobStore",
        frozenset({"azure_account_url", "azure_blob_container", "azure_connection_string",
                   "azure_path", "azure_create_container", "azure_timeout"}) | _TIER,
        extra="azure", remote=True),
}


def _load(target: str, extra: str) -> Any:
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("semcache"):
            raise MissingDependency(f"{target} is not available in this build") from exc
        raise MissingDependency(
            f"{target} needs the '{exc.name}' package: pip install 'semcache[{extra}]'"
        ) from exc


def build_backends(
    type: str, params: dict[str, Any], embedder: Embedder | None
) -> tuple[ExactStore, VectorIndex | None]:
    spec = TYPES[type]
    target = _load(spec.target, spec.extra)
    make = getattr(target, "from_params", target)
    if spec.semantic:
        store, index = make(embedder=embedder, **params)
        return store, index
    tier = {k: params.pop(k) for k in _TIER if k in params} if spec.remote else {}
    store = make(**params)
    if tier:  # LiteLLM's DualCache: a bounded in-memory tier in front of the remote store
        from .exact.tiered import TieredStore

        store = TieredStore.from_params(back=store, **tier)
    return store, None


# -- builders of the in-process types --
def _memory(params: dict[str, Any]) -> MemoryStore:
    from .exact.memory import MemoryStore

    return MemoryStore(**{k: params[k] for k in _MEMORY if k in params})


def build_local(**params: Any) -> ExactStore:
    # LiteLLM's default_in_memory_ttl is the cache's ttl (semcache._compat maps it)
    return _memory(params)


def build_disk(disk_cache_dir: str | os.PathLike[str] = ".semcache",
               disk_size_limit: int = 2**30) -> ExactStore:
    from .exact.disk import DiskStore

    return DiskStore(disk_cache_dir, size_limit=disk_size_limit)


def build_faiss_semantic(embedder: Embedder, embedding_model: Any = None,
                         disk_cache_dir: str | os.PathLike[str] | None = None,
                         disk_size_limit: int = 2**30,
                         **memory: Any) -> tuple[ExactStore, VectorIndex]:
    from .indexes.faiss import FaissIndex

    if disk_cache_dir is None:
        mem = _memory(memory)
        index = FaissIndex(model_id=embedder.model_id)
        # the index is bounded with the store: an answer the LRU evicts takes its
        # vector and prompt with it (else the index grew without bound: 300 vectors
        # for a 50-entry store)
        mem.on_evict = index.delete
        return mem, index
    if memory:
        raise ConfigError(f"{sorted(memory)[0]} applies to the in-memory store; with "
                          "disk_cache_dir the store is on disk", parameter=sorted(memory)[0])
    store = build_disk(disk_cache_dir, disk_size_limit)
    index = FaissIndex(path=Path(disk_cache_dir) / "index", model_id=embedder.model_id)
    return store, index


# -- builders of the shared-server types: one connection for the store and the index --
#: LiteLLM parameters accepted for compatibility that change nothing here: every
#: semcache cache is natively sync and async.
_ACCEPTED_NOOPS = ("redis_semantic_cache_use_async",)


def build_redis_semantic(
    embedder: Embedder,
    redis_semantic_cache_embedding_model: Any = None,  # resolved into ``embedder``
    redis_semantic_cache_index_name: str = "semcache",
    **params: Any,
) -> tuple[ExactStore, VectorIndex]:
    """``redis-semantic``: a ``RedisStore`` and a ``RedisVLIndex`` on one connection."""
    from .exact.redis import RedisStore
    from .indexes.redisvl import RedisVLIndex

    for name in _ACCEPTED_NOOPS:
        params.pop(name, None)
    if params.get("redis_startup_nodes") is not None:
        raise ConfigError("redis-semantic needs a single Redis Stack server (the search "
                          "module does not run on an OSS cluster): give host/port or "
                          "redis_url", parameter="redis_startup_nodes")
    store = RedisStore.from_params(**params)
    index = RedisVLIndex(store.connection, redis_semantic_cache_index_name,
                         model_id=embedder.model_id)
    return store, index


def build_qdrant_semantic(
    embedder: Embedder,
    qdrant_api_base: str | None = None,
    qdrant_api_key: str | None = None,
    qdrant_collection_name: str = "semcache",
    qdrant_semantic_cache_embedding_model: Any = None,  # resolved into ``embedder``
    qdrant_quantization_config: str | None = None,
    qdrant_path: str | os.PathLike[str] | None = None,
    qdrant_timeout: float | None = None,
) -> tuple[ExactStore, VectorIndex]:
    """``qdrant-semantic``: a ``QdrantStore`` and a ``QdrantIndex`` on one connection."""
    from ._connections.qdrant import QdrantConnection
    from .exact.qdrant import QdrantStore
    from .indexes.qdrant import QdrantIndex

    conn = QdrantConnection(url=qdrant_api_base, api_key=qdrant_api_key, path=qdrant_path,
                            timeout=qdrant_timeout)
    try:
        index = QdrantIndex(conn, qdrant_collection_name, model_id=embedder.model_id,
                            quantization=qdrant_quantization_config)
        store = QdrantStore(conn, qdrant_collection_name + "_answers")
    except BaseException:
        conn.close()
        raise
    return store, index
