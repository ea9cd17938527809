"""Static thresholds vs the verified policy on labeled query streams, tuned and tested apart.

    python benchmarks/verified_replay.py [--data ../shared/data] [--seeds 3]
        [--truth labeled|strict] [--thresholds LO:HI:STEP] [--verifier NAME|none]
        [--policy-param KEY=VALUE ...] [--in-sample [--reuse-static]]

By default (issue 20's honest figures) the Quora pairs are split by question group into
a tuning and a test part per seed (``semcache.eval.split_replay.compare_split``, the
code behind ``semcache eval replay --target-error-rate``): the static threshold is tuned
on the tuning part's stream, and it, the hindsight-best static threshold and the
verified policy are replayed on the test part's stream; the hand-built pairs get their
own table. Writes benchmarks/results/verified_replay_split.json
(verified_replay_split_strict.json with ``--truth strict``).

``--in-sample`` is the older comparison, kept for its results files: it builds streams from Quora Question Pairs (paraphrase groups of three or more questions,
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semcache._registry import get_embedder
from semcache.eval import PrecomputedEmbedder
from semcache.eval._cli import parse_params, parse_thresholds
from semcache.eval._data import Pairs
from semcache.eval.policies import DEFAULT_TARGETS, compare_policies
from semcache.eval.split_replay import compare_split, stream_texts
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
    ap.add_argument("--in-sample", action="store_true",
                    help="the older, in-sample comparison (verified_replay[_strict].json)")
    ap.add_argument("--verifier", default=None,
                    help="the verified policy's verifier ('none': the cosine alone; "
                         "default: structural, as for Cache(target_error_rate=))")
    ap.add_argument("--policy-param", action="append", default=[], metavar="KEY=VALUE",
                    help="a VerifiedPolicy option (repeatable)")
    ap.add_argument("--exhaustive", action="store_true",
                    help="sweep every threshold on both parts instead of bisecting")
    ap.add_argument("--no-hard-pairs", action="store_true",
                    help="skip the hand-built pairs' table")
    ap.add_argument("--stem", default=None, help="results file name (without .json)")
    args = ap.parse_args()
    thresholds = parse_thresholds(args.thresholds)
    out = Path(args.out)
    stem = args.stem or ("verified_replay" + ("" if args.in_sample else "_split")
                         + ("_strict" if args.truth == "strict" else ""))

    rows = [json.loads(line) for line in gzip.open(Path(args.data) / "qqp" / "pairs.jsonl.gz",
                                                   "rt", encoding="utf-8")]
    pairs = [(r["query"], r["candidate"], int(r["label"])) for r in rows]
    labeled = Pairs([a for a, _, _ in pairs], [b for _, b, _ in pairs],
                    np.asarray([y for _, _, y in pairs]), "qqp")
    # the order `semcache eval replay` embeds them in, so the two share the cache file
    texts = [a for a, _, _ in pairs] + [b for _, b, _ in pairs] + [
        q for p in order_sensitive_pairs() for q in p] if args.in_sample else \
        stream_texts(labeled, hard_pairs=not args.no_hard_pairs)
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

    if not args.in_sample:
        split = compare_split(
            labeled, embedder, targets=DEFAULT_TARGETS, thresholds=thresholds,
            seeds=args.seeds, truth=args.truth, policy_options=parse_params(args.policy_param),
            hard_pairs=not args.no_hard_pairs, exhaustive=args.exhaustive, on_run=note,
            cache_options=None if args.verifier is None else
            {"verifier": None if args.verifier == "none" else args.verifier})
        print()
        print(split.summary())
        print(f"wrote {split.write_json(out / f'{stem}.json')}")
        return 0
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
