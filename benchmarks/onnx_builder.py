"""The torch-free ONNX builder against torch.onnx.export (issue #19), in one run.

For all-MiniLM-L6-v2: the time to build the fp32 graph (numpy/onnx builder vs the torch
exporter, each into a fresh folder, torch's import included since a user pays it), and
the embedding latency of each graph on the same runtime code (one short query: p50/p90
of ``--reps`` calls, the LRU bypassed; a 32-text batch: p50), interleaved round by round
so load on the box hits both alike.

    python benchmarks/onnx_builder.py [--reps 300]

Writes benchmarks/results/onnx_builder.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semcache.embedders import onnx as onnx_mod

QUERY = "How do I reset my password?"
BATCH = [f"question {i}: how do I change the setting number {i} on my phone?"
         for i in range(32)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                         "onnx_builder.json"))
    args = ap.parse_args()
    model_dir = onnx_mod.resolve_model_dir("all-MiniLM-L6-v2")[1]
    tmp = Path(tempfile.mkdtemp(prefix="onnx-builder-"))
    export_s: dict[str, float] = {}
    runtimes = {}
    for builder in ("semcache-bert-onnx-1", "torch"):  # numpy first: torch not yet imported
        t0 = time.perf_counter()
        folder = onnx_mod.export_onnx(model_dir, tmp / builder, builder=builder)
        export_s[builder] = time.perf_counter() - t0
        runtimes[builder] = onnx_mod._Runtime(folder, 2)
    lat: dict[str, list[float]] = {b: [] for b in runtimes}
    batch: dict[str, list[float]] = {b: [] for b in runtimes}
    for rt in runtimes.values():  # warm-up
        rt.run([QUERY], 32)
        rt.run(BATCH, 32)
    for r in range(args.reps):
        for b, rt in runtimes.items():
            t0 = time.perf_counter()
            rt.run([QUERY], 32)
            lat[b].append((time.perf_counter() - t0) * 1e3)
            if r % 10 == 0:
                t0 = time.perf_counter()
                rt.run(BATCH, 32)
                batch[b].append((time.perf_counter() - t0) * 1e3)
    a, b = (runtimes[k].run(BATCH + [QUERY], 32) for k in runtimes)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    result = {
        "command": "python benchmarks/onnx_builder.py --reps %d" % args.reps,
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version(),
                    "note": "shared 2-core box, other engineers' tests running"},
        "export_s": {k: round(v, 2) for k, v in export_s.items()},
        "model_onnx_bytes": {k: (tmp / k / "model.onnx").stat().st_size for k in runtimes},
        "one_query_ms": {k: {"p50": round(float(np.percentile(v, 50)), 3),
                             "p90": round(float(np.percentile(v, 90)), 3)}
                         for k, v in lat.items()},
        "batch32_ms_p50": {k: round(float(np.percentile(v, 50)), 2) for k, v in batch.items()},
        "max_abs_diff_normalized": float(np.abs(a - b).max()),
        "min_cosine": float(np.sum(a * b, axis=1).min()),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
