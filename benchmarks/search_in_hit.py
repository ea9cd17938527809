"""A shard's search right after an embedding: exact scan, whole int8 copy, routed copy (#25).

    .venv/bin/python benchmarks/search_in_hit.py                      # 1k-15k rows
    .venv/bin/python benchmarks/search_in_hit.py --sizes 2000 10000 --out x.json
    .venv/bin/python benchmarks/search_in_hit.py --hit --sizes 10000   # the whole hit

Inside a hit the search runs right after onnxruntime has pushed the shard out of the
CPU caches, so it costs more than the same search alone. For each size, one context of
real Quora question embeddings (the stored side of label-1 pairs) plus the clustered
filler of ``hit_latency.py``, in three ``FaissIndex`` objects (``VARIANTS``): the exact
scan (``compact_threshold=None``), the int8 copy (forced) with every one of its k-means
lists scanned (``nprobe`` past their number: the whole copy, as it was scanned before
it had lists), and the copy as shipped (``NPROBE`` lists). For each paraphrase query:
embed it, then search one index; they rotate which goes first. Reports p50/p90 of the
search and recall@1 against numpy's brute force over the same rows. Chooses
``COMPACT_THRESHOLD`` (semcache/indexes/faiss.py); not a test.

``--hit``: the whole lookup instead, through three ``faiss-semantic`` caches that share
one embedder (LRU off) and differ only in ``compact_threshold`` and ``nprobe``; per
paraphrase the embedder alone and the three lookups, in rotating order, so the hits'
ratios to the embedding come from the same minutes (``hit_latency.py`` can only compare
two trees run after each other).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _bench_data import QQP, filler, load_pairs  # noqa: E402

from semcache.embedders.onnx import OnnxEmbedder  # noqa: E402
from semcache.indexes.base import IndexEntry  # noqa: E402
from semcache.indexes.faiss import NPROBE, FaissIndex  # noqa: E402

#: (name, compact_threshold, nprobe): the exact scan; the int8 copy with every list
#: scanned (the whole copy, as before its k-means lists); the copy as shipped (the
#: ``NPROBE`` lists nearest the query)
VARIANTS = (("exact", None, NPROBE), ("compact_all", 2, 1 << 30), ("compact", 2, NPROBE))


def whole_hit(emb: OnnxEmbedder, pairs: list[tuple[str, str]], other_vecs: np.ndarray,
              sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    from _bench_data import req

    from semcache import Cache
    from semcache._keys import semantic_split

    caches = {}
    for name, ct, nprobe in VARIANTS:
        c = Cache(type="faiss-semantic", embedder=emb, similarity_threshold=0.8)
        assert isinstance(c.index, FaissIndex)
        c.index.compact_threshold = ct
        c.index.nprobe = nprobe
        for a, _ in pairs:
            c.add_cache({"answer": f"answer to {a}"}, **req(a))
        caches[name] = c
    ctx = semantic_split(caches["exact"].namespace, "completion", req(pairs[0][0])).context
    queries = [b for _, b in pairs]
    rows, have = [], len(pairs)
    for n in sizes:
        if n > have:
            vecs = other_vecs[have - len(pairs):n - len(pairs)]
            for c in caches.values():
                assert c.index is not None
                c.index.add([IndexEntry(f"{c.namespace}:f{i}", ctx, c.namespace, "", 0.0,
                                        None) for i in range(have, n)], vecs)
            have = n
        fns = {"embed": lambda t: emb.embed([t]),
               **{k: (lambda c: lambda t: c.lookup_with_metadata(**req(t)))(c)
                  for k, c in caches.items()}}
        order = list(fns)
        lat: dict[str, list[float]] = {k: [] for k in fns}
        search: dict[str, list[float]] = {k: [] for k in caches}
        for r in range(repeats):
            for i, t in enumerate(queries):
                k0 = (i + r) % len(order)
                for k in order[k0:] + order[:k0]:
                    t0 = time.perf_counter()
                    out = fns[k](t)
                    lat[k].append(time.perf_counter() - t0)
                    if k in search:
                        search[k].append(out[1]["timings_ms"].get("search", 0.0))
        p50 = {k: float(np.median(v)) * 1e3 for k, v in lat.items()}
        row = {"rows": n, "loadavg": os.getloadavg(),
               "p50_ms": {k: round(v, 3) for k, v in p50.items()},
               "search_p50_ms": {k: round(float(np.median(v)), 3) for k, v in search.items()},
               "hit_over_embed": {k: round(p50[k] / p50["embed"], 3) for k in caches}}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+",
                    default=[1_000, 2_000, 3_000, 5_000, 10_000, 15_000])
    ap.add_argument("--texts", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--hit", action="store_true", help="time whole lookups (see above)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    out = Path(args.out or ROOT / "benchmarks" / "results" /
               ("hit_compact.json" if args.hit else "search_in_hit.json"))
    pairs, other = load_pairs(QQP, args.texts, 2_000)
    emb = OnnxEmbedder(cache_size=0)  # every query embeds, as in a hit
    stored = emb.embed([a for a, _ in pairs])
    queries = [b for _, b in pairs]
    qv = emb.embed(queries)
    fill = filler(np.random.default_rng(25), emb.embed(other), max(args.sizes))
    allv = np.concatenate([stored, fill])
    result: dict[str, Any] = {"issue": 25, "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                 time.gmtime()),
                              "cores": os.cpu_count(), "loadavg_before": os.getloadavg(),
                              "texts": len(queries), "repeats": args.repeats, "sizes": []}
    if args.hit:
        result["sizes"] = whole_hit(emb, pairs, fill, args.sizes, args.repeats)
    for n in [] if args.hit else args.sizes:
        idx = {name: FaissIndex(allv.shape[1], approx_threshold=None, compact_threshold=ct,
                                nprobe=nprobe)
               for name, ct, nprobe in VARIANTS}
        for ix in idx.values():
            ix.add([IndexEntry(f"k{i}", "c", "n", "", 0.0, None) for i in range(n)],
                   allv[:n])
        truth = np.argmax(qv @ allv[:n].T, axis=1)
        lat: dict[str, list[float]] = {k: [] for k in idx}
        good = dict.fromkeys(idx, 0)
        for r in range(args.repeats):
            for i, t in enumerate(queries):
                k0 = (i + r) % len(idx)
                for name in list(idx)[k0:] + list(idx)[:k0]:
                    emb.embed([t])
                    t0 = time.perf_counter()
                    got = idx[name].search(qv[i], "c", 4)
                    lat[name].append(time.perf_counter() - t0)
                    good[name] += got[0].key == f"k{truth[i]}"
        row: dict[str, Any] = {"rows": n}
        for name, xs in lat.items():
            row[name] = {"p50_ms": round(float(np.median(xs)) * 1e3, 3),
                         "p90_ms": round(float(np.percentile(xs, 90)) * 1e3, 3),
                         "recall_at_1": round(good[name] / len(xs), 4)}
        for name in idx:
            if name != "exact":
                row[f"{name}_over_exact_p50"] = round(row[name]["p50_ms"] /
                                                      row["exact"]["p50_ms"], 3)
        print(json.dumps(row), flush=True)
        result["sizes"].append(row)
        for ix in idx.values():
            ix.close()
    result["loadavg_after"] = os.getloadavg()
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
