"""PNG plots of runs, sweeps and OPE results, written atomically (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from recsim_causal.io import atomic_path


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    plt = _figure()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def regret_plot(steps: np.ndarray, cumulative_regret: np.ndarray, path: str | Path, title: str) -> Path:
    """Cumulative regret over steps (user decisions)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, cumulative_regret, lw=2)
    ax.set_xlabel("steps (user decisions)")
    ax.set_ylabel("cumulative regret")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def errorbar_plot(labels: Sequence[str], means: Sequence[float], lows: Sequence[float], highs: Sequence[float],
                  path: str | Path, *, xlabel: str, title: str, truth: Sequence[float] | None = None) -> Path:
    """Horizontal bars with error bars (leaderboards; OPE estimates with CIs against the truth)."""
    plt = _figure()
    means, lows, highs = (np.asarray(v, float) for v in (means, lows, highs))
    y = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.5))
    ax.errorbar(means, y, xerr=[means - lows, highs - means], fmt="o", capsize=4, label="estimate (95% CI)")
    if truth is not None:
        ax.scatter(truth, y, marker="|", s=300, color="crimson", label="truth", zorder=3)
        ax.legend(loc="best", fontsize=8)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="x")
    return save_figure(fig, path)
