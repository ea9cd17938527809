"""Static thresholds vs the verified policy on the same labeled query streams.

    python benchmarks/verified_replay.py [--data ../shared/data] [--seeds 3]
        [--reuse-static] [--truth labeled|strict] [--thresholds LO:HI:STEP]

Builds streams from Quora Question Pairs (paraphrase groups of three or more questions,
joined through shared questions, plus their labeled hard negatives) and a hand-built set
of order-sensitive and negation pairs, replays each through real ``faiss-semantic``
caches (``semcache.eval.policies.compare_policies``, the code behind
``semcache eval replay --target-error-rate``) and writes
benchmarks/results/verified_replay.json and .png (verified_replay_strict.* with
``--truth strict``: every answer of another class counts as wrong).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semcache._registry import get_embedder
from semcache.eval import PrecomputedEmbedder
from semcache.eval._cli import parse_thresholds
from semcache.eval.policies import DEFAULT_TARGETS, compare_policies
from semcache.eval.streams import TRUTHS, order_sensitive_pairs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--seeds", type=int, default=3, help="streams (shuffles) to average")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--reuse-static", action="store_true",
                    help="take the static-threshold runs from the last results file "
                         "(they do not depend on the verified policy's code)")
    ap.add_argument("--truth", choices=TRUTHS, default="labeled",
                    help="a hit on another answer class is wrong when the pairs label it "
                         "so, left out otherwise (labeled), or always wrong (strict)")
    ap.add_argument("--thresholds", default="0.5:0.99:0.01", metavar="LO:HI:STEP|A,B,..",
                    help="static thresholds to sweep (default 0.5:0.99:0.01; strict truth "
                         "needs only the top of it: below 0.8 every threshold is over 12%%)")
    args = ap.parse_args()
    thresholds = parse_thresholds(args.thresholds)
    out = Path(args.out)
    stem = "verified_replay" + ("_strict" if args.truth == "strict" else "")

    rows = [json.loads(line) for line in gzip.open(Path(args.data) / "qqp" / "pairs.jsonl.gz",
                                                   "rt", encoding="utf-8")]
    pairs = [(r["query"], r["candidate"], int(r["label"])) for r in rows]
    # the order `semcache eval replay` embeds them in, so the two share the cache file
    texts = [a for a, _, _ in pairs] + [b for _, b, _ in pairs] + [
        q for p in order_sensitive_pairs() for q in p]
    t = time.perf_counter()
    embedder = PrecomputedEmbedder.build(get_embedder(None), texts,
                                         cache_dir=out / ".embeddings")
    print(f"embedded {len(set(texts))} texts in {time.perf_counter() - t:.0f} s", flush=True)
    static = None
    if args.reuse_static:
        static = {k: v for k, v in json.loads((out / f"{stem}.json").read_text())
                  ["runs"].items() if k.startswith("static")}

    def note(name: str, seed: int, r) -> None:
        print(f"stream {seed} {name}: hit rate {r.hit_rate:.3f} error {r.error_rate:.4f}"
              + (f" explored {r.explored}" if name.startswith("verified") else ""),
              flush=True)

    report = compare_policies(pairs, embedder, targets=DEFAULT_TARGETS,
                              thresholds=thresholds, seeds=args.seeds,
                              truth=args.truth, static_runs=static, on_run=note)
    print()
    print(report.summary())
    report.write_json(out / f"{stem}.json")
    try:
        report.plot(out / f"{stem}.png")
    except ImportError:
        print("matplotlib not installed: no plot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
