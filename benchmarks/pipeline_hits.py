"""The pipeline's own cost on a hit: ``Cache.lookup`` for an exact hit (memory store)
and for an exact and a semantic hit on the embedded default (FAISS + ONNX MiniLM),
median and p95 in microseconds, no call layer and no upstream.

    python benchmarks/pipeline_hits.py [--n 2000] [--out results.json]

Used to check that a refactoring of the pipeline (issue #19) makes no hit slower: run
it on the code before and after in the same minute (``PYTHONPATH=<old tree>``) and
compare the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from semcache import Cache

_ANSWER = {"choices": [{"message": {"role": "assistant", "content": "Paris."}}]}


def _ask(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


def _time(fn: Callable[[int], Any], n: int) -> dict[str, float]:
    """Wall-clock median and p95 per call, and the process's CPU time per call (on a
    shared, loaded machine the CPU time is the steadier figure to compare)."""
    samples = []
    cpu = time.process_time()
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - t) * 1e6)
    cpu = time.process_time() - cpu
    samples.sort()
    return {"median_us": statistics.median(samples),
            "p95_us": samples[int(len(samples) * 0.95) - 1], "cpu_us": cpu / n * 1e6}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--out")
    a = p.parse_args()
    rows: dict[str, dict[str, float]] = {}
    local = Cache()
    local.add_cache(_ANSWER, **_ask("What is the capital of France?"))
    exact = _ask("What is the capital of France?")
    for _ in range(200):  # warm up
        assert local.lookup(**exact) is not None
    rows["local, exact hit"] = _time(lambda i: local.lookup(**exact), a.n)
    sem = Cache(type="faiss-semantic", similarity_threshold=0.8, verifier=None)
    sem.add_cache(_ANSWER, **exact)
    paraphrases = [_ask(q + " " * k) for k in range(50) for q in (
        "What's the capital city of France?", "Which city is the capital of France?")]
    for q in paraphrases:  # every query's embedding is in the embedder's LRU: what is
        assert sem.lookup(**q) is not None  # timed is the pipeline, not the model
    rows["faiss-semantic, exact hit"] = _time(lambda i: sem.lookup(**exact), a.n)
    m = max(50, a.n // 4)
    rows["faiss-semantic, semantic hit"] = _time(
        lambda i: sem.lookup(**paraphrases[i % len(paraphrases)]), m)
    for name, r in rows.items():
        print(f"{name:32s} median {r['median_us']:9.1f} us   p95 {r['p95_us']:9.1f} us   "
              f"cpu {r['cpu_us']:9.1f} us")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
