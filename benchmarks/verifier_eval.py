"""The structural verifier against the cosine alone, on test parts only, over seeds.

For each seed: Quora and PAWS are split by question group (``semcache.eval.split``); the
verifier is fitted, and its floor and threshold chosen, on the tuning parts, the
must-not-hit suite's tune half and the read holdouts (``load_prompt_tuning``;
``semcache.eval.fitting.train``, the code behind ``scripts/train_verifier.py``); every figure below comes from the test parts and the
suite's test half. The cosine is reported at the old default (0.93), at a threshold
chosen on the same tuning part for precision >= 0.95, and in hindsight on the test part.
The suite's test half is also replayed through a real ``Cache`` (default configuration
against ``verifier=None``), with the shipped model, and the added cost of a semantic hit
is measured there. ``--holdout NAME`` reports on a holdout file instead
(semcache/data/README.md): ``holdout6`` is unseen, ``holdout5`` chose the prompt pairs'
weight (``--mnh-weight``), the first four are fitted on since 2026-12-07 (their figures
then say ``fitted_on``).

    .venv/bin/python benchmarks/verifier_eval.py --seeds 0 1 2
    .venv/bin/python benchmarks/verifier_eval.py --holdout --seeds 0 1 2  # unseen set only
    .venv/bin/python benchmarks/verifier_eval.py --holdout holdout2 --seeds 0 1 2  # second
    .venv/bin/python benchmarks/verifier_eval.py --holdout holdout3 --seeds 0 1 2  # third
    .venv/bin/python benchmarks/verifier_eval.py --holdout holdout4 --seeds 0 1 2  # fourth
    .venv/bin/python benchmarks/verifier_eval.py --holdout holdout5 --mnh-weight 4 \
        --out benchmarks/results/verifier_eval_holdout5_w4.json   # the weight's choice
    .venv/bin/python benchmarks/verifier_eval.py --holdout holdout6 --seeds 0 1 2  # unseen
    .venv/bin/python benchmarks/verifier_eval.py --cross-encoder ~/.cache/semcache/cross-encoder
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # semcache_testing (the fake upstream) is not in the wheel
sys.path.insert(0, str(ROOT / "scripts"))

from train_verifier import DATA, corpus  # noqa: E402

from semcache import Cache  # noqa: E402
from semcache._registry import get_embedder  # noqa: E402
from semcache.eval._metrics import roc_auc  # noqa: E402
from semcache.eval._mnh import HOLDOUTS, READ_HOLDOUTS, ROLE_KINDS  # noqa: E402
from semcache.eval.fitting import (  # noqa: E402
    choose_threshold,
    load_must_not_hit,
    load_prompt_tuning,
    load_role_swaps,
    make_cosines,
    pair_scores,
    precision_recall,
    train,
)
from semcache.eval.split import group_split  # noqa: E402
from semcache.verifiers.structural import StructuralVerifier  # noqa: E402
from semcache.verifiers.trees import TreeEnsemble  # noqa: E402

TARGET = 0.95
OLD_DEFAULT = 0.93
#: how the role-swap set's tune half is used (``--roles``): fitted on and counted in the
#: default point's must-not-hit budget ("budget", as scripts/train_verifier.py does), the
#: same with none of its role moves allowed ("zero"), fitted on only ("fit"), or left
#: out ("none": the verifier as it was before the set existed)
ROLES: dict[str, Any] = {"mode": "budget", "guard_fraction": 0.0, "mnh_weight": None}


def _r(x: float) -> float | None:
    return None if x != x else round(float(x), 4)


def _pr(pred: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    p, r = precision_recall(pred, labels)
    return {"precision": _r(p), "recall": _r(r), "served": int(pred.sum())}


def _p_at_r(scores: np.ndarray, labels: np.ndarray, recall: float) -> float:
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(labels[order])
    i = int(np.searchsorted(tp, recall * tp[-1]))
    return float(tp[i] / (i + 1))


def _rows(half: str) -> list[dict[str, Any]]:
    return load_role_swaps("test") if half == "roles-test" else load_must_not_hit(half)


def _mnh(rows: list[dict[str, Any]], served: np.ndarray) -> dict[str, Any]:
    neg = np.array([r["label"] == 0 for r in rows])
    rev = np.array([r["kind"] == "reversal" for r in rows])
    moved = np.array([r["kind"] in ROLE_KINDS for r in rows])
    roles = {"role_moves": int(moved.sum()), "role_moves_served": int((served & moved).sum())
             } if moved.sum() > rev.sum() else {}
    return {**roles,"must_not_hit": int(neg.sum()), "must_not_hit_served": int((served & neg).sum()),
            "must_not_hit_served_rate": _r((served & neg).sum() / max(1, neg.sum())),
            "reversals": int(rev.sum()), "reversals_served": int((served & rev).sum()),
            "paraphrases": int((~neg).sum()), "paraphrases_served": int((served & ~neg).sum()),
            "paraphrases_served_rate": _r((served & ~neg).sum() / max(1, (~neg).sum()))}


def _by_kind(rows: list[dict[str, Any]], served: np.ndarray) -> dict[str, list[int]]:
    """kind -> [served, of]."""
    out: dict[str, list[int]] = {}
    for r, s in zip(rows, served):
        out.setdefault(r["kind"], [0, 0])
        out[r["kind"]][0] += int(s)
        out[r["kind"]][1] += 1
    return dict(sorted(out.items()))


def fit_seed(seed: int, qqp, paws, cos) -> tuple[Any, Any, dict[str, Any], Any, Any]:
    """Seed ``seed``'s split, the verifier fitted on its tuning parts, that verifier's
    operating points and a ``score(queries, candidates) -> (cosines, probabilities)``."""
    qs, ps = group_split(qqp, seed=seed), group_split(paws, seed=seed)
    mode = ROLES["mode"]
    doc = train(qs.tune, ps.tune, load_prompt_tuning(), cos, seed=seed,
                weights={"mnh": ROLES["mnh_weight"]} if ROLES["mnh_weight"] else None,
                roles_tune=load_role_swaps("tune") if mode != "none" else (),
                guard_roles=mode in ("budget", "zero"),
                guard_fraction=ROLES["guard_fraction"],
                **({"none_of": ROLE_KINDS} if mode == "zero" else {}))
    ens = TreeEnsemble.from_json(doc["model"])
    points = {k: (doc[k]["floor"], doc[k]["threshold"]) for k in ("wide", "strict", "veto")
              if "floor" in doc[k]}  # a strict point the fit could not reach is left out
    points = {"default": (doc["floor"], doc["threshold"]), **points}

    def score(queries, candidates):
        c = np.asarray(cos(queries, candidates), np.float32)
        return c, pair_scores(ens, queries, candidates, c)

    return qs, ps, doc, points, score


def one_seed(seed: int, qqp, paws, cos) -> dict[str, Any]:
    t = time.time()
    qs, ps, doc, points, score = fit_seed(seed, qqp, paws, cos)
    qc, qp = score(qs.test.queries, qs.test.candidates)
    y = qs.test.labels
    strict = doc["strict"]
    tune_cos = np.asarray(cos(qs.tune.queries, qs.tune.candidates))
    cos_tuned = choose_threshold(tune_cos, qs.tune.labels, np.ones(len(tune_cos), bool),
                                 TARGET)[0]
    _, _, hind_v = choose_threshold(qp, y, qc >= strict.get("floor", doc["floor"]), TARGET)
    _, _, hind_c = choose_threshold(qc, y, np.ones(len(qc), bool), TARGET)
    pc, pp = score(ps.test.queries, ps.test.candidates)
    rows = load_must_not_hit("test")
    mc, mp = score([r["query"] for r in rows], [r["candidate"] for r in rows])
    roles = load_role_swaps("test")
    rc, rp = score([r["query"] for r in roles], [r["candidate"] for r in roles])
    return {
        "seed": seed, "fit_seconds": round(time.time() - t, 1),
        "points": {k: {"floor": f, "threshold": th} for k, (f, th) in points.items()},
        "strict_precision_reached_on_tuning": strict.get("precision_reached", False),
        "tuning": doc["tuning"],
        "quora_test_pairs": len(y), "paws_test_pairs": len(ps.test),
        "quora": {
            **{f"verifier_{k}": _pr((qc >= f) & (qp >= th), y)
               for k, (f, th) in points.items()},
            "cosine_at_0.93": _pr(qc >= OLD_DEFAULT, y),
            "cosine_tuned_p95": {"threshold": _r(cos_tuned), **_pr(qc >= cos_tuned, y)},
            "recall_at_p95_hindsight": {"verifier": _r(hind_v), "cosine": _r(hind_c)},
            # the target read the other way: the best precision any threshold
            # gets at recall 0.20 on this test part (hindsight, an upper bound)
            "precision_at_recall_0.20_hindsight": {"verifier": _r(_p_at_r(qp, y, 0.20)),
                                                   "cosine": _r(_p_at_r(qc, y, 0.20))},
            "roc_auc": {"verifier": _r(roc_auc(qp, y)), "cosine": _r(roc_auc(qc, y))},
        },
        "paws": {"roc_auc": {"verifier": _r(roc_auc(pp, ps.test.labels)),
                             "cosine": _r(roc_auc(pc, ps.test.labels))}},
        "must_not_hit_test": {
            **{f"verifier_{k}": _mnh(rows, (mc >= f) & (mp >= th))
               for k, (f, th) in points.items()},
            "cosine_at_0.93": _mnh(rows, mc >= OLD_DEFAULT)},
        "roles_test": {
            **{f"verifier_{k}": _mnh(roles, (rc >= f) & (rp >= th))
               for k, (f, th) in points.items()},
            "cosine_at_0.93": _mnh(roles, rc >= OLD_DEFAULT)},
    }


def through_cache(embedder, half: str = "test") -> dict[str, Any]:
    """The suite's ``half`` through a real Cache: every base prompt stored with its own
    answer, every variant looked up; a must-not-hit variant served anything is wrong, a
    paraphrase is right only when served its own prompt's answer."""
    rows = _rows(half)
    out: dict[str, Any] = {}
    info = StructuralVerifier().info
    points = {k: {"similarity_threshold": info[k]["floor"],
                  "verifier_threshold": info[k]["threshold"]} for k in ("wide", "strict")}
    for label, kw in (("default", {}), ("cosine_alone", {"verifier": None}),
                      ("wide", points["wide"]), ("strict", points["strict"])):
        cache = Cache(type="faiss-semantic", embedder=embedder,
                      namespace="v" + uuid.uuid4().hex[:8], **kw)
        for base in dict.fromkeys(r["query"] for r in rows):
            cache.add_cache({"answer": base}, model="m",
                            messages=[{"role": "user", "content": base}])
        served = np.zeros(len(rows), bool)
        right = np.zeros(len(rows), bool)
        for i, r in enumerate(rows):
            hit = cache.lookup(model="m", messages=[{"role": "user", "content": r["candidate"]}])
            served[i] = hit is not None
            right[i] = hit is not None and hit.value == {"answer": r["query"]}
        para = np.array([r["label"] == 1 for r in rows])
        res = _mnh(rows, served)
        res["paraphrases_served_own_answer"] = int((right & para).sum())
        res["similarity_threshold"] = cache.similarity_threshold
        out[label] = res
        cache.close()
    return out


