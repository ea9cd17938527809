"""``evaluate_pairs``: labeled pairs + an embedder -> how each threshold would behave.

The similarity of a pair is the cosine of the two texts' embeddings, exactly what the
cache compares against ``similarity_threshold`` (the query's vector against a stored
prompt's vector).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._registry import get_embedder
from ..embedders.base import Embedder
from ._data import Pairs
from ._embed import embed_texts
from ._metrics import DEFAULT_GRID, Sweep, roc_auc, sweep
from ._report import write_json

__all__ = ["FINE_GRID", "PairsReport", "evaluate_pairs", "pair_similarities"]

#: the grid a target precision is searched on (0.001 steps)
FINE_GRID = np.round(np.linspace(-1.0, 1.0, 2001), 3)
#: a threshold must serve at least this many pairs for its precision to count
MIN_HITS = 10


def pair_similarities(pairs: Pairs, embedder: Embedder | str | None = None, *,
                      batch_size: int = 256, cache_dir: str | os.PathLike[str] | None = None,
                      show_progress: bool | None = None) -> np.ndarray:
    """Cosine similarity of each pair, ``float64[len(pairs)]``."""
    emb = get_embedder(embedder)
    n = len(pairs)
    vecs = embed_texts(emb, pairs.queries + pairs.candidates, batch_size=batch_size,
                       cache_dir=cache_dir, show_progress=show_progress)
    # rows are unit vectors: the row-wise dot product is the cosine
    return np.einsum("ij,ij->i", vecs[:n], vecs[n:]).astype(np.float64).clip(-1.0, 1.0)


@dataclass
class PairsReport:
    """The result of a sweep; ``to_dict()`` is the JSON report, ``table()`` the text one."""

    source: str
    model: str
    similarities: np.ndarray
    labels: np.ndarray
    target_precision: float
    grid: Sweep
    fine: Sweep = field(repr=False)

    @property
    def auc(self) -> float:
        return roc_auc(self.similarities, self.labels)

    @property
    def best_f1(self) -> tuple[float, float]:
        return self.fine.best_f1()

    @property
    def threshold_for_target(self) -> float | None:
        return self.fine.threshold_for_precision(self.target_precision, MIN_HITS)

    def distribution(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, lab in (("positive", 1), ("negative", 0)):
            s = self.similarities[self.labels == lab]
            if len(s):
                q = np.quantile(s, [0.05, 0.25, 0.5, 0.75, 0.95])
                out[name] = {"n": len(s), "mean": round(float(s.mean()), 4),
                             **{f"p{p}": round(float(v), 4)
                                for p, v in zip((5, 25, 50, 75, 95), q)}}
        return out

    def to_dict(self) -> dict[str, Any]:
        t_best, f1_best = self.best_f1
        target = self.threshold_for_target
        return {
            "source": self.source,
            "model": self.model,
            "pairs": len(self.labels),
            "positives": int(self.labels.sum()),
            "negatives": int(len(self.labels) - self.labels.sum()),
            "roc_auc": None if np.isnan(self.auc) else round(self.auc, 4),
            "distribution": self.distribution(),
            "best_f1": {**self.fine.at(t_best), "f1": round(f1_best, 6)},
            "target_precision": self.target_precision,
            "threshold_for_target_precision": target,
            "at_target": None if target is None else self.fine.at(target),
            "grid": self.grid.rows(),
        }

    def table(self, step: float = 0.05, extra: tuple[float, ...] = ()) -> str:
        """The grid as a text table (every ``step``, plus the thresholds in ``extra``)."""
        t = self.grid.thresholds
        keep = np.isclose(np.round(t / step) * step, t) | np.isin(np.round(t, 3),
                                                                  np.round(extra, 3))
        lines = [(f"{'threshold':>9} {'precision':>9} {'recall':>7} {'F1':>6} "
                 f"{'false-hit':>9} {'TP':>7} {'FP':>7}")]
        for i in np.flatnonzero(keep):
            r = self.grid.row(int(i))

            def f(x: float | None, w: int) -> str:
                return f"{'-':>{w}}" if x is None else f"{x:>{w}.3f}"

            lines.append(f"{r['threshold']:>9.2f} {f(r['precision'], 9)} "
                         f"{f(r['recall'], 7)} {f(r['f1'], 6)} {f(r['false_hit_rate'], 9)} "
                         f"{r['tp']:>7} {r['fp']:>7}")
        return "\n".join(lines)

    def summary(self) -> str:
        d = self.to_dict()
        t_best, f1 = self.best_f1
        target = d["threshold_for_target_precision"]
        dist = d["distribution"]
        auc = "-" if d["roc_auc"] is None else d["roc_auc"]  # one class: no AUC
        lines = [(f"{d['source']}: {d['pairs']} pairs ({d['positives']} positive), model "
                 f"{d['model']}"),
                 f"ROC AUC {auc}"]
        for name in ("positive", "negative"):
            if name in dist:
                s = dist[name]
                lines.append(f"{name:>8} similarity: median {s['p50']:.3f} "
                             f"(p5 {s['p5']:.3f}, p95 {s['p95']:.3f})")
        b = d["best_f1"]

        def f3(x: float | None) -> str:  # None: nothing served, or no positives
            return "-" if x is None else f"{x:.3f}"

        lines.append(f"best F1 {f1:.3f} at threshold {t_best:.3f} (precision "
                     f"{f3(b['precision'])}, recall {f3(b['recall'])})")
        if target is None:
            lines.append(f"no threshold reaches precision {self.target_precision}")
        else:
            a = d["at_target"]
            fhr = a["false_hit_rate"]
            lines.append(f"precision >= {self.target_precision} from threshold {target:.3f} "
                         f"(recall {a['recall']:.3f}, false-hit rate "
                         f"{'-' if fhr is None else format(fhr, '.4f')})")
        return "\n".join(lines)

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        return write_json(path, self.to_dict())

    def plot(self, out_dir: str | os.PathLike[str], prefix: str = "") -> list[Path]:
        from ._plots import plot_pairs

        return plot_pairs(self, Path(out_dir), prefix)


def evaluate_pairs(pairs: Pairs, embedder: Embedder | str | None = None, *,
                   target_precision: float = 0.95, grid: np.ndarray | None = None,
                   batch_size: int = 256, cache_dir: str | os.PathLike[str] | None = None,
                   show_progress: bool | None = None,
                   similarities: np.ndarray | None = None) -> PairsReport:
    """Sweep thresholds over labeled pairs. Pass ``similarities`` to skip embedding."""
    emb = get_embedder(embedder)
    if similarities is None:
        similarities = pair_similarities(pairs, emb, batch_size=batch_size,
                                         cache_dir=cache_dir, show_progress=show_progress)
    g = DEFAULT_GRID if grid is None else np.asarray(grid, dtype=np.float64)
    return PairsReport(
        source=pairs.source, model=emb.model_id, similarities=similarities,
        labels=pairs.labels, target_precision=target_precision,
        grid=sweep(similarities, pairs.labels, g),
        fine=sweep(similarities, pairs.labels, FINE_GRID))
