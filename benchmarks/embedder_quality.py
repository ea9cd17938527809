"""all-MiniLM-L6-v2 (the default) against all-mpnet-base-v2 (the ``mpnet`` extra), issue #20.

On the same pairs, test parts only:

* Quora: for each seed (those of benchmarks/verifier_eval.py), the pairs are split by
  question group (``semcache.eval.split.group_split``) and a random subsample of the test
  part (``--pairs`` per seed: the CPU budget, mpnet costs ~35 CPU-ms a text) is scored
  by each model's cosine: ROC AUC.
* The must-not-hit suite (semcache/data/must_not_hit.jsonl): the cosine's AUC on the
  test half, and what each model serves there at its own threshold, chosen on the tune
  half so that both serve the same share of the tune half's paraphrases.
* Cost per query: one text per ``embed`` call, both models in the same process,
  interleaved (the order alternates every text), LRU off: p50 / p99 / mean ms.

Vectors are computed once per model and kept in ``--embedding-cache`` (a rerun reads
files, not minutes of CPU).

``--verifier`` instead measures the shipped structural verifier (fitted on MiniLM
cosines, seed 0's tuning parts) fed by each embedder: on seed 0's Quora test subsample
(the same pairs, vectors from the cache) at its default point, and the must-not-hit
test half replayed through a real ``Cache(type="faiss-semantic")`` (``through_cache``
of benchmarks/verifier_eval.py: default, wide and strict points, the cosine alone at
0.93).

    .venv/bin/python benchmarks/embedder_quality.py --seeds 0 1 2 --pairs 1500
    .venv/bin/python benchmarks/embedder_quality.py --seeds 0 1 2 --pairs 1500 --verifier
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semcache.embedders.onnx import OnnxEmbedder  # noqa: E402
from semcache.eval._data import load_pairs  # noqa: E402
from semcache.eval._embed import embed_texts  # noqa: E402
from semcache.eval._metrics import roc_auc  # noqa: E402
from semcache.eval.fitting import load_must_not_hit  # noqa: E402
from semcache.eval.split import group_split  # noqa: E402

MODELS = ("all-MiniLM-L6-v2", "all-mpnet-base-v2")
DATA = ROOT.parent / "shared" / "data"
#: shares of the tune half's paraphrases each model's threshold is set to serve
PARAPHRASE_RATES = (0.5, 0.7, 0.9)


def _r(x: float) -> float | None:
    return None if x != x else round(float(x), 4)


def _cos(vecs: dict[str, np.ndarray], a: list[str], b: list[str]) -> np.ndarray:
    return np.einsum("ij,ij->i", np.stack([vecs[t] for t in a]),
                     np.stack([vecs[t] for t in b]))


def _served(rows: list[dict[str, Any]], served: np.ndarray) -> dict[str, Any]:
    neg = np.array([r["label"] == 0 for r in rows])
    kinds = sorted({r["kind"] for r in rows if r["label"] == 0})
    by_kind = {k: int((served & np.array([r["kind"] == k for r in rows])).sum())
               for k in kinds}
    return {"paraphrases_served": int((served & ~neg).sum()), "paraphrases": int((~neg).sum()),
            "must_not_hit_served": int((served & neg).sum()), "must_not_hit": int(neg.sum()),
            "must_not_hit_served_by_kind": by_kind}


def must_not_hit(vecs: dict[str, np.ndarray]) -> dict[str, Any]:
    tune, test = load_must_not_hit("tune"), load_must_not_hit("test")
    c_tune = _cos(vecs, [r["query"] for r in tune], [r["candidate"] for r in tune])
    c_test = _cos(vecs, [r["query"] for r in test], [r["candidate"] for r in test])
    y_tune = np.array([r["label"] for r in tune])
    y_test = np.array([r["label"] for r in test])
    para = np.sort(c_tune[y_tune == 1])[::-1]
    at_rate = {}
    for rate in PARAPHRASE_RATES:
        # the highest threshold that serves `rate` of the tune half's paraphrases
        thr = float(para[int(np.ceil(rate * len(para))) - 1])
        at_rate[f"{rate:.1f}"] = {"threshold": _r(thr), **_served(test, c_test >= thr)}
    return {"test_roc_auc": _r(roc_auc(c_test, y_test)),
            "tune_roc_auc": _r(roc_auc(c_tune, y_tune)),
            "test_at_tune_paraphrase_rate": at_rate}


def latency(texts: list[str], repeats: int) -> dict[str, Any]:
    """ms per one-text ``embed`` call, LRU off, the two models interleaved."""
    embs = [OnnxEmbedder(m, cache_size=0).load() for m in MODELS]
    for e in embs:  # warm: first runs allocate and pick kernels
        for t in texts[:5]:
            e.embed([t])
    times: list[list[float]] = [[] for _ in embs]
    for rep in range(repeats):
        for i, t in enumerate(texts):
            order = range(len(embs)) if (i + rep) % 2 == 0 else reversed(range(len(embs)))
            for k in order:
                t0 = time.perf_counter()
                embs[k].embed([t])
                times[k].append((time.perf_counter() - t0) * 1e3)
    out: dict[str, Any] = {}
    for m, ts in zip(MODELS, times):
        a = np.array(ts)
        out[m] = {"p50_ms": _r(np.percentile(a, 50)), "p99_ms": _r(np.percentile(a, 99)),
                  "mean_ms": _r(a.mean()), "calls": len(a)}
    base, other = out[MODELS[0]], out[MODELS[1]]
    out["ratio"] = {k: _r(other[k] / base[k]) for k in ("p50_ms", "p99_ms", "mean_ms")}
    return out


def verifier_report(subs: dict[int, Any], texts: list[str], cache_dir: str,
                    out: Path) -> int:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from verifier_eval import through_cache

    from semcache.verifiers.structural import StructuralVerifier

    ver = StructuralVerifier()
    fitted_seed = ver.info["fitted"]["seed"]
    report: dict[str, Any] = {
        "command": "benchmarks/embedder_quality.py --seeds "
                   f"{' '.join(map(str, subs))} --pairs {len(next(iter(subs.values())))} "
                   "--verifier",
        "verifier": {"floor": ver.floor, "threshold": ver.threshold,
                     "fitted_seed": fitted_seed}}
    p = subs[fitted_seed]  # the only test part the shipped model never saw in fitting
    for m in MODELS:
        emb = OnnxEmbedder(m)
        vecs = dict(zip(texts, embed_texts(emb, texts, cache_dir=cache_dir)))
        cos = _cos(vecs, p.queries, p.candidates)
        prob = ver.score_pairs(p.queries, p.candidates, cos)
        y = p.labels == 1

        def pr(served: np.ndarray, y: np.ndarray = y) -> dict[str, Any]:
            return {"served": int(served.sum()), "right": int((served & y).sum()),
                    "precision": _r((served & y).sum() / max(1, served.sum())),
                    "recall": _r((served & y).sum() / max(1, y.sum()))}

        report[m] = {
            "quora_test_pairs": len(p), "quora_test_positives": int(y.sum()),
            "quora_verifier_default": pr((cos >= ver.floor) & (prob >= ver.threshold)),
            "quora_cosine_at_0.93": pr(cos >= 0.93),
            "quora_verifier_roc_auc": _r(roc_auc(np.where(cos >= ver.floor, prob, 0.0),
                                                 p.labels)),
            "must_not_hit_test_through_cache": through_cache(OnnxEmbedder(m)),
        }
        print(m, json.dumps(report[m]), flush=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--pairs", type=int, default=1000, help="test pairs per seed")
    ap.add_argument("--latency-texts", type=int, default=100)
    ap.add_argument("--latency-repeats", type=int, default=2)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "embedder_quality.json")
    ap.add_argument("--embedding-cache", default=str(ROOT / "benchmarks" / "results"
                                                     / ".embeddings"))
    ap.add_argument("--verifier", action="store_true",
                    help="the shipped verifier with each embedder (vectors from the cache)")
    args = ap.parse_args(argv)
    qqp = load_pairs(args.data / "qqp" / "pairs.jsonl.gz")
    subs = {s: group_split(qqp, seed=s).test.sample(args.pairs, seed=s) for s in args.seeds}
    mnh = load_must_not_hit()
    texts = sorted({t for p in subs.values() for t in (*p.queries, *p.candidates)}
                   | {t for r in mnh for t in (r["query"], r["candidate"])})
    print(f"{len(texts)} distinct texts", flush=True)
    if args.verifier:
        return verifier_report(subs, texts, args.embedding_cache,
                               args.out.with_name("embedder_quality_verifier.json"))

    per_model: dict[str, Any] = {}
    for m in MODELS:
        emb = OnnxEmbedder(m)
        t0, c0 = time.time(), time.process_time()
        vecs = dict(zip(texts, embed_texts(emb, texts, cache_dir=args.embedding_cache)))
        quora = {str(s): _r(roc_auc(_cos(vecs, p.queries, p.candidates), p.labels))
                 for s, p in subs.items()}
        pooled = (np.concatenate([_cos(vecs, p.queries, p.candidates) for p in subs.values()]),
                  np.concatenate([p.labels for p in subs.values()]))
        per_model[m] = {
            "dim": emb.dim,
            "embedding_wall_s": round(time.time() - t0, 1),  # ~0 when read from the cache
            "embedding_cpu_s": round(time.process_time() - c0, 1),
            "quora_test_roc_auc": {"per_seed": quora,
                                   "mean": _r(np.mean([v for v in quora.values()])),
                                   "pooled": _r(roc_auc(*pooled))},
            "must_not_hit": must_not_hit(vecs),
        }
        print(m, json.dumps(per_model[m]), flush=True)

    short = sorted({r["query"] for r in mnh})[:args.latency_texts]  # short prompts
    load = os.getloadavg()
    report = {
        "command": f"benchmarks/embedder_quality.py --seeds {' '.join(map(str, args.seeds))} "
                   f"--pairs {args.pairs}",
        "quora_test_pairs_per_seed": {str(s): len(p) for s, p in subs.items()},
        "quora_test_positives_per_seed": {str(s): p.n_positive for s, p in subs.items()},
        "distinct_texts": len(texts),
        "models": per_model,
        "latency_one_text": latency(short, args.latency_repeats),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}, load average before latency "
                   f"{load[0]:.1f} (shared machine: timings are noisy)",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["latency_one_text"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
