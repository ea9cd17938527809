"""Memory of a bounded ``local`` cache under a long stream of distinct answers (issue 21).

    python benchmarks/memory_bound.py [--adds 1000000] [--size 10000] [--out FILE]

Adds ``--adds`` distinct answers (a chat-completion-shaped dict, about 600 bytes of JSON
each) through ``Cache(type="local", max_size_in_memory=--size)``, the public API, and
records the process's RSS every tenth of the run. Reported:

- bytes per entry: RSS growth while the cache fills to ``--size`` entries, divided by
  ``--size`` (the entry's record, key and LRU bookkeeping, as the allocator sees it,
  fragmentation included), next to the payload itself (key + stored JSON record);
- RSS after the cache is full and after every further tenth: a bounded cache stays flat
  (the drift from "full" to the end is the figure to watch);
- with ``--faiss N``, the same for ``faiss-semantic`` over N adds (a hashing embedder:
  the index's growth, not a model's, is measured), with the index's entry count, which
  before issue 21 grew with every add while the store stayed bounded.

Writes JSON to benchmarks/results/memory_bound.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semcache import Cache  # noqa: E402
from semcache.embedders.base import Embedder  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def answer(i: int) -> dict[str, Any]:
    return {"id": f"chatcmpl-{i:012d}", "object": "chat.completion", "created": 1_700_000_000,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant",
                                     "content": f"Answer number {i}: " + "lorem ipsum " * 30}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 90, "total_tokens": 102}}


class Hashing(Embedder):
    model_id = "hashing-bench"
    dim = 384

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([np.random.default_rng(
            int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).standard_normal(self.dim)
            for t in texts]).astype(np.float32)


def run(cache: Cache, adds: int, size: int, semantic: bool) -> dict[str, Any]:
    gc.collect()
    base = rss_bytes()
    marks: list[dict[str, Any]] = []
    step = max(1, adds // 10)
    full_rss = None
    t0 = time.perf_counter()
    for i in range(adds):
        msgs = [{"role": "user", "content": f"question {i}"}]
        cache.add_cache(answer(i), model="gpt-4o-mini", messages=msgs)
        n = i + 1
        if n == size:
            gc.collect()
            full_rss = rss_bytes()
        if n % step == 0:
            gc.collect()
            mark = {"adds": n, "rss_mb": round(rss_bytes() / 2**20, 1),
                    "entries": len(cache.store)}  # type: ignore[arg-type]
            if semantic and cache.index is not None:
                mark["index_entries"] = cache.index.count(cache.namespace)
            marks.append(mark)
            print(json.dumps(mark), flush=True)
    elapsed = time.perf_counter() - t0
    assert full_rss is not None
    end = rss_bytes()
    data = getattr(cache.store, "_data", {})  # MemoryStore's: key -> (record, expiry)
    payload = sum(len(k) + len(v[0]) for k, v in data.items()) / max(1, len(data))
    return {"adds": adds, "max_size_in_memory": size,
            "bytes_per_entry": round((full_rss - base) / size),
            "payload_bytes_per_entry": round(payload),
            "rss_base_mb": round(base / 2**20, 1), "rss_full_mb": round(full_rss / 2**20, 1),
            "rss_end_mb": round(end / 2**20, 1),
            "drift_after_full_mb": round((end - full_rss) / 2**20, 1),
            "adds_per_s": round(adds / elapsed), "marks": marks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adds", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=10_000)
    ap.add_argument("--faiss", type=int, default=0, help="adds through faiss-semantic")
    ap.add_argument("--section", choices=["local", "faiss"], help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "memory_bound.json"))
    args = ap.parse_args()
    if args.section:  # one measurement in this (fresh) process: RSS is its own
        if args.section == "local":
            res = run(Cache(type="local", max_size_in_memory=args.size), args.adds,
                      args.size, False)
        else:
            c = Cache(type="faiss-semantic", embedder=Hashing(), max_size_in_memory=args.size)
            res = run(c, args.faiss, args.size, True)
        print("RESULT " + json.dumps(res))
        return
    out: dict[str, Any] = {"machine": {"python": platform.python_version(),
                                       "platform": platform.platform(),
                                       "cpus": os.cpu_count()},
                           "command": " ".join(["python", *sys.argv])}
    sections = [("local", "local")] + ([("faiss_semantic", "faiss")] if args.faiss else [])
    for name, section in sections:
        # each in a fresh interpreter: memory one run freed would hide the next one's
        proc = subprocess.run([sys.executable, __file__, "--section", section,
                               "--adds", str(args.adds), "--size", str(args.size),
                               "--faiss", str(args.faiss)],
                              capture_output=True, text=True, check=True)
        sys.stdout.write(proc.stdout)
        out[name] = json.loads(proc.stdout.rsplit("RESULT ", 1)[1])
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "marks"}
                      for k, v in out.items() if isinstance(v, dict) and "adds" in v},
                     indent=2))


if __name__ == "__main__":
    main()
