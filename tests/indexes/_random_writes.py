"""The random writes the FAISS index tests replay against a plain-dict model: adds (with
names that collide, so some are replacements), deletes, and moves of an entry to
another context, each with an expiry. Shared by the int8-copy and approximate-shard
tests, which then compare the index's top-k with brute force over the model."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from semcache.indexes.base import IndexEntry
from semcache.indexes.faiss import FaissIndex
from tests.contracts.vector_index import T0, unit

#: key -> (vector, context, expires_at)
Model = dict[str, tuple[np.ndarray, str, float]]


def entries(prefix: str, ctx: str, n: int, expires: np.ndarray | None = None
            ) -> list[IndexEntry]:
    return [IndexEntry(f"n:{prefix}{i}", ctx, "n", f"p{i}", T0,
                       None if expires is None else float(expires[i])) for i in range(n)]


def random_writes(data: st.DataObject, rng: np.random.Generator, idx: FaissIndex,
                  dim: int, *, max_add: int, names: int, max_delete: int) -> Model:
    """Draw 1-6 writes into ``idx`` (context "c", moves to "d"); returns the model."""
    model: Model = {}
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["add", "add", "delete", "move"]))
        if op == "add":
            n = data.draw(st.integers(1, max_add))
            keys = rng.integers(0, names, n)
            vecs = unit(rng, n, dim)
            exp = T0 + rng.integers(1, 100, n)
            es = [IndexEntry(f"n:k{j}", "c", "n", f"p{j}", T0, float(x))
                  for j, x in zip(keys, exp)]
            idx.add(es, vecs)
            for e, v in zip(es, vecs):
                model[e.key] = (v, "c", float(e.expires_at or 0))
        elif op == "delete" and model:
            doomed = list(rng.choice(sorted(model), size=min(len(model), max_delete),
                                     replace=False))
            assert idx.delete(doomed) == len(doomed)
            for k in doomed:
                del model[k]
        elif op == "move" and model:
            k = min(model)
            v, _, x = model[k]
            idx.add([IndexEntry(k, "d", "n", "moved", T0, x)], v[None])
            model[k] = (v, "d", x)
    return model
