"""The verified policy's per-query outcomes on one Quora stream, for comparing two trees.

    PYTHONPATH=/tmp/old python benchmarks/policy_equivalence.py before.json  # old tree
    python benchmarks/policy_equivalence.py after.json --against before.json

A refactoring of the learning loop or the pipeline that claims "behaviour identical"
replays the same stream (the first ``--pairs`` Quora pairs, seed 0) through real
``faiss-semantic`` caches (``semcache.eval.policies.compare_policies``: a static
threshold and two verified targets) on each tree and compares every run's figures and
per-query trace (hit right / hit wrong / miss). The old tree comes first on PYTHONPATH
(``git archive <commit> semcache | tar -x -C /tmp/old``). Embeddings are cached in
``--cache-dir`` so the second run costs the replays only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--against", type=Path, help="an earlier run's file: exit 1 if it differs")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--pairs", type=int, default=25_000)
    ap.add_argument("--cache-dir", default="/tmp/semcache-equivalence-embeddings")
    args = ap.parse_args()

    import semcache
    from semcache._registry import get_embedder
    from semcache.eval import PrecomputedEmbedder
    from semcache.eval.policies import compare_policies
    from semcache.eval.streams import order_sensitive_pairs

    rows = [json.loads(line) for line in gzip.open(Path(args.data) / "qqp" / "pairs.jsonl.gz",
                                                   "rt", encoding="utf-8")]
    pairs = [(r["query"], r["candidate"], int(r["label"])) for r in rows][:args.pairs]
    texts = [a for a, _, _ in pairs] + [b for _, b, _ in pairs] + [
        q for p in order_sensitive_pairs() for q in p]
    embedder = PrecomputedEmbedder.build(get_embedder(None), texts, cache_dir=args.cache_dir)
    t = time.perf_counter()
    report = compare_policies(pairs, embedder, targets=[0.02, 0.05], thresholds=[0.9],
                              seeds=1)
    took = time.perf_counter() - t
    # timings differ from run to run: only the decisions and their figures are compared
    runs = {name: [{k: v for k, v in r.items() if "latency" not in k and not k.endswith("_ms")}
                   for r in rs] for name, rs in report.runs.items()}
    out = {"semcache": semcache.__file__, "pairs": args.pairs, "replay_s": round(took, 1),
           "runs": runs, "traces": report.traces}
    args.out.write_text(json.dumps(out, indent=1, sort_keys=True, default=str))
    for name, rs in runs.items():
        r = rs[0]
        print(f"{name}: {r['queries']} queries, hits {r['hits']}, wrong {r['wrong']}, "
              f"explored {r.get('explored', 0)}")
    if args.against is None:
        return 0
    before = json.loads(args.against.read_text())
    same = before["runs"] == runs and before["traces"] == report.traces
    print(f"{before['semcache']} vs {semcache.__file__}: "
          + ("identical figures and per-query traces" if same else "DIFFERENT"))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