def hit_cost(embedder, n: int = 600) -> dict[str, Any]:
    """What the verifier adds to a semantic hit: the same lookups through a default cache
    and a ``verifier=None`` one, interleaved so both see the same machine load, counted
    where both served a semantic hit. The embedder's own cache answers repeated texts,
    so the totals are the pipeline without the model's embedding time, which is the
    part the verifier adds to (the embedding itself is unchanged)."""
    rows = [r for r in load_must_not_hit() if r["label"] == 1]
    caches = {name: Cache(type="faiss-semantic", embedder=embedder, similarity_threshold=0.5,
                          namespace="t" + uuid.uuid4().hex[:8], **kw)
              for name, kw in (("default", {}), ("cosine_alone", {"verifier": None}))}
    for c in caches.values():
        for base in dict.fromkeys(r["query"] for r in rows):
            c.add_cache({"a": 1}, model="m", messages=[{"role": "user", "content": base}])
    embedder.embed([r["candidate"] for r in rows])  # warm: time the pipeline, not the model
    totals: dict[str, list[float]] = {k: [] for k in caches}
    verify: list[float] = []
    for i in range(n):
        r = rows[i % len(rows)]
        metas = {name: c.lookup_with_metadata(
            model="m", messages=[{"role": "user", "content": r["candidate"]}])[1]
            for name, c in caches.items()}
        if all(m["stage"] == "semantic" for m in metas.values()):
            for name, m in metas.items():
                totals[name].append(m["timings_ms"]["total"])
            verify.append(metas["default"]["timings_ms"]["verify"])
    p50 = {k: float(np.median(v)) for k, v in totals.items()}
    return {"lookups": n, "paired_semantic_hits": len(verify),
            "p50_total_ms": {k: _r(v) for k, v in p50.items()},
            "p50_added_ms": _r(p50["default"] - p50["cosine_alone"]),
            "p50_verify_ms": _r(float(np.median(verify))),
            "p99_verify_ms": _r(float(np.percentile(verify, 99))),
            "similarity_threshold": 0.5,
            "note": "floor 0.5 so that up to top_k=4 candidates are scored per lookup, "
                    "more than the default floor lets through"}


