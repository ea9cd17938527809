"""Static thresholds against the verified policy on labeled query streams.

The in-sample comparison, kept for its results files
(``semcache eval replay PAIRS --target-error-rate 0.01 0.02 0.05 --in-sample``,
``benchmarks/verified_replay.py --in-sample``; the honest one, tuned and tested apart,
is ``semcache.eval.split_replay``): build query streams from labeled pairs (paraphrase
groups joined through shared questions, their labeled negatives, and hand-built
order-sensitive and negation pairs: ``semcache.eval.streams``), replay each stream
through real caches, one per static threshold of a sweep and one per target with the
labels as the verified policy's judge, and compare them:

* the *error rate* is the share of judged queries that got a wrong answer (vCache's
  definition, what ``target_error_rate`` bounds); hits between two classes the labels
  never compared are counted apart (``unlabeled``) and left out of both rates, unless
  ``truth="strict"``, where every answer of another class is wrong (and the verified
  policy's label judge says so too);
* the *best static threshold* for a target is the one with the most hits whose error
  over the whole stream is at or below the target: chosen with hindsight, on the very
  stream it is scored on, which no deployment can do;
* the verified policy's error is reported over the whole stream, as its running
  (cumulative) maximum after a warm-up, and over the second half alone, with 95%
  intervals; ``explored`` counts the LLM calls it made instead of serving a candidate
  it was not sure of.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._config import check_rate
from .._errors import InvalidRequestError
from ..embedders.base import Embedder
from ..policies._stats import wilson_interval
from ._report import write_json
from .replay import ReplayResult, replay_stream, running_error
from .streams import TRUTHS, Stream, build_stream, groups_from_pairs, order_sensitive_pairs

__all__ = ["DEFAULT_TARGETS", "DEFAULT_THRESHOLDS", "PolicyComparison", "compare_policies"]

DEFAULT_TARGETS = (0.01, 0.02, 0.05)
DEFAULT_THRESHOLDS = tuple(round(0.5 + 0.01 * i, 2) for i in range(50))  # 0.50 .. 0.99
#: share of each stream treated as warm-up when reporting the verified policy's error
WARMUP = 0.2


def _wilson(wrong: int, n: int) -> list[float]:
    return list(wilson_interval(wrong / n if n else 0.0, n))


@dataclass
class PolicyComparison:
    targets: tuple[float, ...]
    thresholds: tuple[float, ...]
    #: run name ("static 0.85", "verified 0.02") -> one result dict per stream
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: run name -> per-query traces (1 right hit, -1 wrong, 0 miss, 2 unlabeled): every
    #: verified run, and the static runs of the first stream (when not reused)
    traces: dict[str, list[list[int]]] = field(default_factory=dict)
    stream: dict[str, Any] = field(default_factory=dict)

    def _mean(self, name: str, key: str) -> float:
        return float(np.mean([r[key] for r in self.runs[name]]))

    def _kind(self, name: str, kind: str) -> float:
        return float(np.mean([r.get("wrong_by_kind", {}).get(kind, 0)
                              for r in self.runs[name]]))

    def best_static(self, target: float) -> str | None:
        """The static run with the most hits whose mean error is at or below target."""
        ok = [f"static {t}" for t in self.thresholds
              if f"static {t}" in self.runs and self._mean(f"static {t}", "error_rate") <= target]
        return max(ok, key=lambda n: self._mean(n, "hit_rate")) if ok else None

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for target in self.targets:
            v = f"verified {target}"
            runs = self.runs[v]
            best = self.best_static(target)
            sh = self._mean(best, "hit_rate") if best else 0.0
            wrong = sum(r["wrong"] for r in runs)
            judged = sum(r["queries"] - r["unlabeled_hits"] for r in runs)
            late = [r["second_half"] for r in runs]
            lw, lj = sum(x["wrong"] for x in late), sum(x["queries"] for x in late)
            vh = self._mean(v, "hit_rate")
            out.append({
                "target": target,
                "best_static_threshold": float(best.split()[1]) if best else None,
                "static_hit_rate": sh,
                "static_error": self._mean(best, "error_rate") if best else None,
                "verified_hit_rate": vh,
                "verified_error": wrong / judged if judged else 0.0,
                "verified_error_ci95": _wilson(wrong, judged),
                "verified_error_per_stream": [r["error_rate"] for r in runs],
                "verified_max_running_error_after_warmup": max(
                    r["max_running_error_after_warmup"] for r in runs),
                "verified_significantly_over_target": any(
                    r["max_running_error_low95_after_warmup"] > target for r in runs),
                "verified_error_second_half": lw / lj if lj else 0.0,
                "verified_error_second_half_ci95": _wilson(lw, lj),
                "verified_hit_error_rate": self._mean(v, "hit_error_rate"),
                "verified_explored": self._mean(v, "explored"),
                "verified_explored_share": self._mean(v, "explored") / self._mean(v, "queries"),
                "hit_ratio": vh / sh if sh else math.inf,
                # hand-built reversed / negated questions answered with their twin's
                # answer (mean per stream, of stream["hard"])
                "static_reversed_wrong": self._kind(best, "reversed") if best else None,
                "verified_reversed_wrong": self._kind(v, "reversed"),
            })
        return out

    def summary(self) -> str:
        n = self.stream.get("seeds", 1)
        lines = [
            f"{self.stream.get('queries', '?')} queries per stream, {n} stream(s): "
            f"{self.stream.get('groups', '?')} paraphrase groups, "
            f"{self.stream.get('negatives', '?')} labeled negatives, "
            f"{self.stream.get('hard', 0)} order-sensitive pairs; "
            + ("every answer of another class counts as wrong (--truth strict)"
               if self.stream.get("truth") == "strict" else
               "hits between classes the labels never compared are left out"),
            "",
            "target  best static (hit rate, error)   verified: hit rate  error [95% CI]"
            "          max after warm-up  2nd half  explored  hits vs static",
            "(max after warm-up: the highest running error after the first "
            f"{WARMUP:.0%} of a stream; * when its 95% interval was ever wholly above "
            "the target)",
        ]
        for r in self.rows():
            best = ("none" if r["best_static_threshold"] is None else
                    f"{r['best_static_threshold']:.2f} ({r['static_hit_rate']:.3f}, "
                    f"{r['static_error']:.4f})")
            ci = r["verified_error_ci95"]
            ratio = "inf" if math.isinf(r["hit_ratio"]) else f"{r['hit_ratio']:.2f}x"
            lines.append(
                f"{r['target']:<7} {best:<32} {r['verified_hit_rate']:.3f}  "
                f"{r['verified_error']:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]  "
                f"{r['verified_max_running_error_after_warmup']:.4f}"
                f"{'*' if r['verified_significantly_over_target'] else ' '}            "
                f"{r['verified_error_second_half']:.4f}    "
                f"{r['verified_explored']:>7.0f}  {ratio}")
        hard = self.stream.get("hard", 0)
        if hard:
            lines.append("")
            lines.append(f"reversed / negated questions served their twin's answer (of {hard}"
                         ", mean per stream): " + "; ".join(
                             f"target {r['target']:g}: verified {r['verified_reversed_wrong']:.1f}"
                             + (f", static {r['best_static_threshold']:.2f} "
                                f"{r['static_reversed_wrong']:.1f}"
                                if r["static_reversed_wrong"] is not None else "")
                             for r in self.rows()))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.rows(), "runs": self.runs, "stream": self.stream,
                "definitions": {
                    "error_rate": "wrong answers / judged queries (misses are answered "
                                  "by the LLM; unlabeled hits are left out)",
                    "truth": "labeled: a hit on another class is wrong when the labels "
                             "say so, unlabeled otherwise; strict: always wrong",
                    "best_static": "most hits with mean error <= target, chosen with "
                                   "hindsight on the same streams",
                    "warmup": WARMUP}}

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        return write_json(path, self.to_dict(), indent=1)

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Cumulative hit rate and error rate over the first stream, verified runs
        against the best static threshold for each target."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = Path(path)
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        def curves(trace: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            t = np.asarray(trace)
            n = np.maximum(np.cumsum(t != 2), 1)
            return (np.arange(1, len(t) + 1), np.cumsum((t == 1) | (t == -1)) / n,
                    np.cumsum(t == -1) / n)

        for i, target in enumerate(self.targets):
            color = colors[i % len(colors)]
            x, hit, err = curves(self.traces[f"verified {target}"][0])
            a1.plot(x, hit, color=color, label=f"verified, target {target:g}")
            a2.plot(x, err, color=color, label=f"verified, target {target:g}")
            a2.axhline(target, ls=":", lw=0.8, color=color)
            best = self.best_static(target)
            if best and best in self.traces:
                x, hit, err = curves(self.traces[best][0])
                a1.plot(x, hit, ls="--", lw=0.9, color=color, label=best)
                a2.plot(x, err, ls="--", lw=0.9, color=color, label=best)
            elif best:
                a1.axhline(self._mean(best, "hit_rate"), ls="--", lw=0.8, color=color,
                           label=f"{best} (mean over streams)")
        a1.set(title="cumulative hit rate, first stream (dashed: best static threshold)",
               xlabel="queries", ylim=(0, 1))
        a2.set(title="cumulative error rate (wrong answers / queries; dotted: targets)",
               xlabel="queries", ylim=(0, max(self.targets) * 1.6))
        a1.legend(fontsize=8, loc="lower right")
        a2.legend(fontsize=8, loc="upper right")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def compare_policies(
    pairs: Iterable[tuple[str, str, int]],
    embedder: Embedder,
    *,
    targets: Sequence[float] = DEFAULT_TARGETS,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    seeds: int = 1,
    floor: float = 0.7,
    hard_pairs: bool = True,
    min_group: int = 3,
    policy_options: dict[str, Any] | None = None,
    truth: str = "labeled",
    static_runs: dict[str, list[dict[str, Any]]] | None = None,
    on_run: Callable[[str, int, ReplayResult], None] | None = None,
) -> PolicyComparison:
    """Replay ``seeds`` shuffles of the stream built from ``pairs`` through a
    ``faiss-semantic`` cache per static threshold and per verified target.

    ``embedder`` should answer from precomputed vectors (``PrecomputedEmbedder``):
    the replays then cost the cache's own work only. ``static_runs`` reuses the static
    sweep of an earlier comparison on the same streams (it does not depend on the
    verified policy; only from a comparison with the same ``truth``).

    ``truth``: ``"labeled"`` (a hit on another class is wrong only when the labels say
    so, unlabeled otherwise) or ``"strict"`` (always wrong)."""
    from .._cache import Cache
    from ..policies.verified import VerifiedPolicy

    if not targets:
        raise InvalidRequestError("give at least one target error rate")
    targets = [check_rate(t) for t in targets]
    if seeds < 1:
        raise InvalidRequestError("seeds must be at least 1")
    if truth not in TRUTHS:
        raise InvalidRequestError(f"truth must be one of {', '.join(TRUTHS)}; got {truth!r}")
    groups, negatives = groups_from_pairs(pairs, min_size=min_group)
    if not groups:
        raise InvalidRequestError(
            f"no paraphrase group of {min_group} or more questions: the pairs must share "
            "questions (as Quora's do) for a stream to ask one question several ways")
    hard = order_sensitive_pairs() if hard_pairs else []
    out = PolicyComparison(tuple(targets), tuple(thresholds))
    reuse = static_runs or {}
    for seed in range(seeds):
        stream: Stream = build_stream(groups, negatives, hard_pairs=hard, seed=seed,
                                      truth=truth)
        out.stream = {"groups": len(groups), "questions": sum(map(len, groups)),
                      "negatives": len(negatives), "hard": len(hard),
                      "queries": len(stream), "seeds": seeds, "truth": truth}
        for th in thresholds:
            name = f"static {th}"
            if name in reuse and len(reuse[name]) > seed:
                out.runs.setdefault(name, []).append(reuse[name][seed])
                continue
            # the static baseline is a sweep of cosine thresholds (verifier=None): the
            # structural verifier's own figures are benchmarks/verifier_eval.py's
            r = replay_stream(Cache(type="faiss-semantic", embedder=embedder, verifier=None,
                                    similarity_threshold=th), stream, name)
            out.runs.setdefault(name, []).append(r.as_dict())
            if seed == 0:
                out.traces[name] = [r.trace]
            if on_run:
                on_run(name, seed, r)
        for target in targets:
            name = f"verified {target}"
            policy = VerifiedPolicy(target, seed=seed, **(policy_options or {}))
            r = replay_stream(Cache(type="faiss-semantic", embedder=embedder,
                                    judge=stream.judge, policy=policy,
                                    similarity_threshold=floor), stream, name)
            d = r.as_dict()
            d["max_running_error_after_warmup"], d["max_running_error_low95_after_warmup"] \
                = running_error(r.trace, WARMUP)
            d["policy_stats"] = policy.stats()
            out.runs.setdefault(name, []).append(d)
            out.traces.setdefault(name, []).append(r.trace)
            if on_run:
                on_run(name, seed, r)
    return out
