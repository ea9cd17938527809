"""A blind audit of what the cache serves on Quora's test parts: how often Quora's
"not duplicate" label is wrong where the verifier (or the cosine) would serve (issue #20).

    .venv/bin/python benchmarks/quora_audit.py sample   # writes the sample and its key
    # judges answer each pair of sample.jsonl without seeing labels or scores
    .venv/bin/python benchmarks/quora_audit.py report   # judgements -> quora_audit.json
    .venv/bin/python benchmarks/quora_audit.py sample-tune   # the tuning side, below
    .venv/bin/python benchmarks/quora_audit.py report-tune   # -> quora_audit_tune.json

Quora labels about 1 in 6 of the pairs the default verifier serves "not duplicate".
Whether those labels are right, and whether the pairs labeled "duplicate" would really
share one answer, is what a cache needs to know: the judges read each pair against one
strict question (would the answer written for A answer B?), without seeing labels,
scores or which system served it.

``sample``: for seeds 0, 1, 2 (the splits ``verifier_eval.py`` reports on), the verifier
fitted on that seed's tuning parts (seed 0's is the shipped model, byte for byte) at its
default point, and the cosine alone at 0.93, each serve a set of test-part pairs. From
each seed, ``--per-seed`` pairs are drawn at random from each system's served set; the
pairs go, shuffled and numbered, to ``sample.jsonl`` (question A, question B, nothing
else) and their labels, cosines, scores and systems to ``key.json``, which the judges
never see.

``sample-tune``: the same question on the tuning side, where a point may be chosen:
the calibration slice of seed 0's Quora tuning part (the pairs the shipped model's
points were chosen on, never fitted on). ``--n`` pairs are drawn at random from the
union of what the shipped model's points (default, wide, strict, veto) and the cosine
at 0.93 serve there, so the sampled pairs each one serves are a uniform sample of its
served set; ``report-tune`` gives each one's precision and its estimated right and
wrong answers (its served count times the judges' share). Files go to
``quora_audit_tune/``.

``report``: each ``judge_<name>.jsonl`` holds ``{"id": ..., "same": true|false}`` for
every pair; a pair is "the same" when the answer written for A would answer B fully and
correctly (the definition the judges were given is in ``JUDGE_BRIEF``). Per system, the
precision by Quora's labels and by each judge and by both judges agreeing, with
bootstrap 95% intervals, the judges' agreement (Cohen's kappa), and how often each judge
calls a pair Quora labels "duplicate" different (a check on the judges).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))

OUT = ROOT / "benchmarks" / "results" / "quora_audit"
COSINE = 0.93

JUDGE_BRIEF = """\
Each line of the file is a pair of questions a user asked, A and B. Decide whether
they are the same question: whether an answer written for A would answer B fully and
correctly, so that a cache could give B the answer stored for A.

- The same: other wording, word order, person ("How do I ..." / "How do you ..."),
  politeness, spelling, singular or plural, a detail that does not change the answer.
- Not the same: a narrower or broader question whose answer differs; another entity,
  number, date, place, product or person; another aspect (benefits / drawbacks, cause
  / cure, before / after); the two sides of a relation swapped; B asks something more
  that A's answer would not cover; a question that refers to something not shown
  ("this question") counts as the same only if the wording shows it is the same thing.