def llm_cost(embedder, n: int = 200) -> dict[str, Any]:
    """The LLM verifier's own overhead, against FakeOpenAI on loopback (it answers at
    once, so this is the verifier's request building, HTTP round trip and parsing, not
    a model's latency, which a real deployment adds on top): the suite's paraphrases
    looked up through a cache with the LLM verifier, first uncached (one request per
    lookup), then again (answered from the verifier's in-process cache)."""
    from semcache.verifiers.llm import LLMVerifier
    from semcache_testing.fake_openai import FakeOpenAI

    rows = [r for r in load_must_not_hit() if r["label"] == 1][:n]
    with FakeOpenAI() as fake:
        v = LLMVerifier("gpt-4o-mini", api_base=fake.base_url, api_key="sk-test",
                        floor=0.5)
        cache = Cache(type="faiss-semantic", embedder=embedder, verifier=v,
                      namespace="l" + uuid.uuid4().hex[:8])
        for base in dict.fromkeys(r["query"] for r in rows):
            cache.add_cache({"a": 1}, model="m", messages=[{"role": "user", "content": base}])
        embedder.embed([r["candidate"] for r in rows])
        v.verify("warm-up: import openai, open the connection", ["x"], [1.0])
        out: dict[str, Any] = {"lookups": len(rows), "floor": 0.5}
        for phase in ("uncached", "cached"):
            verify = []
            for r in rows:
                meta = cache.lookup_with_metadata(
                    model="m", messages=[{"role": "user", "content": r["candidate"]}])[1]
                if "verify" in meta["timings_ms"]:
                    verify.append(meta["timings_ms"]["verify"])
            out[phase] = {"verified_lookups": len(verify),
                          "p50_verify_ms": _r(float(np.median(verify))),
                          "p99_verify_ms": _r(float(np.percentile(verify, 99)))}
        out["upstream_requests"] = v.requests - 1
        cache.close()
        v.close()
    return out


