"""Is the int8 ONNX embedder good enough to be the default? (issue 6)

Embeds every text of the labeled pair sets with the fp32 and the int8 export of
all-MiniLM-L6-v2 and reports:
- cosine(fp32, int8) per text: min, 0.1th percentile, mean (bar: >= 0.99);
- precision and recall of "similarity >= threshold means duplicate" for each variant at
  thresholds 0.8 / 0.9 / 0.95, and their deltas (bar: |delta| < 0.005 at 0.9).

    python benchmarks/int8_quality.py [--limit N] [--data /work/shared/data]

Writes benchmarks/results/int8_quality.json. The data sets are not part of the package
(see /work/shared/data/README.md for their sources and licences).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semcache.embedders.onnx import OnnxEmbedder

THRESHOLDS = (0.8, 0.9, 0.95)


def load_pairs(data: Path, limit: int | None) -> dict[str, list[tuple[str, str, int]]]:
    sets: dict[str, list[tuple[str, str, int]]] = {}
    qqp = []
    with gzip.open(data / "qqp" / "pairs.jsonl.gz", "rt") as f:
        for line in f:
            r = json.loads(line)
            qqp.append((r["query"], r["candidate"], int(r["label"])))
    paws = []
    with open(data / "paws" / "dev.tsv", newline="") as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) == 4 and row[3] in ("0", "1"):
                paws.append((row[1], row[2], int(row[3])))
    sets["qqp"], sets["paws"] = qqp, paws
    if limit:
        rng = np.random.default_rng(0)
        for k, v in sets.items():
            if len(v) > limit:
                sets[k] = [v[i] for i in sorted(rng.choice(len(v), limit, replace=False))]
    return sets


def pr(sim: np.ndarray, labels: np.ndarray, t: float) -> tuple[float, float]:
    pred = sim >= t
    tp = int(np.sum(pred & (labels == 1)))
    precision = tp / max(int(pred.sum()), 1)
    recall = tp / max(int((labels == 1).sum()), 1)
    return precision, recall


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--limit", type=int, default=None, help="pairs per set (default: all)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "int8_quality.json"))
    args = ap.parse_args()
    sets = load_pairs(Path(args.data), args.limit)
    texts = sorted({t for pairs in sets.values() for a, b, _ in pairs for t in (a, b)})
    index = {t: i for i, t in enumerate(texts)}
    vecs = {}
    for variant in ("fp32", "int8"):
        emb = OnnxEmbedder(variant=variant, cache_size=0)
        t0 = time.perf_counter()
        vecs[variant] = emb.embed(texts)
        dt = time.perf_counter() - t0
        print(f"{variant}: {len(texts)} texts in {dt:.1f} s ({len(texts) / dt:.0f}/s)",
              flush=True)
    cos = np.sum(vecs["fp32"] * vecs["int8"], axis=1)
    report: dict = {
        "machine": f"{platform.machine()}, {platform.processor() or '?'}, "
                   f"{__import__('os').cpu_count()} cores",
        "texts": len(texts),
        "limit_pairs_per_set": args.limit,
        "cosine_fp32_int8": {"min": float(cos.min()), "p0.1": float(np.percentile(cos, 0.1)),
                             "p1": float(np.percentile(cos, 1)), "mean": float(cos.mean())},
        "sets": {},
    }
    for name, pairs in sets.items():
        a = np.array([index[p[0]] for p in pairs])
        b = np.array([index[p[1]] for p in pairs])
        labels = np.array([p[2] for p in pairs])
        row: dict = {"pairs": len(pairs), "positives": int(labels.sum())}
        for t in THRESHOLDS:
            res = {}
            for variant, v in vecs.items():
                sim = np.sum(v[a] * v[b], axis=1)
                p, r = pr(sim, labels, t)
                res[variant] = {"precision": p, "recall": r}
            res["delta_precision"] = res["int8"]["precision"] - res["fp32"]["precision"]
            res["delta_recall"] = res["int8"]["recall"] - res["fp32"]["recall"]
            row[str(t)] = res
        report["sets"][name] = row
    ok_cos = report["cosine_fp32_int8"]["min"] >= 0.99
    ok_pr = all(abs(report["sets"][s]["0.9"][d]) < 0.005
                for s in report["sets"] for d in ("delta_precision", "delta_recall"))
    report["int8_passes"] = {"cosine>=0.99": ok_cos, "pr_delta<0.005@0.9": ok_pr}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"cosine(fp32,int8): {report['cosine_fp32_int8']}")
    print(f"{'set':6} {'thr':>5} {'P fp32':>8} {'P int8':>8} {'dP':>8} "
          f"{'R fp32':>8} {'R int8':>8} {'dR':>8}")
    for s, row in report["sets"].items():
        for t in THRESHOLDS:
            r = row[str(t)]
            print(f"{s:6} {t:5.2f} {r['fp32']['precision']:8.4f} {r['int8']['precision']:8.4f} "
                  f"{r['delta_precision']:+8.4f} {r['fp32']['recall']:8.4f} "
                  f"{r['int8']['recall']:8.4f} {r['delta_recall']:+8.4f}")
    print("int8 passes:", report["int8_passes"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
