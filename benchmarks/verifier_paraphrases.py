"""How many of GPTCache's 999 paraphrase pairs (all should hit) each operating point of
the shipped structural verifier serves, beside the cosine alone at its old default.

    .venv/bin/python benchmarks/verifier_paraphrases.py

Writes benchmarks/results/verifier_paraphrases.json. Every pair is a true paraphrase,
so this measures only what a point refuses that it should serve (the must-not-hit side
is in verifier_eval.json).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semcache._registry import get_embedder  # noqa: E402
from semcache.verifiers.structural import StructuralVerifier  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "gptcache-mock" / "mock_data.json"


def main() -> int:
    pairs = json.loads(DATA.read_text())
    a, b = [p["origin"] for p in pairs], [p["similar"] for p in pairs]
    emb = get_embedder(None)
    x, y = np.asarray(emb.embed(a)), np.asarray(emb.embed(b))
    cos = np.einsum("ij,ij->i", x, y)
    v = StructuralVerifier()
    p = v.score_pairs(a, b, cos)
    points = {"default": (v.floor, v.threshold),
              **{k: (v.info[k]["floor"], v.info[k]["threshold"])
                 for k in ("veto", "wide", "strict")}}
    served = {k: float(((cos >= f) & (p >= t)).mean()) for k, (f, t) in points.items()}
    served["cosine_alone_0.93"] = float((cos >= 0.93).mean())
    served["cosine_alone_0.80"] = float((cos >= 0.80).mean())
    out = {"command": "benchmarks/verifier_paraphrases.py", "pairs": len(pairs),
           "embedder": emb.model_id,
           "points": {k: {"floor": f, "threshold": t} for k, (f, t) in points.items()},
           "served_share": {k: round(s, 4) for k, s in served.items()}}
    path = ROOT / "benchmarks" / "results" / "verifier_paraphrases.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out["served_share"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