def cross_encoder_eval(folder: Path, qqp, paws, cos, limit: int | None = None
                       ) -> dict[str, Any]:
    """A trained cross-encoder folder (scripts/train_cross_encoder.py) on the test parts
    of the seed it was trained with: the same figures as the structural verifier's, at
    its recorded default and strict points, and in hindsight. ``limit`` scores a random
    subset of each test part (a CPU-bound run: 2 sequences per pair)."""
    from semcache.verifiers.cross_encoder import CrossEncoderVerifier

    # batch scoring: every core (a cache's lookups keep the default one thread)
    v = CrossEncoderVerifier(folder, intra_op_threads=os.cpu_count() or 1)
    seed = int(v.info["fitted"]["seed"])
    qs, ps = group_split(qqp, seed=seed), group_split(paws, seed=seed)
    rng = np.random.default_rng(seed)

    def scored(part):
        idx = np.arange(len(part))
        if limit is not None and len(idx) > limit:
            idx = np.sort(rng.choice(idx, limit, replace=False))
        q = [part.queries[i] for i in idx]
        c = [part.candidates[i] for i in idx]
        qc = np.asarray(cos(q, c), np.float32)
        return (qc, v.score_pairs(q, c, qc),
                np.asarray(part.labels)[idx])

    t = time.time()
    qc, qp, y = scored(qs.test)
    pc, pp, py = scored(ps.test)
    rows = load_must_not_hit("test")
    mc = np.asarray(cos([r["query"] for r in rows], [r["candidate"] for r in rows]))
    mp = v.score_pairs([r["query"] for r in rows], [r["candidate"] for r in rows], mc)
    points = {"default": (v.floor, v.threshold)}
    if "floor" in v.info.get("strict", {}):  # a weak model may reach no strict point
        points["strict"] = (v.info["strict"]["floor"], v.info["strict"]["threshold"])
    _, _, hind = choose_threshold(qp, y, qc >= points.get("strict", (0.0,))[0], TARGET)
    return {
        "folder": str(folder), "seed": seed, "fitted": v.info["fitted"],
        "points": {k: {"floor": f, "threshold": th} for k, (f, th) in points.items()},
        "quora_test_pairs": len(y), "paws_test_pairs": len(py),
        "seconds": round(time.time() - t, 1),
        "quora": {**{f"cross_encoder_{k}": _pr((qc >= f) & (qp >= th), y)
                     for k, (f, th) in points.items()},
                  "cosine_at_0.93": _pr(qc >= OLD_DEFAULT, y),
                  "recall_at_p95_hindsight": _r(hind),
                  "precision_at_recall_0.20_hindsight": _r(_p_at_r(qp, y, 0.20)),
                  "precision_at_recall_0.30_hindsight": _r(_p_at_r(qp, y, 0.30)),
                  "roc_auc": {"cross_encoder": _r(roc_auc(qp, y)),
                              "cosine": _r(roc_auc(qc, y))}},
        "paws": {"roc_auc": {"cross_encoder": _r(roc_auc(pp, py)),
                             "cosine": _r(roc_auc(pc, py))}},
        "must_not_hit_test": {f"cross_encoder_{k}": _mnh(rows, (mc >= f) & (mp >= th))
                              for k, (f, th) in points.items()},
    }


