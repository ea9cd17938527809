"""PNG plots with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._errors import missing

if TYPE_CHECKING:
    from .pairs import PairsReport

__all__ = ["plot_pairs"]


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise missing("matplotlib", "eval", "plots") from exc
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_pairs(report: PairsReport, out_dir: Path, prefix: str = "") -> list[Path]:
    """``<prefix>threshold.png`` (precision, recall, F1, false-hit rate vs threshold) and
    ``<prefix>similarity_hist.png`` (positives' and negatives' similarities)."""
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    g = report.grid
    target = report.threshold_for_target
    title = f"{Path(report.source).name or 'pairs'} · {report.model}"

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(g.thresholds, g.precision, label="precision")
    ax.plot(g.thresholds, g.recall, label="recall")
    ax.plot(g.thresholds, g.f1, label="F1", linestyle="--")
    ax.plot(g.thresholds, g.false_hit_rate, label="false-hit rate", linestyle=":")
    ax.axhline(report.target_precision, color="grey", linewidth=0.7)
    if target is not None:
        ax.axvline(target, color="black", linewidth=0.8,
                   label=f"precision ≥ {report.target_precision} from {target:.3f}")
    ax.set_xlabel("similarity_threshold")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    p1 = out_dir / f"{prefix}threshold.png"
    fig.tight_layout()
    fig.savefig(p1, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    bins = np.linspace(min(0.0, float(report.similarities.min())), 1.0, 61)
    for lab, name in ((1, "positives"), (0, "negatives")):
        s = report.similarities[report.labels == lab]
        if len(s):
            ax.hist(s, bins=bins, alpha=0.55, label=f"{name} (n={len(s)})", density=True)
    if target is not None:
        ax.axvline(target, color="black", linewidth=0.8, label=f"threshold {target:.3f}")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    p2 = out_dir / f"{prefix}similarity_hist.png"
    fig.tight_layout()
    fig.savefig(p2, dpi=110)
    plt.close(fig)
    return [p1, p2]