Judge every pair on its own, from its two questions alone.
"""


SYSTEMS = ("verifier", "wide", "strict", "veto", "cosine_0.93")  # "verifier": the default


def sample(per_seed: int, seeds: list[int], systems: list[str], name: str) -> None:
    from train_verifier import DATA, corpus
    from verifier_eval import fit_seed

    from semcache._registry import get_embedder
    from semcache.eval.fitting import make_cosines

    qqp, paws, texts = corpus(DATA)
    cos = make_cosines(get_embedder(None), texts,
                       str(ROOT / "benchmarks" / "results" / ".embeddings"))
    rows: dict[tuple[int, str, str], dict[str, Any]] = {}
    rng = np.random.default_rng(20)
    for seed in seeds:
        qs, _, _, points, score = fit_seed(seed, qqp, paws, cos)
        test = qs.test
        c, p = score(test.queries, test.candidates)
        at = {s: points["default" if s == "verifier" else s] for s in SYSTEMS[:4]}
        masks = {s: (c >= f) & (p >= t) for s, (f, t) in at.items()}
        masks["cosine_0.93"] = c >= COSINE
        listed = [s for s in SYSTEMS if s in {*systems, "verifier", "cosine_0.93"}]
        for system in systems:
            idx = np.flatnonzero(masks[system])
            for i in rng.choice(idx, min(per_seed, len(idx)), replace=False).tolist():
                a, b = test.queries[i], test.candidates[i]
                r = rows.setdefault((seed, a, b), {"a": a, "b": b, "seed": seed,
                                             "label": int(test.labels[i]),
                                             "cosine": round(float(c[i]), 4),
                                             "verifier_score": round(float(p[i]), 4),
                                             "systems": []})
                r["systems"].append(system)
        # which system serves each sampled pair, whoever drew it
        for r in rows.values():
            if r["seed"] == seed:
                r["served_by"] = [s for s in listed if (
                    r["cosine"] >= COSINE if s == "cosine_0.93" else
                    r["cosine"] >= at[s][0] and r["verifier_score"] >= at[s][1])]
    order = rng.permutation(len(rows))
    items = list(rows.values())
    out = ROOT / "benchmarks" / "results" / name
    out.mkdir(parents=True, exist_ok=True)
    key = {}
    with open(out / "sample.jsonl", "w") as f:
        for n, j in enumerate(order.tolist()):
            r = items[j]
            f.write(json.dumps({"id": n, "a": r["a"], "b": r["b"]}, ensure_ascii=False) + "\n")
            key[n] = {k: v for k, v in r.items() if k not in ("a", "b")}
    extra = ("" if systems == ["verifier", "cosine_0.93"] else
             " --systems " + " ".join(systems)) + ("" if name == OUT.name else f" --name {name}")
    doc: dict[str, Any] = {
        "command": f"benchmarks/quora_audit.py sample --per-seed {per_seed} --seeds "
                   + " ".join(map(str, seeds)) + extra,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cosine_threshold": COSINE}
    if extra:
        doc["systems"] = systems
    (out / "key.json").write_text(json.dumps({**doc, "pairs": key}, indent=1) + "\n")
    (out / "JUDGE_BRIEF.txt").write_text(JUDGE_BRIEF)
    print(f"{len(rows)} pairs -> {out / 'sample.jsonl'}")


TUNE = ROOT / "benchmarks" / "results" / "quora_audit_tune"
POINTS = ("default", "wide", "strict", "veto")


def _tune_served() -> tuple[Any, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    from train_verifier import DATA, corpus

    from semcache._registry import get_embedder
    from semcache.eval.fitting import make_cosines
    from semcache.eval.split import group_split
    from semcache.verifiers.structural import StructuralVerifier

    qqp, _, texts = corpus(DATA)
    cos = make_cosines(get_embedder(None), texts,
                       str(ROOT / "benchmarks" / "results" / ".embeddings"))
    cal = group_split(group_split(qqp, seed=0).tune, test_fraction=0.3, seed=1000).test
    c = np.asarray(cos(cal.queries, cal.candidates))
    p = StructuralVerifier().score_pairs(cal.queries, cal.candidates, c)
    served = {}
    for point in POINTS:
        v = StructuralVerifier(point=point)
        served[point] = (c >= v.floor) & (p >= v.threshold)
    served["cosine_0.93"] = c >= COSINE
    return cal, served, c, p


def sample_tune(n: int) -> None:
    cal, served, c, p = _tune_served()
    union = np.flatnonzero(np.any(np.stack(list(served.values())), axis=0))
    rng = np.random.default_rng(21)
    pick = rng.choice(union, min(n, len(union)), replace=False)
    TUNE.mkdir(parents=True, exist_ok=True)
    key = {}
    with open(TUNE / "sample.jsonl", "w") as f:
        for k, i in enumerate(pick.tolist()):
            f.write(json.dumps({"id": k, "a": cal.queries[i], "b": cal.candidates[i]},
                               ensure_ascii=False) + "\n")
            key[k] = {"label": int(cal.labels[i]), "cosine": round(float(c[i]), 4),
                      "verifier_score": round(float(p[i]), 4),
                      "served_by": [s for s, m in served.items() if m[i]]}
    (TUNE / "key.json").write_text(json.dumps(
        {"command": f"benchmarks/quora_audit.py sample-tune --n {n}",
         "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
         "calibration_pairs": len(cal.labels), "union_served": int(len(union)),
         "served": {s: int(m.sum()) for s, m in served.items()},
         "served_right_by_label": {s: int((m & (np.asarray(cal.labels) == 1)).sum())
                                   for s, m in served.items()},
         "pairs": key}, indent=1) + "\n")
    (TUNE / "JUDGE_BRIEF.txt").write_text(JUDGE_BRIEF)
    print(f"{len(pick)} of {len(union)} served pairs -> {TUNE / 'sample.jsonl'}")


def _judgements(folder: Path, ids: list[int]) -> dict[str, dict[int, bool]]:
    judges: dict[str, dict[int, bool]] = {}
    for path in sorted(folder.glob("judge_*.jsonl")):
        got = {int(d["id"]): bool(d["same"]) for d in map(json.loads,
                                                          path.read_text().splitlines())}
        if set(ids) - set(got):
            raise SystemExit(f"{path.name}: no verdict for {len(set(ids) - set(got))} pairs")
        judges[path.stem.removeprefix("judge_")] = got
    if not judges:
        raise SystemExit(f"no judge_*.jsonl in {folder}")
    return judges


def report_tune() -> None:
    key = json.loads((TUNE / "key.json").read_text())
    pairs = {int(k): v for k, v in key["pairs"].items()}
    ids = sorted(pairs)
    judges = _judgements(TUNE, ids)
    both = {i: all(j[i] for j in judges.values()) for i in ids}
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"command": "benchmarks/quora_audit.py report-tune",
                           "sample": key["command"], "sampled": key["date"],
                           "judges": sorted(judges), "pairs": len(ids), "points": {}}
    for system, n_served in key["served"].items():
        sel = [i for i in ids if system in pairs[i]["served_by"]]
        ci = _precision_ci(np.array([both[i] for i in sel]), rng)
        out["points"][system] = {
            "served": n_served, "sampled": len(sel),
            "by_quora_labels": round(key["served_right_by_label"][system] / n_served, 4),
            "by_both_judges": ci,
            "estimated_right": round(n_served * ci.get("precision", 0.0)),
            "estimated_wrong": round(n_served * (1 - ci.get("precision", 0.0)))}
    a, b = (np.array([j[i] for i in ids]) for j in list(judges.values())[:2])
    out["judges_agree"] = round(float((a == b).mean()), 4)
    out["cohen_kappa"] = _kappa(a, b)
    (ROOT / "benchmarks" / "results" / "quora_audit_tune.json").write_text(
        json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


def _precision_ci(same: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    if not len(same):
        return {"n": 0}
    boots = rng.choice(same, (2000, len(same))).mean(axis=1)
    return {"n": int(len(same)), "precision": round(float(same.mean()), 4),
            "ci95": [round(float(np.percentile(boots, 2.5)), 4),
                     round(float(np.percentile(boots, 97.5)), 4)]}


def _kappa(x: np.ndarray, y: np.ndarray) -> float:
    po = float((x == y).mean())
    pe = float(x.mean() * y.mean() + (1 - x.mean()) * (1 - y.mean()))
    return round((po - pe) / (1 - pe), 4) if pe < 1 else 1.0


def report(audit: str) -> None:
    folder = ROOT / "benchmarks" / "results" / audit
    key = json.loads((folder / "key.json").read_text())
    pairs = {int(k): v for k, v in key["pairs"].items()}
    judges: dict[str, dict[int, bool]] = {}
    for path in sorted(folder.glob("judge_*.jsonl")):
        name = path.stem.removeprefix("judge_")
        got = {}
        for line in path.read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                got[int(d["id"])] = bool(d["same"])
        missing = set(pairs) - set(got)
        if missing:
            raise SystemExit(f"{path.name}: no verdict for {len(missing)} pairs")
        judges[name] = got
    if not judges:
        raise SystemExit(f"no judge_*.jsonl in {folder}")
    rng = np.random.default_rng(0)
    ids = sorted(pairs)
    names = sorted(judges)
    both = {i: all(judges[j][i] for j in names) for i in ids}
    either = {i: any(judges[j][i] for j in names) for i in ids}
    out: dict[str, Any] = {"command": "benchmarks/quora_audit.py report"
                                      + ("" if audit == OUT.name else f" --name {audit}"),
                           "sample": key["command"], "sampled": key["date"],
                           "judges": names, "pairs": len(ids), "systems": {}}
    for system in key.get("systems", ["verifier", "cosine_0.93"]):
        # the pairs drawn for this system: a uniform sample of what it serves
        sel = [i for i in ids if system in pairs[i]["systems"]]
        lab = np.array([pairs[i]["label"] for i in sel], bool)
        row: dict[str, Any] = {"by_quora_labels": _precision_ci(lab, rng)}
        for j in names:
            row[f"by_judge_{j}"] = _precision_ci(np.array([judges[j][i] for i in sel]), rng)
        row["by_both_judges"] = _precision_ci(np.array([both[i] for i in sel]), rng)
        row["by_either_judge"] = _precision_ci(np.array([either[i] for i in sel]), rng)
        bands = {}
        for lo, hi in ((0.70, 0.85), (0.85, 0.93), (0.93, 0.97), (0.97, 1.01)):
            b = [i for i in sel if lo <= pairs[i]["cosine"] < hi]
            if b:
                bands[f"cosine {lo:.2f}-{min(hi, 1.0):.2f}"] = {
                    "n": len(b), "by_both_judges": round(float(np.mean([both[i] for i in b])), 4),
                    "by_quora_labels": round(float(np.mean([pairs[i]["label"] for i in b])), 4)}
        row["by_cosine_band"] = bands
        if system == "cosine_0.93" and "verifier" in key.get("systems", ["verifier"]):
            # what the verifier's default point does with these
            for name, keep in (("verifier_also_serves", True), ("verifier_refuses", False)):
                b = [i for i in sel if ("verifier" in pairs[i]["served_by"]) == keep]
                row[name] = {"n": len(b),
                             "by_both_judges": round(float(np.mean([both[i] for i in b])), 4),
                             "by_quora_labels": round(float(np.mean(
                                 [pairs[i]["label"] for i in b])), 4)}
        zero = [i for i in sel if not pairs[i]["label"]]
        row["labeled_not_duplicate"] = len(zero)
        row["of_those_same_by_both_judges"] = sum(both[i] for i in zero)
        out["systems"][system] = row
    if len(names) >= 2:
        a, b = (np.array([judges[n][i] for i in ids]) for n in names[:2])
        out["judges_agree"] = round(float((a == b).mean()), 4)
        out["cohen_kappa"] = _kappa(a, b)
    for j in names:
        dup = [i for i in ids if pairs[i]["label"]]
        out[f"judge_{j}_calls_labeled_duplicates_different"] = round(
            1 - float(np.mean([judges[j][i] for i in dup])), 4) if dup else None
    (ROOT / "benchmarks" / "results" / f"{audit}.json").write_text(
        json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--per-seed", type=int, default=70)
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    s.add_argument("--systems", nargs="+", choices=SYSTEMS, default=["verifier", "cosine_0.93"],
                   help="whose served pairs to draw from (verifier: the default point)")
    s.add_argument("--name", default=OUT.name, help="folder and results file name")
    r = sub.add_parser("report")
    r.add_argument("--name", default=OUT.name)
    t = sub.add_parser("sample-tune")
    t.add_argument("--n", type=int, default=480)
    sub.add_parser("report-tune")
    args = ap.parse_args(argv)
    if args.cmd == "sample":
        sample(args.per_seed, args.seeds, args.systems, args.name)
    elif args.cmd == "sample-tune":
        sample_tune(args.n)
    elif args.cmd == "report-tune":
        report_tune()
    else:
        report(args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
