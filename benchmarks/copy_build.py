"""What the int8 copy's k-means costs: building a shard's proposing index (issue #25).

    .venv/bin/python benchmarks/copy_build.py      # about a minute

A shard of 4k-20k rows builds its int8 copy in k-means lists (``Compact`` in
semcache/indexes/_faiss_shard.py) once per 4x growth, on loading a persisted index, and
after another process's compaction, holding the index lock meanwhile. Rows: real Quora
question embeddings as topic centres plus the clustered filler of ``hit_latency.py``.
Each size is built three times; the median and the range are reported. Not a test.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _bench_data import QQP, filler, load_pairs  # noqa: E402

from semcache.embedders.onnx import OnnxEmbedder  # noqa: E402
from semcache.indexes._faiss_shard import Compact  # noqa: E402

SIZES = (4_000, 8_000, 16_000, 20_000)


def main() -> int:
    _, other = load_pairs(QQP, 0, 2_000)
    centres = OnnxEmbedder(cache_size=0).embed(other)
    x = filler(np.random.default_rng(25), centres, max(SIZES))
    rows = []
    for n in SIZES:
        took = []
        for _ in range(3):
            t0 = time.perf_counter()
            copy = Compact(x[:n], np.arange(n))
            took.append(time.perf_counter() - t0)
        rows.append({"rows": n, "lists": int(copy.index.nlist),
                     "build_s_median": round(float(np.median(took)), 3),
                     "build_s_range": [round(min(took), 3), round(max(took), 3)]})
        print(json.dumps(rows[-1]), flush=True)
    out = ROOT / "benchmarks" / "results" / "copy_build.json"
    out.write_text(json.dumps({"command": "benchmarks/copy_build.py",
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "cores": os.cpu_count(), "loadavg": os.getloadavg(),
                               "builds": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
