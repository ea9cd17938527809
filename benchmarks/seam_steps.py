"""Cost of the index adapters' step machinery, before and after a change (issue #19).

RedisVL (sync and async) and embedded Qdrant searches and single adds, timed per call
in child processes that import ``semcache`` from a given tree: ``--before`` is a
``git archive`` of the old commit, the working tree is the after. Rounds alternate
before/after so that load on the shared machine hits both alike; the report gives
each side's median of per-round medians and the after/before ratio.

    .venv/bin/python benchmarks/seam_steps.py --before-commit d926be8 \\
        --out benchmarks/results/seam_steps_before_after.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import asyncio, json, sys, time, uuid
import numpy as np
import semcache
assert semcache.__file__.startswith(sys.argv[1]), semcache.__file__
from semcache.exact.redis import RedisStore
from semcache.indexes.base import IndexEntry
from semcache.indexes.qdrant import QdrantConnection, QdrantIndex
from semcache.indexes.redisvl import RedisVLIndex

url, n, calls = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
vecs = rng.standard_normal((n, 384)).astype(np.float32)
vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
entries = [IndexEntry(f"n:{i}", f"c{i % 4}", "n", f"p{i}", 1.7e9, None) for i in range(n)]
queries = vecs[rng.integers(0, n, calls)]

out = {}

def per_call(fn, name):
    # wall time, and this process's CPU time: the adapter's own cost, which the load
    # on the shared machine (and the server's share of it) disturbs far less
    t, c = time.perf_counter(), time.process_time()
    for i in range(calls):
        fn(i)
    out[name + "_us"] = (time.perf_counter() - t) / calls * 1e6
    out[name + "_cpu_us"] = (time.process_time() - c) / calls * 1e6

redis_idx = RedisVLIndex(RedisStore(url=url), "b" + uuid.uuid4().hex[:8], model_id="m")
qdrant_idx = QdrantIndex(QdrantConnection(), "bench", model_id="m")
for name, idx in (("redisvl", redis_idx), ("qdrant_embedded", qdrant_idx)):
    for s in range(0, n, 500):
        idx.add(entries[s:s + 500], vecs[s:s + 500])
    idx.search(queries[0], "c0", k=4)  # warm: the index exists, the clients are made
    per_call(lambda i: idx.search(queries[i], f"c{i % 4}", k=4), f"{name}_search")
    per_call(lambda i: idx.add([IndexEntry(f"n:x{i}", "c0", "n", "p", 1.7e9, None)],
                               queries[i:i + 1]), f"{name}_add")

async def asearch():
    await redis_idx.asearch(queries[0], "c0", k=4)
    t, c = time.perf_counter(), time.process_time()
    for i in range(calls):
        await redis_idx.asearch(queries[i], f"c{i % 4}", k=4)
    out["redisvl_asearch_us"] = (time.perf_counter() - t) / calls * 1e6
    out["redisvl_asearch_cpu_us"] = (time.process_time() - c) / calls * 1e6

asyncio.run(asearch())
redis_idx.drop()
redis_idx.close()
qdrant_idx.close()
print(json.dumps(out))
"""


def _child(tree: Path, url: str, n: int, calls: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(tree), url, str(n), str(calls)],
                         env=env, cwd=tree, capture_output=True, text=True, timeout=600,
                         check=False)  # cwd: "python -c" puts it first on sys.path
    if out.returncode != 0:
        raise SystemExit(f"the child on {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before-commit", required=True)
    ap.add_argument("--entries", type=int, default=2000)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    from semcache_testing.servers import RedisStackServer

    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        before.mkdir()
        archive = subprocess.run(["git", "archive", args.before_commit, "semcache"],
                                 cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        server = RedisStackServer()
        server.start()
        try:
            rounds: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
            for _ in range(args.rounds):
                for side, tree in (("before", before), ("after", ROOT)):
                    rounds[side].append(_child(tree, server.url, args.entries, args.calls))
        finally:
            server.stop()
    medians = {side: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
               for side, runs in rounds.items()}
    ratio = {k: medians["after"][k] / medians["before"][k] for k in medians["before"]}
    report = {"before_commit": args.before_commit, "entries": args.entries,
              "calls_per_round": args.calls, "rounds": args.rounds,
              "machine": f"{platform.machine()} {os.cpu_count()} cpus (shared, loaded)",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "median_us": medians, "after_over_before": ratio, "per_round_us": rounds}
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(json.dumps({"median_us": medians, "after_over_before": ratio}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
