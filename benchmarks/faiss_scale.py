"""FaissIndex at scale: recall@1 against brute force and search latency.

    python benchmarks/faiss_scale.py --n 1000000 --dim 384 --data clustered --nprobe 16 32 64

One context holds ``--n`` entries (so its shard is approximate above the threshold) and
a small context holds 5 more. Two query sets per run, answered against brute force:
``near`` (a stored vector plus noise, i.e. a paraphrase of a cached prompt: the queries
a cache must not miss) and ``fresh`` (drawn from the data distribution; for random data
these have no real neighbour, top-1 cosine ~0.2, a cache miss whichever entry wins). Not a test: numbers go to docs/indexes.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from semcache.indexes.base import IndexEntry
from semcache.indexes.faiss import FaissIndex


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):  # chunks: no 2x temporary of a 1.5 GB matrix
        v = rng.standard_normal((min(n - s, 100_000), dim), dtype=np.float32)
        out[s:s + len(v)] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def clustered(rng: np.random.Generator, n: int, dim: int, centres: np.ndarray) -> np.ndarray:
    """Topics of varying tightness: each vector is a topic centre plus noise whose weight
    is uniform in [0.3, 1.5], so same-topic cosines spread over ~0.3-0.9, as sentence
    embeddings of one subject do."""
    clusters = len(centres)
    out = unit(rng, n, dim)
    for s in range(0, n, 100_000):
        m = len(out[s:s + 100_000])
        w = rng.uniform(0.3, 1.5, (m, 1)).astype(np.float32)
        v = centres[rng.integers(0, clusters, m)] + w * out[s:s + m]
        out[s:s + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--data", choices=["random", "clustered"], default="clustered")
    ap.add_argument("--clusters", type=int, default=5000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--noise", type=float, default=0.5,
                    help="weight of the noise added to a stored vector for 'near' queries "
                         "(0.5 in 384-d: cosine ~0.9 with the stored one)")
    ap.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reprobe-below", type=float, default=0.5,
                    help="FaissIndex(reprobe_below=...); a negative value disables it")
    args = ap.parse_args()
    import faiss

    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    centres = unit(rng, args.clusters, args.dim)
    x = unit(rng, args.n, args.dim) if args.data == "random" else \
        clustered(rng, args.n, args.dim, centres)
    gen_s = time.perf_counter() - t
    entries = [IndexEntry(f"n:{i}", "big", "n", "", 0.0, None) for i in range(args.n)]
    picks = rng.integers(0, args.n, args.queries)
    near = x[picks] + args.noise * unit(rng, args.queries, args.dim)
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    fresh = unit(rng, args.queries, args.dim) if args.data == "random" else \
        clustered(rng, args.queries, args.dim, centres)
    truth = {}
    for name, qs in (("near", near), ("fresh", fresh)):
        best = np.empty(len(qs), np.int64)
        top = np.empty(len(qs), np.float32)
        for s in range(0, len(qs), 100):
            sims = qs[s:s + 100] @ x.T
            best[s:s + 100] = sims.argmax(1)
            top[s:s + 100] = sims.max(1)
        truth[name] = (best, top)
    results = []
    for nprobe in args.nprobe:
        idx = FaissIndex(args.dim, nprobe=nprobe, reprobe_below=None
                         if args.reprobe_below < 0 else args.reprobe_below)
        t = time.perf_counter()
        idx.add(entries, x)
        build_s = time.perf_counter() - t
        small = unit(rng, 5, args.dim)
        idx.add([IndexEntry(f"n:s{i}", "small", "n", "", 0.0, None) for i in range(5)], small)
        row: dict = {"n": args.n, "dim": args.dim, "data": args.data, "nprobe": nprobe,
                     "reprobe_below": idx.reprobe_below,
                     "approximate_shards": idx.approximate_shards(),
                     "add_and_build_s": round(build_s, 1)}
        for name, qs in (("near", near), ("fresh", fresh)):
            best, top = truth[name]
            lat, hits, gaps = [], 0, []
            for q, b, tv in zip(qs, best, top):
                t = time.perf_counter()
                (c,) = idx.search(q, "big", k=1)
                lat.append(time.perf_counter() - t)
                hits += c.key == f"n:{b}"
                gaps.append(float(tv) - c.similarity)
            lat_ms = np.array(lat) * 1000
            row[name] = {"recall@1": hits / len(qs),
                         "mean_top1_cosine": round(float(top.mean()), 3),
                         "max_similarity_gap": round(max(gaps), 4),
                         "p50_ms": round(float(np.percentile(lat_ms, 50)), 3),
                         "p99_ms": round(float(np.percentile(lat_ms, 99)), 3)}
        lat = []
        for q in near[:200]:
            t = time.perf_counter()
            idx.search(q, "small", k=1)
            lat.append(time.perf_counter() - t)
        row["small_context_p50_ms"] = round(float(np.percentile(np.array(lat) * 1000, 50)), 3)
        results.append(row)
        print(json.dumps(row), flush=True)
        idx.close()
        del idx
    t = time.perf_counter()
    for q in near[:20]:
        x @ q
    print(json.dumps({"exact_scan_ms": round((time.perf_counter() - t) / 20 * 1000, 2),
                      "generate_s": round(gen_s, 1)}))


if __name__ == "__main__":
    main()