def holdout_eval(seeds: list[int], qqp, paws, cos, emb, name: str = "holdout"
                 ) -> dict[str, Any]:
    """A must-not-hit holdout (``must_not_hit_holdout.jsonl``, written after the
    verifier's features and points were settled, or ``name`` "holdout2", the second
    such set; never fitted or tuned on): the verifier refitted on each seed's tuning
    parts at each of its points, the cosine at the old default, and the shipped model
    through a real Cache; served counts per kind beside the totals."""
    rows = load_must_not_hit(name)
    q, c = [r["query"] for r in rows], [r["candidate"] for r in rows]
    per_seed = []
    for seed in seeds:
        t = time.time()
        _, _, _, points, score = fit_seed(seed, qqp, paws, cos)
        mc, mp = score(q, c)
        per_seed.append({
            "seed": seed, "fit_seconds": round(time.time() - t, 1),
            "points": {k: {"floor": f, "threshold": th} for k, (f, th) in points.items()},
            f"must_not_hit_{name}": {
                **{f"verifier_{k}": _mnh(rows, (mc >= f) & (mp >= th))
                   for k, (f, th) in points.items()},
                "cosine_at_0.93": _mnh(rows, mc >= OLD_DEFAULT)},
            "served_by_kind": {
                "verifier_default": _by_kind(rows, (mc >= points["default"][0])
                                             & (mp >= points["default"][1])),
                "cosine_at_0.93": _by_kind(rows, mc >= OLD_DEFAULT)}})
        print(json.dumps(per_seed[-1]), flush=True)
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    return {"pairs": len(rows), "groups": len({r["group"] for r in rows}), "kinds": kinds,
            "fitted_on": name in READ_HOLDOUTS,
            "summary": _summary(per_seed), "per_seed": per_seed,
            "shipped_model_through_cache": through_cache(emb, name)}


