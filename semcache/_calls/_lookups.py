"""The sync path's lookups of several requests at once: an embedding batch's items.

``aembedding`` looks its items up concurrently (``asyncio.gather``), so a batch against
a remote store costs about one round trip; the sync ``embedding`` looked them up one
after another, one round trip per item (issue #22). Embedding lookups are exact-stage
only (``SEMANTIC_CALL_TYPES``), so the cost is the store's: against a store in another
process or machine the items are looked up together in a small thread pool; against the
in-process stores (memory, disk: microseconds a lookup) handing work to threads would
cost more than it saves, and they stay in the caller's thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._litellm import begin

__all__ = ["begin_all"]

#: at most this many lookups of one batch in flight: a 2048-item batch must not open
#: 2048 connections to the store
MAX_WORKERS = 16
_IN_PROCESS = frozenset({"memory", "disk"})

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="semcache-lookup")
        return _pool


def _forget_pool() -> None:
    # a forked child has the pool object but none of its threads: make a new one there
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _remote(cache: Any) -> bool:
    store = getattr(cache, "store", None)
    store = getattr(store, "back", store)  # a front tier over a remote store
    return getattr(store, "name", "memory") not in _IN_PROCESS


def begin_all(cache: Any, call_type: str, requests: list[Mapping[str, Any]]) -> list[Any]:
    """The outcomes of ``requests``' lookups, in order."""
    if len(requests) < 2 or not _remote(cache):
        return [begin(cache, call_type, kw) for kw in requests]
    return list(_executor().map(lambda kw: begin(cache, call_type, kw), requests))
