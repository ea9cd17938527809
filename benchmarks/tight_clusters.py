"""Templated prompts: does a mid-sized shard's int8 copy find the exact best row inside a
tight cluster of near-identical rows?

The copy ranks rows by 8-bit codes and rescores its best 32 exactly, so it can miss the
exact best only when more than ~30 rows score within the codes' error (about 1e-3) of
it: a cluster of near-identical prompts. Here one 10k-row context (384-d) holds 2,000
rows around one centre, at several tightnesses, and 8,000 unrelated rows; each of 100
queries is a cluster row plus a little noise. Counted: how often the index returns the
exact best row, through the int8 copy (the default tiers: its k-means lists nearest the
query), through the IVF forced at this size (the copy's codes and lists since
2026-12-07; FAISS's trained 8-bit codes before, which found 40 of 100 at pairwise cosine
0.9975: this file's results as committed in 1c901ef) and through the exact scan
(``compact_threshold=None``).

    .venv/bin/python benchmarks/tight_clusters.py   # seconds
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semcache.indexes.base import IndexEntry  # noqa: E402
from semcache.indexes.faiss import FaissIndex  # noqa: E402

DIM, CLUSTER, OTHER, QUERIES = 384, 2_000, 8_000, 100
#: (name, approx_threshold, compact_threshold): the default tiers (a 10k shard is the
#: int8 copy), the IVF forced at 10k (its trained 8-bit codes), the exact scan
TIERS = (("int8_copy", None, 4_000), ("ivf_forced", 4_000, None), ("exact_scan", None, None))


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> int:
    rng = np.random.default_rng(0)
    rows = []
    for spread in (0.02, 0.05, 0.1, 0.2):
        cluster = unit(rng, 1)[0] + spread * unit(rng, CLUSTER)
        cluster /= np.linalg.norm(cluster, axis=1, keepdims=True)
        x = np.ascontiguousarray(np.concatenate([cluster, unit(rng, OTHER)]), np.float32)
        picks = rng.integers(0, CLUSTER, QUERIES)
        queries = x[picks] + 0.003 * unit(rng, QUERIES)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        truth = np.argmax(queries @ x.T, axis=1)
        found = {}
        for name, approx, compact in TIERS:
            idx = FaissIndex(DIM, approx_threshold=approx, compact_threshold=compact)
            idx.add([IndexEntry(f"n:e{i}", "c", "n", "", 0.0, None) for i in range(len(x))], x)
            assert idx.compact_shards() == (compact is not None)
            assert idx.approximate_shards() == (approx is not None)
            found[name] = sum(idx.search(q, "c", k=1, now=1.0)[0].key == f"n:e{t}"
                              for q, t in zip(queries, truth))
            idx.close()
        sample = cluster[:300]
        rows.append({"spread": spread,
                     "mean_pairwise_cosine": round(float((sample @ sample.T).mean()), 4),
                     "queries": QUERIES, "exact_best_found": found})
        print(json.dumps(rows[-1]), flush=True)
    out = ROOT / "benchmarks" / "results" / "tight_clusters.json"
    out.write_text(json.dumps({"command": "benchmarks/tight_clusters.py",
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "rows": len(x), "cluster": CLUSTER, "dim": DIM,
                               "results": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
