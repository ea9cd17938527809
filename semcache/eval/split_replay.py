"""Honest policy replays: everything chosen on a tuning part, every figure from a test part.

``semcache eval replay PAIRS --target-error-rate ...`` (and
``benchmarks/verified_replay.py``) split the labeled pairs by question group
(``semcache.eval.split.group_split``: connected components of the text graph, so no
question is on both sides), build one query stream from each part (from the labeled
pairs alone: ``semcache.eval.streams.build_stream``) and, per seed (split and shuffle):

* sweep static cosine thresholds on the *tuning* stream and take, per target, the one
  with the most hits at error at or below the target there: the **tuned static**,
  which is what a deployment can do; it is then replayed on the test stream;
* sweep the same thresholds on the *test* stream and take the **hindsight best**: the
  most hits at error at or below the target on the very stream it is scored on, which
  no deployment can do (an upper bound for any static threshold);
* replay the verified policy on the test stream, its options fixed in advance (tuned
  on tuning streams only).

Figures are means over seeds with their range. The hand-built order-sensitive pairs
(``order_sensitive_pairs``) are replayed in their own streams (the test stream with
them added) and reported in their own table, never in a headline figure.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._config import check_rate
from .._errors import InvalidRequestError
from ..embedders.base import Embedder
from ..policies._stats import wilson_interval
from ._data import Pairs
from ._report import write_json
from .replay import ReplayResult, replay_stream, running_error
from .split import check_splittable, group_split
from .streams import TRUTHS, Stream, build_stream, groups_from_pairs, order_sensitive_pairs

__all__ = ["SplitComparison", "StaticSweep", "compare_split", "stream_texts"]

#: share of each stream treated as warm-up when testing the running error
WARMUP = 0.2


def _stream(part: Pairs, *, seed: int, truth: str, min_group: int,
            hard: Sequence[tuple[str, str]] = ()) -> Stream:
    groups, negatives = groups_from_pairs(
        zip(part.queries, part.candidates, part.labels.tolist()), min_size=min_group)
    if not groups:
        raise InvalidRequestError(
            f"no paraphrase group of {min_group} or more questions in {part.source}: the "
            "pairs must share questions (as Quora's do) for a stream to ask one question "
            "several ways")
    return build_stream(groups, negatives, hard_pairs=hard, seed=seed, truth=truth)


def stream_texts(pairs: Pairs, *, min_group: int = 3, hard_pairs: bool = True) -> list[str]:
    """Every text a split comparison's streams can ask: the questions of the paraphrase
    groups and their labeled negatives (a split keeps each group whole on one side, so
    each part's stream asks a subset of these), and the hand-built pairs. On Quora a
    tenth of the pairs' texts: embed these, not all of them."""
    groups, negatives = groups_from_pairs(
        zip(pairs.queries, pairs.candidates, pairs.labels.tolist()), min_size=min_group)
    texts = [q for g in groups for q in g] + [q for pair in negatives for q in pair]
    if hard_pairs:
        texts += [q for pair in order_sensitive_pairs() for q in pair]
    return list(dict.fromkeys(texts))


class StaticSweep:
    """Static cosine thresholds replayed on one stream, each at most once (memoised).

    ``best(target)`` is the threshold with the most hits at error at or below the
    target. With ``exhaustive=False`` it bisects the grid for the lowest threshold
    within the target (the error falls as the threshold rises) and then looks at the
    ``neighbours`` on each side of it, where the curves are not quite monotonic: about a
    fifth of a full sweep's replays, which are most of a comparison's time."""

    def __init__(self, stream: Stream, embedder: Embedder, thresholds: Sequence[float], *,
                 exhaustive: bool = False, neighbours: int = 3,
                 on_run: Callable[[str, ReplayResult], None] | None = None) -> None:
        self.stream, self.embedder = stream, embedder
        self.grid = sorted(set(thresholds))
        self.exhaustive, self.neighbours, self.on_run = exhaustive, neighbours, on_run
        self.runs: dict[float, dict[str, Any]] = {}

    def run(self, threshold: float) -> dict[str, Any]:
        from .._cache import Cache

        got = self.runs.get(threshold)
        if got is None:
            # the baseline is the cosine alone (verifier=None): the structural
            # verifier's own figures are benchmarks/verifier_eval.py's
            name = f"static {threshold}"
            r = replay_stream(Cache(type="faiss-semantic", embedder=self.embedder,
                                    verifier=None, similarity_threshold=threshold),
                              self.stream, name)
            got = self.runs[threshold] = r.as_dict()
            if self.on_run is not None:
                self.on_run(name, r)
        return got

    def best(self, target: float) -> float | None:
        if self.exhaustive:
            for th in self.grid:
                self.run(th)
        else:
            lo, hi = 0, len(self.grid)  # the first index within target is in [lo, hi]
            while lo < hi:
                mid = (lo + hi) // 2
                if self.run(self.grid[mid])["error_rate"] <= target:
                    hi = mid
                else:
                    lo = mid + 1
            for i in range(max(0, lo - self.neighbours),
                           min(len(self.grid), lo + self.neighbours + 1)):
                self.run(self.grid[i])
        ok = [th for th, r in self.runs.items() if r["error_rate"] <= target]
        return max(ok, key=lambda th: (self.runs[th]["hit_rate"], -th)) if ok else None


def _span(xs: Sequence[float]) -> dict[str, Any]:
    a = np.asarray(xs, float)
    return {"mean": float(a.mean()), "min": float(a.min()), "max": float(a.max()),
            "per_seed": [float(x) for x in a]}


def _ratio(a: float, b: float) -> float:
    return a / b if b else (math.inf if a else 1.0)


@dataclass
class SplitComparison:
    targets: tuple[float, ...]
    thresholds: tuple[float, ...]
    truth: str
    #: one dict per seed: the split, the static runs on each part, the tuned and
    #: hindsight thresholds per target, the verified runs, the hand-built table's runs
    seeds: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for target in self.targets:
            key = str(target)
            tuned_h, best_h, ver_h, explored, ratio_best, ratio_tuned = [], [], [], [], [], []
            tuned_err, best_err, ver_err = [], [], []
            wrong = judged = 0
            over = False
            for s in self.seeds:
                tuned = s["tuned"][key]
                best = s["hindsight"][key]
                th = s["test_static"].get(str(tuned)) if tuned is not None else None
                bh = s["test_static"].get(str(best)) if best is not None else None
                v = s["verified"][key]
                tuned_h.append(th["hit_rate"] if th else 0.0)
                tuned_err.append(th["error_rate"] if th else 0.0)
                best_h.append(bh["hit_rate"] if bh else 0.0)
                best_err.append(bh["error_rate"] if bh else 0.0)
                ver_h.append(v["hit_rate"])
                ver_err.append(v["error_rate"])
                explored.append(v["explored"] / v["queries"])
                ratio_best.append(_ratio(v["hit_rate"], best_h[-1]))
                ratio_tuned.append(_ratio(v["hit_rate"], tuned_h[-1]))
                wrong += v["wrong"]
                judged += v["queries"] - v["unlabeled_hits"]
                over = over or v["max_running_error_low95_after_warmup"] > target \
                    or v["error_ci95"][0] > target
            ci = list(wilson_interval(wrong / judged if judged else 0.0, judged))
            row: dict[str, Any] = {
                "target": target,
                "tuned_static_threshold": [s["tuned"][key] for s in self.seeds],
                "tuned_static_hit_rate": _span(tuned_h),
                "tuned_static_error": _span(tuned_err),
                "hindsight_static_threshold": [s["hindsight"][key] for s in self.seeds],
                "hindsight_static_hit_rate": _span(best_h),
                "hindsight_static_error": _span(best_err),
                "verified_hit_rate": _span(ver_h),
                "verified_error": _span(ver_err),
                "verified_error_pooled": wrong / judged if judged else 0.0,
                "verified_error_ci95": ci,
                "verified_significantly_over_target": over,
                "verified_explored_share": _span(explored),
                "hits_vs_hindsight_static": _span(ratio_best),
                "hits_vs_tuned_static": _span(ratio_tuned),
            }
            row["done_when"] = {
                "at_least_hindsight_static": row["hits_vs_hindsight_static"]["mean"] >= 1.0,
                "at_least_1.3x_tuned_static": row["hits_vs_tuned_static"]["mean"] >= 1.3,
                "explored_at_most_20pct": row["verified_explored_share"]["max"] <= 0.2,
                "not_significantly_over": not over,
            }
            out.append(row)
        return out

    def hard_rows(self) -> list[dict[str, Any]]:
        """The hand-built table: reversed / negated questions served their twin's answer
        (of ``hard`` per stream), by the tuned static threshold and the verified policy."""
        out = []
        for target in self.targets:
            key = str(target)
            st = [s["hard"]["static"][key]["wrong_by_kind"].get("reversed", 0)
                  for s in self.seeds if s.get("hard")]
            vt = [s["hard"]["verified"][key]["wrong_by_kind"].get("reversed", 0)
                  for s in self.seeds if s.get("hard")]
            if st:
                out.append({"target": target, "pairs": self.seeds[0]["hard"]["pairs"],
                            "tuned_static_reversed_served": _span(st),
                            "verified_reversed_served": _span(vt)})
        return out

    def summary(self) -> str:
        def f(span: dict[str, Any], fmt: str = ".3f") -> str:
            return f"{span['mean']:{fmt}} [{span['min']:{fmt}}, {span['max']:{fmt}}]"

        s0 = self.seeds[0]["split"] if self.seeds else {}
        lines = [
            f"{len(self.seeds)} seed(s), truth {self.truth}: pairs split by question group "
            f"(tune {s0.get('tune_pairs', '?')} / test {s0.get('test_pairs', '?')} pairs on "
            f"seed 0; test stream {s0.get('test_queries', '?')} queries); mean [min, max] "
            "over seeds, all on the test part",
            "",
            "target  tuned static hits       hindsight static hits   verified hits          "
            "vs hindsight        vs tuned            verified error [95% CI]    explored"
            "              over?",
        ]
        for r in self.rows():
            ci = r["verified_error_ci95"]
            lines.append(
                f"{r['target']:<7} {f(r['tuned_static_hit_rate'])}  "
                f"{f(r['hindsight_static_hit_rate'])}  {f(r['verified_hit_rate'])}  "
                f"{f(r['hits_vs_hindsight_static'], '.2f')}  "
                f"{f(r['hits_vs_tuned_static'], '.2f')}  "
                f"{r['verified_error_pooled']:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]  "
                f"{f(r['verified_explored_share'])}  "
                f"{'YES' if r['verified_significantly_over_target'] else 'no'}")
        hard = self.hard_rows()
        if hard:
            lines += ["", f"hand-built pairs (their own streams: the test stream plus "
                          f"{hard[0]['pairs']} reversed / negated pairs): reversed "
                          "questions served their twin's answer, mean [min, max]"]
            for r in hard:
                lines.append(f"target {r['target']:<6} tuned static "
                             f"{f(r['tuned_static_reversed_served'], '.1f')}   verified "
                             f"{f(r['verified_reversed_served'], '.1f')}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.rows(), "hand_built": self.hard_rows(), "seeds": self.seeds,
                "truth": self.truth, "targets": list(self.targets),
                "thresholds": list(self.thresholds), "policy_options": self.options,
                "definitions": {
                    "split": "labeled pairs split by question group (connected "
                             "components): no question on both sides",
                    "tuned_static": "the threshold with the most hits at error <= target "
                                    "on the tuning stream, replayed on the test stream",
                    "hindsight_static": "the threshold with the most hits at error <= "
                                        "target on the test stream itself",
                    "error_rate": "wrong answers / judged queries",
                    "explored_share": "queries explored or audited (an LLM call and a "
                                      "judge call) / queries",
                    "significantly_over": "the 95% interval of a test stream's error, "
                                          "whole or running after the warm-up, wholly "
                                          "above the target", "warmup": WARMUP}}

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        return write_json(path, self.to_dict(), indent=1)


def compare_split(
    pairs: Pairs,
    embedder: Embedder,
    *,
    targets: Sequence[float],
    thresholds: Sequence[float],
    seeds: int = 3,
    floor: float = 0.7,
    min_group: int = 3,
    test_fraction: float = 0.5,
    policy_options: dict[str, Any] | None = None,
    truth: str = "labeled",
    hard_pairs: bool = True,
    exhaustive: bool = False,
    cache_options: dict[str, Any] | None = None,
    on_run: Callable[[str, int, ReplayResult], None] | None = None,
) -> SplitComparison:
    """Per seed: split ``pairs`` by question group, tune the static threshold on the
    tuning stream, and replay the tuned and hindsight-best static thresholds and the
    verified policy at each target on the test stream (see the module docstring).

    ``cache_options`` go to the verified policy's ``Cache`` (``verifier=None``: the
    cosine alone; the default is the structural verifier, as for ``target_error_rate=``);
    ``embedder`` should answer from precomputed vectors (``PrecomputedEmbedder``)."""
    from .._cache import Cache
    from ..policies.verified import VerifiedPolicy

    targets = tuple(check_rate(t) for t in targets)
    if not targets:
        raise InvalidRequestError("give at least one target error rate")
    if seeds < 1:
        raise InvalidRequestError("seeds must be at least 1")
    if truth not in TRUTHS:
        raise InvalidRequestError(f"truth must be one of {', '.join(TRUTHS)}; got {truth!r}")
    check_splittable(pairs)
    out = SplitComparison(targets, tuple(thresholds), truth, options=dict(policy_options or {}))
    hard = order_sensitive_pairs() if hard_pairs else []

    def verified(stream: Stream, target: float, seed: int, name: str) -> dict[str, Any]:
        policy = VerifiedPolicy(target, seed=seed, **(policy_options or {}))
        # the verifier Cache(target_error_rate=) has by default, unless told otherwise
        kw = {"similarity_threshold": floor, "verifier": "structural", **(cache_options or {})}
        r = replay_stream(Cache(type="faiss-semantic", embedder=embedder,
                                judge=stream.judge, policy=policy, **kw), stream, name)
        if on_run:
            on_run(name, seed, r)
        d = r.as_dict()
        d["max_running_error_after_warmup"], d["max_running_error_low95_after_warmup"] \
            = running_error(r.trace, WARMUP)
        d["error_ci95"] = list(wilson_interval(r.error_rate, r.judged))
        d["policy_stats"] = policy.stats()
        return d

    for seed in range(seeds):
        sp = group_split(pairs, test_fraction=test_fraction, seed=seed)
        tune = _stream(sp.tune, seed=seed, truth=truth, min_group=min_group)
        test = _stream(sp.test, seed=seed, truth=truth, min_group=min_group)

        def note(part: str, seed: int = seed) -> Callable[[str, ReplayResult], None]:
            return lambda name, r: on_run(f"{part} {name}", seed, r) if on_run else None

        tune_sweep = StaticSweep(tune, embedder, thresholds, exhaustive=exhaustive,
                                 on_run=note("tune"))
        test_sweep = StaticSweep(test, embedder, thresholds, exhaustive=exhaustive,
                                 on_run=note("test"))
        tuned = {str(t): tune_sweep.best(t) for t in targets}
        hindsight = {str(t): test_sweep.best(t) for t in targets}
        for th in tuned.values():
            if th is not None:
                test_sweep.run(th)
        runs = {str(t): verified(test, t, seed, f"test verified {t}") for t in targets}
        entry: dict[str, Any] = {
            "seed": seed,
            "split": {"tune_pairs": len(sp.tune), "test_pairs": len(sp.test),
                      "tune_components": sp.tune_groups, "test_components": sp.test_groups,
                      "tune_queries": len(tune), "test_queries": len(test)},
            "tuned": tuned, "hindsight": hindsight,
            "tune_static": {str(k): v for k, v in sorted(tune_sweep.runs.items())},
            "test_static": {str(k): v for k, v in sorted(test_sweep.runs.items())},
            "verified": runs,
        }
        if hard:
            mixed = _stream(sp.test, seed=seed, truth=truth, min_group=min_group, hard=hard)
            hs: dict[str, Any] = {}
            hv: dict[str, Any] = {}
            for t in targets:
                th = tuned[str(t)]
                if th is not None:
                    r = replay_stream(Cache(type="faiss-semantic", embedder=embedder,
                                            verifier=None, similarity_threshold=th),
                                      mixed, f"hand-built static {th}")
                    hs[str(t)] = {"threshold": th, **r.as_dict()}
                else:
                    hs[str(t)] = {"threshold": None, "wrong_by_kind": {}}
                hv[str(t)] = verified(mixed, t, seed, f"hand-built verified {t}")
            entry["hard"] = {"pairs": len(hard), "static": hs, "verified": hv}
        out.seeds.append(entry)
    return out
