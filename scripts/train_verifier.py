"""Fit the structural verifier and write ``semcache/data/verifier_structural.json``.

Reproducible: the split (by question group), the rule-made negatives and the trees all
follow ``--seed``. Only the tuning parts are used: Quora and PAWS split by connected
component (``semcache.eval.split``), the ``tune`` halves of the must-not-hit suite and of
the role-swap set (``semcache/data/must_not_hit_roles.jsonl``), and the four holdouts
that were read while the rules were written (``load_prompt_tuning``). The test
parts are what ``benchmarks/verifier_eval.py`` reports on.

    .venv/bin/python scripts/train_verifier.py            # ~2 min once embeddings are cached
    .venv/bin/python scripts/train_verifier.py --seed 1 --out /tmp/m.json

Embeddings of the 124k distinct texts are cached under benchmarks/results/.embeddings/
(the first run embeds them: 10-20 CPU-minutes with the ONNX MiniLM).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semcache._registry import get_embedder  # noqa: E402
from semcache.eval._data import load_pairs  # noqa: E402
from semcache.eval.fitting import (  # noqa: E402
    load_prompt_tuning,
    load_role_swaps,
    make_cosines,
    train,
)
from semcache.eval.split import group_split  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def corpus(data: Path):
    qqp = load_pairs(data / "qqp" / "pairs.jsonl.gz")
    paws = load_pairs(data / "paws" / "dev.tsv")
    texts = sorted(set(qqp.queries) | set(qqp.candidates) | set(paws.queries)
                   | set(paws.candidates))
    return qqp, paws, texts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path,
                    default=ROOT / "semcache" / "data" / "verifier_structural.json")
    ap.add_argument("--embedding-cache", default=str(ROOT / "benchmarks" / "results"
                                                     / ".embeddings"))
    args = ap.parse_args(argv)
    t = time.time()
    qqp, paws, texts = corpus(args.data)
    cos = make_cosines(get_embedder(None), texts, args.embedding_cache)
    doc = train(group_split(qqp, seed=args.seed).tune, group_split(paws, seed=args.seed).tune,
                load_prompt_tuning(), cos, seed=args.seed,
                roles_tune=load_role_swaps("tune"))
    doc["fitted"]["command"] = "scripts/train_verifier.py --seed %d" % args.seed
    args.out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB) in "
          f"{time.time() - t:.0f}s: floor {doc['floor']}, threshold {doc['threshold']}, "
          f"tuning {doc['tuning']}, strict {doc['strict']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
