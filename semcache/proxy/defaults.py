"""LiteLLM proxy's cache defaults, and the one start-up line (issue #22).

A team moving from LiteLLM's proxy brings its ``config.yaml``. Two things must then
mean what they meant there:

- ``cache: true`` without a ``type`` is LiteLLM's default cache: Redis built from
  ``REDIS_HOST``/``REDIS_PORT``/``REDIS_PASSWORD``/``REDIS_URL`` when any is set (so the
  workers share it), else an in-memory exact cache. Never a semantic cache the config
  did not ask for: serving a paraphrase is a behaviour the operator must opt into.
- A parameter LiteLLM's ``Cache`` knows but that does not apply to the chosen type here
  (``s3_use_ssl``, ``qdrant_quantization_config``, ``similarity_threshold`` on an exact
  type, ...) is a start-up warning naming it, then dropped, as LiteLLM ignores what a
  type does not use. A name LiteLLM does not know either is left in, so ``Cache``
  refuses it with a did-you-mean: a typo still stops the proxy.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

__all__ = ["LITELLM_CACHE_PARAMS", "REDIS_ENV", "apply_litellm_defaults", "startup_line"]

#: the environment LiteLLM's proxy builds its default Redis cache from
REDIS_ENV = ("REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_URL")

#: every parameter of LiteLLM's ``Cache.__init__`` (litellm/caching/caching.py) and the
#: Redis client options its proxy docs show in ``cache_params``
LITELLM_CACHE_PARAMS = frozenset({
    "type", "mode", "host", "port", "password", "namespace", "ttl", "default_in_memory_ttl",
    "default_in_redis_ttl", "similarity_threshold", "supported_call_types",
    "s3_bucket_name", "s3_region_name", "s3_api_version", "s3_use_ssl", "s3_verify",
    "s3_endpoint_url", "s3_aws_access_key_id", "s3_aws_secret_access_key",
    "s3_aws_session_token", "s3_config", "s3_path", "redis_semantic_cache_use_async",
    "redis_semantic_cache_embedding_model", "redis_semantic_cache_index_name",
    "redis_flush_size", "redis_startup_nodes", "disk_cache_dir", "qdrant_api_base",
    "qdrant_api_key", "qdrant_collection_name", "qdrant_quantization_config",
    "qdrant_semantic_cache_embedding_model", "qdrant_semantic_cache_vector_size",
    "azure_account_url", "azure_blob_container", "gcs_bucket_name",
    "gcs_path_service_account", "gcs_path", "max_connections", "url", "username", "db",
    "ssl", "socket_timeout", "socket_connect_timeout", "service_name", "sentinel_nodes",
    "sentinel_password", "redis_semantic_cache_distance_threshold",
})


def default_type(environ: Mapping[str, str]) -> str:
    """LiteLLM's proxy default: ``redis`` when the Redis environment is set."""
    return "redis" if any(environ.get(n) for n in ("REDIS_HOST", "REDIS_URL")) else "local"


def _accepted(cache_type: str) -> frozenset[str] | None:
    """The parameter names ``Cache(type=cache_type)`` uses; None for an unknown type
    (``Cache`` then names the type with a did-you-mean)."""
    from .._cache import _COMMON, _SEMANTIC
    from .._compat import IGNORED
    from .._registry import TYPES

    spec = TYPES.get(cache_type)
    if spec is None:
        return None
    names = spec.params | _COMMON | set(IGNORED) | {"type", "embedder"}
    if spec.semantic:
        names |= _SEMANTIC
        if spec.embedder_param:
            names |= {spec.embedder_param}
    if cache_type in ("redis", "redis-semantic"):
        names |= {"url", "default_in_redis_ttl"}  # _compat maps them
    if cache_type == "local":
        names |= {"default_in_memory_ttl"}
    return frozenset(names)


def apply_litellm_defaults(params: dict[str, Any], environ: Mapping[str, str]
                           ) -> tuple[dict[str, Any], list[str]]:
    """(params with a ``type``, the LiteLLM parameter names dropped as not applying);
    ValueError(name, message) for a name neither LiteLLM nor semcache knows."""
    out = dict(params)
    out.setdefault("type", default_type(environ))
    accepted = _accepted(str(out["type"]))
    if accepted is None:
        return out, []
    from .._registry import TYPES

    known = LITELLM_CACHE_PARAMS.union(*(_accepted(t) or () for t in TYPES))
    for name in out:
        if name not in known:
            # neither LiteLLM's nor semcache's: a typo, refused with the nearest name of
            # both (Cache's own message only knows semcache's names)
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "not a cache parameter"
            raise ValueError(name, f"unknown parameter {name!r}; {hint}")
    dropped = [name for name in out
               if name not in accepted and name in LITELLM_CACHE_PARAMS]
    for name in dropped:
        del out[name]
    return out, dropped


def startup_line(*, host: str, port: int, cache: Any, cache_type: str | None,
                 keys: int, master: bool, workers: int = 1) -> str:
    """The one line ``semcache serve`` prints at start: where, what cache, who may call."""
    if cache is not None:
        backends = cache.stats().get("backend")
        what = f"cache {cache.type} ({backends})"
    elif cache_type is not None:
        what = f"cache {cache_type}"
    else:
        what = "caching off (cache: false)"
    auth = f"{keys} client key{'s' if keys != 1 else ''}, master key " + \
        ("set" if master else "not set")
    line = f"semcache serve on http://{host}:{port}: {what}; {auth}"
    if workers > 1:
        line += f"; {workers} workers"
    if not master and not keys:
        line += ("; WARNING: open proxy: no master_key and no keys, so anyone who can "
                 "reach this address may call every model and manage the cache")
    return line
