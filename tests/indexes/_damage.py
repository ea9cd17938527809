"""Shared by the Qdrant and RedisVL tests of entries another writer damaged: an embedder
that puts every prompt on one vector, and the feedback scenario both indexes must pass."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from semcache.embedders.base import Embedder


class Same(Embedder):
    """Every prompt is one vector: every stored entry is a candidate of every lookup."""

    model_id = "same"
    dim = 4

    def _embed(self, texts):
        return np.ones((len(texts), 4), np.float32)


def feedback_after_damage(cache: Any, on_error: str, damage: Callable[[str], None]) -> None:
    """Store "a", hit it with "b", let ``damage(key)`` break the entry's stored
    observations, then record the hit as wrong: no fault (whatever ``on_error``), one
    repair, and the outcome is kept (never served to "b" again, still to "c")."""
    ask = {"model": "m"}
    key = cache.add_cache({"answer": "a"}, messages=[{"role": "user", "content": "a"}], **ask)
    hit = cache.lookup(messages=[{"role": "user", "content": "b"}], **ask)
    assert hit is not None and hit.metadata["stage"] == "semantic"
    damage(key)
    assert cache.feedback(hit, correct=False) is True
    assert cache.stats()["errors_total"] == 0, on_error
    assert cache.index.repaired == 1
    assert cache.lookup(messages=[{"role": "user", "content": "b"}], **ask) is None
    assert cache.lookup(messages=[{"role": "user", "content": "c"}], **ask) is not None
