"""Fingerprints of the structural verifier's output: run on two commits, compare.

    .venv/bin/python benchmarks/verifier_fingerprint.py --out <file>

A change meant to make the verifier faster without changing what it decides (9494844:
shortcuts in the parse, the features, the trees) must leave every parse, every feature
row and every score exactly as it was. This hashes them over the shared data's texts
(the first 30,000 Quora pairs, the PAWS dev pairs) and the prompt files already read
(the suite, the role swaps, holdouts 1-8; never the unread ones), plus a few texts that
reach the rare branches (units, scripts, symbols, comparatives): each ``Parsed`` field
in a canonical form, the ``features`` rows, ``score_pairs`` and the per-lookup path
``checked`` with three candidates each. Equal hashes on two commits: the same decisions,
to the bit. Not a test (a minute of CPU); writes one JSON.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semcache.verifiers import structural  # noqa: E402
from semcache.verifiers.features import features, parse  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
UNREAD = ("holdout9", "holdout10")  # judged once, later: not read here
RARE = ["200 degrees Celsius to F", "5 km in miles", "5 miles in km", "Is 3x + 7 = 22?",
        "北京的天气怎么样", "What is 15% of 80?", "15 is what percent of 80?",
        "cheaper bigger easiest happier thinnest", "Who did Napoleon defeat", "E♭ major",
        "5 × 3 ≤ 20 😀", "I can't, won't, shan't do it", "twelven't",
        "Translate 'I miss you' from French to English", "it's 2,500.50 dollars or $3M",
        "The degree of 5 C"]


def pairs() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    with gzip.open(DATA / "qqp" / "pairs.jsonl.gz", "rt") as f:
        for i, line in enumerate(f):
            if i >= 30000:
                break
            d = json.loads(line)
            out.append((d["query"], d["candidate"]))
    with open(DATA / "paws" / "dev.tsv") as f:
        out += [(r[1], r[2]) for r in csv.reader(f, delimiter="\t")
                if len(r) >= 3 and r[0] != "id"]
    for path in sorted((ROOT / "semcache" / "data").glob("must_not_hit*.jsonl")):
        if any(u in path.name for u in UNREAD):
            continue
        for line in path.read_text().splitlines():
            d = json.loads(line)
            out.append((d["query"], d["candidate"]))
    return out + [(a, b) for a in RARE for b in RARE]


def canonical(p: object) -> list:
    names = list(getattr(p, "_fields", None) or getattr(p, "__dataclass_fields__"))
    out = []
    for name in names:
        x = getattr(p, name)
        if isinstance(x, (set, frozenset)):
            x = sorted(map(repr, x))
        elif isinstance(x, dict):
            x = sorted((repr(k), repr(v)) for k, v in x.items())
        else:
            x = repr(x)
        out.append((name, x))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    ps = pairs()
    h = hashlib.sha256()
    texts = sorted({t for p in ps for t in p})
    for t in texts:
        h.update(json.dumps(canonical(parse(t))).encode())
    sims = np.random.default_rng(0).uniform(0.6, 1.0, len(ps))
    X = np.concatenate([features(parse(a), [parse(b)], [s]) for (a, b), s in zip(ps, sims)])
    v = structural.StructuralVerifier()
    S = v.score_pairs([a for a, _ in ps], [b for _, b in ps], sims)
    looked = np.concatenate([v.checked(ps[i][0], [ps[i + k][1] for k in range(3)],
                                       list(sims[i:i + 3])) for i in range(0, 3000, 3)])
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit,
        "texts": len(texts), "pairs": len(ps),
        "parse": h.hexdigest(), "features": hashlib.sha256(X.tobytes()).hexdigest(),
        "scores": hashlib.sha256(S.tobytes()).hexdigest(),
        "lookup_scores": hashlib.sha256(looked.tobytes()).hexdigest(),
    }
    print(json.dumps(result, indent=2))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
