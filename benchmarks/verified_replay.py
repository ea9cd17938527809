"""Static thresholds vs the verified policy on the same labeled query streams.

    python benchmarks/verified_replay.py [--data ../shared/data] [--seeds 3] [--quick]

Builds streams from Quora Question Pairs (paraphrase groups of three or more questions,
joined through shared questions, plus their labeled hard negatives) and a hand-built set
of order-sensitive and negation pairs (semcache.policies.replay.order_sensitive_pairs),
replays each stream through real ``faiss-semantic`` caches, and writes
benchmarks/results/verified_replay.json and .png: the hit rate of the best static
threshold whose error on the stream is at or below each target, against the verified
policy at that target, and the error over the stream.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semcache import Cache
from semcache.embedders.local import SentenceTransformerEmbedder
from semcache.policies.replay import (
    build_stream,
    groups_from_pairs,
    order_sensitive_pairs,
    replay,
)
from semcache.policies.verified import VerifiedPolicy

TARGETS = (0.01, 0.02, 0.05)
THRESHOLDS = [round(x, 3) for x in np.arange(0.70, 0.995, 0.01)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--seeds", type=int, default=3, help="streams (shuffles) to average")
    ap.add_argument("--quick", action="store_true", help="a quarter of the groups")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--reuse-static", action="store_true",
                    help="take the static-threshold runs from the last results file "
                         "(they do not depend on the verified policy's code)")
    args = ap.parse_args()

    rows = [json.loads(line) for line in gzip.open(Path(args.data) / "qqp" / "pairs.jsonl.gz",
                                                   "rt", encoding="utf-8")]
    groups, negatives = groups_from_pairs((r["query"], r["candidate"], r["label"])
                                          for r in rows)
    if args.quick:
        groups = groups[: len(groups) // 4]
        keep = {q for g in groups for q in g}
        negatives = [(a, b) for a, b in negatives if a in keep or b in keep]
    hard = order_sensitive_pairs()
    print(f"{len(groups)} paraphrase groups ({sum(map(len, groups))} questions), "
          f"{len(negatives)} hard negatives, {len(hard)} order-sensitive pairs")

    emb = SentenceTransformerEmbedder(cache_size=200_000)
    texts = sorted({q for g in groups for q in g} | {q for p in negatives for q in p}
                   | {q for p in hard for q in p})
    t = time.perf_counter()
    _prefill(emb, texts, Path(args.out) / ".embeddings.npz")
    print(f"embedded {len(texts)} texts in {time.perf_counter() - t:.0f} s")

    results: dict[str, list[dict]] = {}
    traces: dict[str, list[list[int]]] = {}
    last = Path(args.out) / "verified_replay.json"
    if args.reuse_static:
        old = json.loads(last.read_text())["runs"]
        results = {k: v[: args.seeds] for k, v in old.items() if k.startswith("static")}
    for seed in range(args.seeds):
        stream = build_stream(groups, negatives, hard_pairs=hard, seed=seed)
        for th in [] if args.reuse_static else THRESHOLDS:
            c = Cache(type="faiss-semantic", embedder=emb, similarity_threshold=th)
            r = replay(c, stream, f"static {th}")
            results.setdefault(r.name, []).append(r.as_dict())
            print(f"seed {seed} {r.name}: hit rate {r.hit_rate:.3f} error {r.error_rate:.4f}",
                  flush=True)
        for target in TARGETS:
            c = Cache(type="faiss-semantic", embedder=emb, judge=stream.judge,
                      policy=VerifiedPolicy(target, seed=seed), similarity_threshold=0.7)
            r = replay(c, stream, f"verified {target}")
            results.setdefault(r.name, []).append(r.as_dict())
            traces.setdefault(r.name, []).append(r.trace)
            print(f"seed {seed} {r.name}: hit rate {r.hit_rate:.3f} error {r.error_rate:.4f} "
                  f"(2nd half {r.error_after(0.5)[0]:.4f}) explored {r.explored} "
                  f"unlabeled hits {r.unlabeled}", flush=True)

    def mean(name: str, k: str) -> float:
        return float(np.mean([x[k] for x in results[name]]))

    summary = []
    print("\ntarget  best static (error<=target)   verified: hit rate  error  2nd-half error"
          "  explored  ratio")
    for target in TARGETS:
        ok = [th for th in THRESHOLDS if mean(f"static {th}", "error_rate") <= target]
        best = min(ok) if ok else None
        sh = mean(f"static {best}", "hit_rate") if best is not None else 0.0
        v = f"verified {target}"
        vh, ve, ve2 = mean(v, "hit_rate"), mean(v, "error_rate"), mean(v, "error_second_half")
        ratio = vh / sh if sh else float("inf")
        summary.append({"target": target, "best_static_threshold": best,
                        "static_hit_rate": sh,
                        "static_error": mean(f"static {best}", "error_rate") if best else None,
                        "verified_hit_rate": vh, "verified_error": ve,
                        "verified_error_second_half": ve2,
                        "verified_explored": mean(v, "explored"), "hit_ratio": ratio})
        print(f"{target:<7} {best!s:>6} hit rate {sh:.3f}            {vh:.3f}  {ve:.4f}  "
              f"{ve2:.4f}        {mean(v, 'explored'):.0f}   {ratio:.2f}x")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "verified_replay.json").write_text(json.dumps(
        {"summary": summary, "runs": results,
         "stream": {"groups": len(groups), "negatives": len(negatives), "hard": len(hard),
                    "seeds": args.seeds}}, indent=1))
    try:
        _plot(traces, results, out / "verified_replay.png")
    except ImportError:
        print("matplotlib not installed: no plot")
    return 0


def _prefill(emb, texts: list[str], path: Path) -> None:
    """Fill the embedder's LRU (the replays never re-embed), from a file when it has
    these texts: re-running the benchmark then skips minutes of embedding."""
    if path.exists():
        z = np.load(path, allow_pickle=False)
        if list(z["texts"]) == texts and str(z["model"]) == emb.model_id:
            with emb._lru_lock:
                for t, v in zip(texts, z["vecs"]):
                    emb._lru[t] = v
            return
    vecs = emb.embed(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, texts=np.array(texts), vecs=vecs, model=np.array(emb.model_id))


def _plot(traces, results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, runs in traces.items():
        t = np.asarray(runs[0])
        n = np.arange(1, len(t) + 1)
        hits = np.cumsum(t != 0)
        wrong = np.cumsum(t == -1)
        a1.plot(n, hits / n, label=name)
        a2.plot(n, np.where(hits > 0, wrong / np.maximum(hits, 1), 0), label=name)
    static = sorted(results, key=lambda k: -np.mean([x["hit_rate"] for x in results[k]]))
    for target in TARGETS:
        ok = [k for k in static if k.startswith("static")
              and np.mean([x["error_rate"] for x in results[k]]) <= target]
        if ok:
            h = np.mean([x["hit_rate"] for x in results[ok[0]]])
            a1.axhline(h, ls="--", lw=0.8, color="grey")
            a1.text(0, h, f" best static for {target}: {ok[0].split()[1]}", fontsize=7,
                    va="bottom")
        a2.axhline(target, ls=":", lw=0.8, color="grey")
    a1.set(title="cumulative hit rate", xlabel="queries")
    a2.set(title="cumulative error rate of hits", xlabel="queries", ylim=(0, 0.15))
    a1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