def cross_encoder_holdout(folder: Path, cos) -> dict[str, Any]:
    """A trained cross-encoder folder on the must-not-hit holdout, at its recorded points."""
    from semcache.verifiers.cross_encoder import CrossEncoderVerifier

    v = CrossEncoderVerifier(folder, intra_op_threads=os.cpu_count() or 1)
    rows = load_must_not_hit("holdout")
    q, c = [r["query"] for r in rows], [r["candidate"] for r in rows]
    mc = np.asarray(cos(q, c))
    mp = v.score_pairs(q, c, mc)
    points = {"default": (v.floor, v.threshold)}
    if "floor" in v.info.get("strict", {}):
        points["strict"] = (v.info["strict"]["floor"], v.info["strict"]["threshold"])
    return {"folder": str(folder), "fitted": v.info["fitted"], "pairs": len(rows),
            "points": {k: {"floor": f, "threshold": th} for k, (f, th) in points.items()},
            "must_not_hit_holdout": {
                **{f"cross_encoder_{k}": _mnh(rows, (mc >= f) & (mp >= th))
                   for k, (f, th) in points.items()},
                "cosine_at_0.93": _mnh(rows, mc >= OLD_DEFAULT)}}


def _summary(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    def collect(d: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], list[float]]:
        out: dict[tuple[str, ...], list[float]] = {}
        if isinstance(d, dict):
            for k, v in d.items():
                for p, vals in collect(v, path + (k,)).items():
                    out.setdefault(p, []).extend(vals)
        elif isinstance(d, (int, float)) and not isinstance(d, bool):
            out[path] = [float(d)]
        return out

    merged: dict[tuple[str, ...], list[float]] = {}
    for s in per_seed:
        for p, v in collect({k: v for k, v in s.items() if k != "seed"}).items():
            merged.setdefault(p, []).extend(v)
    return {".".join(p): {"mean": _r(np.mean(v)), "min": _r(min(v)), "max": _r(max(v))}
            for p, v in merged.items() if len(v) == len(per_seed)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=None,
                    help="default: benchmarks/results/verifier_eval.json, or "
                         "verifier_eval_cross_encoder.json with --cross-encoder")
    ap.add_argument("--embedding-cache", default=str(ROOT / "benchmarks" / "results"
                                                     / ".embeddings"))
    ap.add_argument("--cross-encoder", type=Path, default=None, metavar="FOLDER",
                    help="evaluate a trained cross-encoder folder instead (on the test "
                         "parts of its own seed); writes --out, default "
                         "verifier_eval_cross_encoder.json")
    ap.add_argument("--holdout", nargs="?", const="holdout", default=None,
                    choices=HOLDOUTS,
                    help="only a must-not-hit holdout (per seed and through a Cache): "
                         "the first (the default) or a later one; writes "
                         "--out, default verifier_eval_<holdout>.json")
    ap.add_argument("--roles", choices=("budget", "zero", "fit", "none"), default="budget",
                    help="the role-swap set's tune half: fitted on and counted in the "
                         "default point's must-not-hit budget (as shipped), the same with "
                         "no role move allowed, fitted on only, or left out")
    ap.add_argument("--guard-fraction", type=float, default=0.0,
                    help="keep this share of the prompt sets' tune groups out of the fit, "
                         "for the default point's must-not-hit budget alone (0: shipped)")
    ap.add_argument("--mnh-weight", type=float, default=None,
                    help="fit the prompt pairs with this weight instead of the shipped "
                         "one (fitting.WEIGHTS['mnh'])")
    ap.add_argument("--limit", type=int, default=None,
                    help="with --cross-encoder: score at most this many pairs per part")
    ap.add_argument("--cost-only", action="store_true",
                    help="only semantic_hit_cost (what the verifier adds to a hit, the "
                         "embedding cached), written to --out: a minute, no fitting")
    args = ap.parse_args(argv)
    if args.cost_only:
        if args.out is None:
            ap.error("--cost-only needs --out")
        emb = get_embedder(None)
        report = {"command": "benchmarks/verifier_eval.py --cost-only --out <file>",
                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  "loadavg": os.getloadavg(), "semantic_hit_cost": hit_cost(emb)}
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(json.dumps(report, indent=1))
        return 0
    ROLES["mode"] = args.roles
    ROLES["guard_fraction"] = args.guard_fraction
    ROLES["mnh_weight"] = args.mnh_weight
    roles_flag = ("" if args.roles == "budget" else f" --roles {args.roles}") + \
        (f" --guard-fraction {args.guard_fraction}" if args.guard_fraction else "") + \
        (f" --mnh-weight {args.mnh_weight:g}" if args.mnh_weight else "")
    qqp, paws, texts = corpus(args.data)
    emb = get_embedder(None)
    cos = make_cosines(emb, texts, args.embedding_cache)
    if args.cross_encoder is not None and args.holdout:
        out = args.out or ROOT / "benchmarks" / "results" / \
            "verifier_eval_cross_encoder_holdout.json"
        report = {"command": f"benchmarks/verifier_eval.py --holdout --cross-encoder "
                             f"{args.cross_encoder}",
                  **cross_encoder_holdout(args.cross_encoder, cos)}
        out.write_text(json.dumps(report, indent=1) + "\n")
        print(json.dumps(report, indent=1))
        return 0
    if args.cross_encoder is not None:
        out = args.out or ROOT / "benchmarks" / "results" / "verifier_eval_cross_encoder.json"
        report = cross_encoder_eval(args.cross_encoder, qqp, paws, cos, args.limit)
        report["command"] = ("benchmarks/verifier_eval.py --cross-encoder "
                             f"{args.cross_encoder}" + (f" --limit {args.limit}"
                                                       if args.limit else ""))
        out.write_text(json.dumps(report, indent=1) + "\n")
        print(json.dumps(report, indent=1))
        return 0
    if args.holdout:
        out = args.out or ROOT / "benchmarks" / "results" / f"verifier_eval_{args.holdout}.json"
        flag = "--holdout" + ("" if args.holdout == "holdout" else f" {args.holdout}")
        report = {"command": f"benchmarks/verifier_eval.py {flag} --seeds "
                             + " ".join(map(str, args.seeds)) + roles_flag,
                  "embedder": emb.model_id,
                  **holdout_eval(args.seeds, qqp, paws, cos, emb, args.holdout)}
        out.write_text(json.dumps(report, indent=1) + "\n")
        print(json.dumps(report["shipped_model_through_cache"], indent=1))
        print(f"wrote {out}")
        return 0
    per_seed = []
    for s in args.seeds:
        per_seed.append(one_seed(s, qqp, paws, cos))
        print(json.dumps(per_seed[-1]), flush=True)
    report = {
        "command": "benchmarks/verifier_eval.py --seeds " + " ".join(map(str, args.seeds))
        + roles_flag,
        "embedder": emb.model_id, "target_precision": TARGET, "machine":
            f"{platform.machine()}, {platform.python_version()}",
        "summary": _summary(per_seed), "per_seed": per_seed,
        "shipped_model_through_cache": through_cache(emb),
        "shipped_model_through_cache_roles_test": through_cache(emb, "roles-test"),
        "semantic_hit_cost": hit_cost(emb),
        "llm_verifier_overhead": llm_cost(emb),
    }
    out = args.out or ROOT / "benchmarks" / "results" / "verifier_eval.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("shipped_model_through_cache",
                                            "semantic_hit_cost", "llm_verifier_overhead")},
                     indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
