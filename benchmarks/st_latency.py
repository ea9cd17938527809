"""The sentence-transformers embedder's one-text latency tail (issue #25: p99 < 2x p50).

    .venv/bin/python benchmarks/st_latency.py            # 3 rounds of 300 questions

``SentenceTransformerEmbedder`` as a user gets it (the thread policy's torch threads,
LRU off so every text embeds), one Quora question at a time, after 20 warm-up texts.
Each round reports p50 / p99 and their ratio; the load average is recorded before and
after, since on a shared 2-core machine a busy neighbour alone can double a p99.
Writes ``benchmarks/results/st_latency.json`` (``--out``). Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _bench_data import QQP, load_pairs, stats  # noqa: E402

from semcache.embedders.local import SentenceTransformerEmbedder  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--texts", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "st_latency.json"))
    args = ap.parse_args(argv)
    pairs, _ = load_pairs(QQP, args.texts, 0)
    texts = [b for _, b in pairs]
    emb = SentenceTransformerEmbedder(cache_size=0)
    for t in texts[:20]:
        emb.embed([t])
    import torch

    result: dict[str, Any] = {"issue": 25, "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                 time.gmtime()),
                              "cores": os.cpu_count(), "torch": torch.__version__,
                              "torch_threads": torch.get_num_threads(),
                              "loadavg_before": os.getloadavg(), "rounds": []}
    for _ in range(args.rounds):
        lat = []
        for t in texts:
            t0 = time.perf_counter()
            emb.embed([t])
            lat.append(time.perf_counter() - t0)
        s = stats(lat)
        row = {**s, "p99_over_p50": round(s["p99_ms"] / s["p50_ms"], 3),
               "loadavg": os.getloadavg()}
        print(json.dumps(row), flush=True)
        result["rounds"].append(row)
    result["loadavg_after"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
