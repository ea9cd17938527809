"""How the embedded index's entries and vectors are written to and read from its folder
(log records and snapshot rows): JSON objects and base64 float32, every field checked on
the way back in, because another process, an older version or a damaged file wrote it."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from .base import IndexEntry

__all__ = ["as_list", "b64", "entry_from_json", "entry_json", "finite", "stamp_from_json",
           "vector_from_b64"]


def entry_json(e: IndexEntry) -> dict[str, Any]:
    return {"key": e.key, "ctx": e.context, "ns": e.namespace, "p": e.prompt,
            "c": e.created_at, "x": e.expires_at}


def entry_from_json(d: Any) -> IndexEntry:
    """An entry as stored in the log or the snapshot, checked: a record another writer
    shaped otherwise raises one of ``_common.MALFORMED``."""
    if not isinstance(d, dict):
        raise TypeError(f"an entry is a JSON object, not {type(d).__name__}")
    key, ctx, ns, prompt, created, expires = d["key"], d["ctx"], d["ns"], d["p"], d["c"], d["x"]
    if not all(isinstance(t, str) for t in (key, ctx, ns, prompt)):
        raise TypeError("key, context, namespace and prompt must be strings")
    return IndexEntry(key, ctx, ns, prompt, finite(created),
                      None if expires is None else finite(expires))


def stamp_from_json(v: Any) -> tuple[float, float | None]:
    """A conditional delete's condition, ``[created, expires]`` (``FaissIndex``)."""
    if not isinstance(v, list) or len(v) != 2:
        raise TypeError("a delete's condition is [created, expires]")
    return finite(v[0]), None if v[1] is None else finite(v[1])


def finite(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        raise ValueError(f"time {str(v)[:40]} is not a finite number")
    return float(v)


def as_list(v: Any) -> list[Any]:
    if not isinstance(v, list):
        raise TypeError(f"expected a list, not {type(v).__name__}")
    return v


def b64(v: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(v, dtype=np.float32).tobytes()).decode()


def vector_from_b64(raw: Any) -> np.ndarray:
    """A stored vector: base64 of little-endian float32 (strict: other characters raise)."""
    if not isinstance(raw, str):
        raise TypeError("vector is not a base64 string")
    return np.frombuffer(base64.b64decode(raw, validate=True), dtype=np.float32)
