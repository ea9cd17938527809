"""What the structural verifier's rules (semcache/verifiers/rules.py) refuse, per data
set and label: on the shared Quora and PAWS pairs and on every prompt file, the pairs
each rule refuses among the duplicates / paraphrases (a lost hit each) and among the
rest (a wrong answer each, had the model served it).

    .venv/bin/python benchmarks/verifier_rules.py

Writes benchmarks/results/verifier_rules.json (no embedding: the rules read words only).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semcache.eval._data import load_pairs  # noqa: E402
from semcache.eval._mnh import (  # noqa: E402
    HOLDOUTS,
    UNREAD_HOLDOUTS,
    load_must_not_hit,
    load_role_swaps,
)
from semcache.eval._scoring import cached_parser  # noqa: E402
from semcache.verifiers.rules import refusal  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def tally(pairs: list[tuple[str, str, int]]) -> dict[str, Any]:
    p = cached_parser()
    same: Counter[str] = Counter()
    other: Counter[str] = Counter()
    examples: list[list[str]] = []
    for a, b, y in pairs:
        rule = refusal(p(a), p(b))
        if rule is None:
            continue
        (same if y == 1 else other)[rule] += 1
        if y == 1 and len(examples) < 20:
            examples.append([rule, a, b])
    return {"pairs": len(pairs), "positives": sum(1 for *_, y in pairs if y == 1),
            "positives_refused": sum(same.values()), "negatives_refused": sum(other.values()),
            "positives_refused_by_rule": dict(sorted(same.items())),
            "negatives_refused_by_rule": dict(sorted(other.items())),
            "positives_refused_examples": examples}


def main() -> int:
    t = time.time()
    sets: dict[str, list[tuple[str, str, int]]] = {}
    for name, path in (("quora", DATA / "qqp" / "pairs.jsonl.gz"),
                       ("paws", DATA / "paws" / "dev.tsv")):
        d = load_pairs(path)
        sets[name] = [(a, b, int(y)) for a, b, y in zip(d.queries, d.candidates, d.labels)]
    rows = {"must_not_hit": load_must_not_hit(), "must_not_hit_roles": load_role_swaps(),
            **{f"must_not_hit_{h}": load_must_not_hit(h) for h in HOLDOUTS
               if h not in UNREAD_HOLDOUTS}}
    for name, rs in rows.items():
        sets[name] = [(r["query"], r["candidate"], int(r["label"])) for r in rs]
    report = {"command": "benchmarks/verifier_rules.py",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "sets": {k: tally(v) for k, v in sets.items()}}
    report["seconds"] = round(time.time() - t, 1)
    out = ROOT / "benchmarks" / "results" / "verifier_rules.json"
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    for k, v in report["sets"].items():
        print(f"{k:28s} {v['pairs']:6d} pairs: refused {v['positives_refused']} of "
              f"{v['positives']} positives, {v['negatives_refused']} others")
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
