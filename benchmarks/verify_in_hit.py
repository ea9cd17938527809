"""The structural verifier's steps inside real hits, and the same steps warm (issues 20, 25).

    .venv/bin/python benchmarks/verify_in_hit.py --out benchmarks/results/verify_in_hit.json

One ``faiss-semantic`` cache with the default verifier and the default ONNX embedder (its
LRU off, so every lookup embeds) holds the stored side of Quora label-1 pairs and other
Quora questions, 2,000 in all (``--entries``, as the hit benchmark's smallest context:
its scan runs between the embedding and the verifier, as in a user's hit); each
paraphrase (the other side) is looked up through the public API, a few times over. Each
step of the verifier's ``_score`` is timed where the lookup calls it, right after the
query's embedding: the query's parse, the features, the trees, the rules. Then the same
steps on the same inputs again, at once: warm, with everything the first call read still
in the CPU caches. Issue 20's budget for the verifier is 0.3 ms p50 added to a semantic
hit; ``verifier_eval.py``'s ``semantic_hit_cost`` measures lookups whose embedding is
cached, i.e. close to the warm column.

Also the tree ensemble alone on one candidate's features, warm: its one-sample path
(one gather a level, since 79d53da) against the one it replaced (``before_79d53da``, kept
here: two gathers and an add a level). Not a test; writes one JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _bench_data import QQP, load_pairs, pct, req  # noqa: E402

import semcache.verifiers.structural as structural  # noqa: E402
from semcache import Cache  # noqa: E402
from semcache.embedders.onnx import OnnxEmbedder  # noqa: E402
from semcache.verifiers.features import parse  # noqa: E402

STEPS = ("parse_query", "features", "trees", "rules")


def before_79d53da(ens: Any, row: np.ndarray) -> np.ndarray:
    """``TreeEnsemble.raw`` on one sample as it was before 79d53da."""
    bits = np.ascontiguousarray(row, np.float32).ravel()[ens._feature] > ens._threshold
    node = ens._roots
    for _ in range(ens.depth):
        node = ens._child[node] + bits[node]
    return ens.baseline + np.atleast_1d(ens._value[node].sum())


def timed_steps(v: structural.StructuralVerifier) -> dict[str, list[float]]:
    """Wraps the module functions ``_score`` calls, in place, so each records its time
    inside the lookup and then once more warm on the same arguments. Only calls made by
    ``_score`` count (the near miss's metadata parses the query again, from the cache)."""
    hit: dict[str, list[float]] = {f"{s}_{w}": [] for s in STEPS for w in ("hit", "warm")}
    inside = [False]

    def wrap(name: str, fn: Callable[..., Any], again: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            if not inside[0]:
                return fn(*args)
            t0 = time.perf_counter()
            out = fn(*args)
            t1 = time.perf_counter()
            again(*args)
            hit[f"{name}_hit"].append(t1 - t0)
            hit[f"{name}_warm"].append(time.perf_counter() - t1)
            return out
        return run

    # the query's parse is cached per text: warm is the parse itself, uncached
    structural._parse_query = wrap("parse_query", structural._parse_query,
                                   lambda text: parse(structural.window(text)))
    structural.features = wrap("features", structural.features, structural.features)
    structural.decide_many = wrap("rules", structural.decide_many, structural.decide_many)
    ens = v._ensemble
    ens.predict_proba = wrap("trees", ens.predict_proba, ens.predict_proba)  # type: ignore
    score = v._score

    def scored(*args: Any) -> Any:
        inside[0] = True
        try:
            return score(*args)
        finally:
            inside[0] = False
    v._score = scored  # type: ignore[method-assign]
    return hit


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--texts", type=int, default=200, help="paraphrase queries")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--entries", type=int, default=2000,
                    help="stored questions: the pairs' stored side, then other questions")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                         "verify_in_hit.json"))
    args = ap.parse_args(argv)
    pairs, other = load_pairs(QQP, args.texts, max(0, args.entries - args.texts))
    cache = Cache(type="faiss-semantic", embedder=OnnxEmbedder(cache_size=0),
                  similarity_threshold=0.8)
    v = cache.verifier
    assert isinstance(v, structural.StructuralVerifier)
    for a in [a for a, _ in pairs] + other:
        cache.add_cache({"answer": f"answer to {a}"}, **req(a))
    queries = [b for _, b in pairs]
    for q in queries[:20]:  # the first calls load and warm what every later one uses
        cache.lookup(**req(q))
    verify: list[float] = []  # first the verify step untouched, then its steps timed
    for _ in range(args.repeats):
        for q in queries:
            _, meta = cache.lookup_with_metadata(**req(q))
            if "verify" in meta["timings_ms"]:
                verify.append(meta["timings_ms"]["verify"] / 1e3)
    steps = timed_steps(v)
    for _ in range(args.repeats):
        for q in queries:
            cache.lookup(**req(q))
    ens = v._ensemble
    row = np.random.default_rng(20).random((1, ens.n_features)).astype(np.float32)
    assert before_79d53da(ens, row)[0] == ens.raw(row)[0]
    tree_paths: dict[str, list[float]] = {"one_sample": [], "before_79d53da": []}
    for i in range(3000):
        for name in (("one_sample", "before_79d53da") if i % 2 else
                     ("before_79d53da", "one_sample")):
            t0 = time.perf_counter()
            ens.raw(row) if name == "one_sample" else before_79d53da(ens, row)
            tree_paths[name].append(time.perf_counter() - t0)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "loadavg": os.getloadavg(), "texts": len(queries), "repeats": args.repeats,
        "entries": len(pairs) + len(other),
        "verify_step_p50_ms": round(pct(verify, 50), 3),
        "verify_step_p90_ms": round(pct(verify, 90), 3),
        "lookups_verified": len(verify),
        "steps_p50_us": {k: round(pct(xs, 50) * 1e3, 1) for k, xs in steps.items() if xs},
        "steps_calls": {k: len(xs) for k, xs in steps.items() if k.endswith("_hit")},
        "trees_one_sample_warm_p50_us": {k: round(pct(xs, 50) * 1e3, 1)
                                         for k, xs in tree_paths.items()},
    }
    print(json.dumps(result, indent=2))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
