"""A shard's search right after an embedding, exact scan against the int8 copy (issue #25).

    .venv/bin/python benchmarks/search_in_hit.py                      # 1k-15k rows
    .venv/bin/python benchmarks/search_in_hit.py --sizes 2000 10000 --out x.json

Inside a hit the search runs right after onnxruntime has pushed the shard out of the
CPU caches, so it costs more than the same search alone. For each size, one context of
real Quora question embeddings (the stored side of label-1 pairs) plus the clustered
filler of ``hit_latency.py``, in two ``FaissIndex`` objects: exact scan
(``compact_threshold=None``) and the int8 copy (forced). For each paraphrase query:
embed it, then search one index; the two alternate which goes first. Reports p50/p90
of the search and recall@1 against numpy's brute force over the same rows. Chooses
``COMPACT_THRESHOLD`` (semcache/indexes/faiss.py); not a test.
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
from semcache.indexes.faiss import FaissIndex  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+",
                    default=[1_000, 2_000, 3_000, 5_000, 10_000, 15_000])
    ap.add_argument("--texts", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                         "search_in_hit.json"))
    args = ap.parse_args(argv)
    pairs, other = load_pairs(QQP, args.texts, 2_000)
    emb = OnnxEmbedder(cache_size=0)  # every query embeds, as in a hit
    stored = emb.embed([a for a, _ in pairs])
    queries = [b for _, b in pairs]
    qv = emb.embed(queries)
    allv = np.concatenate([stored, filler(np.random.default_rng(25), emb.embed(other),
                                          max(args.sizes))])
    result: dict[str, Any] = {"issue": 25, "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                 time.gmtime()),
                              "cores": os.cpu_count(), "loadavg_before": os.getloadavg(),
                              "texts": len(queries), "repeats": args.repeats, "sizes": []}
    for n in args.sizes:
        idx = {name: FaissIndex(allv.shape[1], approx_threshold=None, compact_threshold=ct)
               for name, ct in (("exact", None), ("compact", 2))}
        for ix in idx.values():
            ix.add([IndexEntry(f"k{i}", "c", "n", "", 0.0, None) for i in range(n)],
                   allv[:n])
        truth = np.argmax(qv @ allv[:n].T, axis=1)
        lat: dict[str, list[float]] = {k: [] for k in idx}
        good = dict.fromkeys(idx, 0)
        for _ in range(args.repeats):
            for i, t in enumerate(queries):
                for name in (("exact", "compact") if i % 2 else ("compact", "exact")):
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
        row["compact_over_exact_p50"] = round(row["compact"]["p50_ms"] /
                                              row["exact"]["p50_ms"], 3)
        print(json.dumps(row), flush=True)
        result["sizes"].append(row)
        for ix in idx.values():
            ix.close()
    result["loadavg_after"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
