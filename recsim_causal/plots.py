"""PNG plots of runs, sweeps and OPE results, written atomically (matplotlib, Agg backend).

Step axes use short tick labels (``50k``, ``1.5M``) and at most six ticks, so large step counts
never run together; titles name the env, the scm and the slate size (:func:`setting_title`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

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


def short_number(x: float, _pos: Any = None) -> str:
    """Tick label: 950, 12k, 100k, 1.5M, 2B."""
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def readable_axis(axis: Any, nbins: int = 6) -> None:
    """At most ``nbins`` ticks with short labels on a matplotlib axis (``ax.xaxis``)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axis.set_major_locator(MaxNLocator(nbins=nbins))
    axis.set_major_formatter(FuncFormatter(short_number))


def setting_title(env: str, scm: str, slate_size: int = 1) -> str:
    """``Bandit-v0 · scm=default · one item`` or ``... · slates of 5``."""
    env = str(env).rsplit("/", 1)[-1]
    return f"{env} · scm={scm} · " + ("one item" if int(slate_size) == 1 else f"slates of {int(slate_size)}")


def regret_plot(steps: np.ndarray, cumulative_regret: np.ndarray, path: str | Path, title: str,
                change_points: Sequence[int] = ()) -> Path:
    """Cumulative regret over steps (user decisions), short step labels; the world's change
    points (``scm.dynamics``) as dashed vertical lines."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, cumulative_regret, lw=2)
    for i, cp in enumerate(change_points):
        ax.axvline(cp, color="C3", ls="--", lw=1, alpha=0.7, label="change point" if i == 0 else None)
    if len(change_points):
        ax.legend(loc="upper left")
    ax.set_xlabel("steps (user decisions)")
    ax.set_ylabel("cumulative regret (lower is better)")
    readable_axis(ax.xaxis)
    readable_axis(ax.yaxis)
    ax.set_ylim(bottom=0)
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
    # The interval as a segment from its low to its high end: an interval need not contain its
    # point estimate (percentile bootstraps of ratio estimators, refitted DM), so no xerr.
    ok = np.isfinite(lows) & np.isfinite(highs)
    ax.hlines(y[ok], lows[ok], highs[ok], color="C0", lw=1.5)
    ax.plot(lows[ok], y[ok], "|", highs[ok], y[ok], "|", color="C0", ms=8)
    ax.plot(means, y, "o", color="C0", label="estimate (95% CI)")
    if truth is not None:
        ax.scatter(truth, y, marker="|", s=300, color="crimson", label="truth", zorder=3)
        ax.legend(loc="best", fontsize=8)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="x")
    return save_figure(fig, path)


def ope_plot(targets: Mapping[str, Mapping[str, Any]], path: str | Path, *, title: str) -> Path:
    """OPE results, one panel per target: each estimator's estimate with its interval, the truth
    as a vertical line, invalid intervals drawn hollow and grey and labelled "(invalid CI)", and
    estimators without an estimate named under the panel with the reason.

    ``targets``: ope.json's ``targets`` (per target ``truth`` and ``estimators``: ``estimate``,
    ``ci_low``, ``ci_high``, ``interval_valid``, ``invalid_reason``)."""
    return save_figure(ope_figure(targets, title=title), path)


def ope_figure(targets: Mapping[str, Mapping[str, Any]], *, title: str):
    """The figure of :func:`ope_plot` (not saved)."""
    plt = _figure()
    names = list(targets)
    ncols = min(len(names), 2) or 1
    nrows = -(-len(names) // ncols) or 1
    most = max((len(t.get("estimators") or {}) for t in targets.values()), default=1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, (0.34 * most + 1.9) * nrows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names):
        t = targets[name]
        shown, missing = [], []
        for est, e in (t.get("estimators") or {}).items():
            v = e.get("estimate")
            if v is None or not np.isfinite(v):
                missing.append(f"{est}: {e.get('invalid_reason') or e.get('reason') or 'no estimate'}")
            else:
                shown.append((est, e))
        for i, (est, e) in enumerate(shown):
            valid = e.get("interval_valid", True) is not False
            color = "C0" if valid else "0.55"
            lo, hi = e.get("ci_low"), e.get("ci_high")
            if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi):
                ax.hlines(i, lo, hi, color=color, lw=1.6)
                ax.plot([lo, hi], [i, i], "|", color=color, ms=7)
            ax.plot([e["estimate"]], [i], "o", color=color, mfc=color if valid else "white")
        ax.set_yticks(range(len(shown)), [est + ("" if e.get("interval_valid", True) is not False else " (invalid CI)")
                                          for est, e in shown], fontsize=8)
        ax.set_ylim(len(shown) - 0.5, -0.5)
        truth = t.get("truth")
        if truth is not None and np.isfinite(truth):
            ax.axvline(truth, color="crimson", lw=1.2, label=f"truth {truth:.3g}")
            ax.legend(fontsize=7, loc="lower right", framealpha=0.9)
        ax.set_title(f"target {name}", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
        readable_axis(ax.xaxis, nbins=5)
        ax.set_xlabel("policy value: estimate, 95% CI" + (f"\nnot shown: {'; '.join(missing)}" if missing else ""),
                      fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


MAX_ROWS = 30  # rows per leaderboard panel: a longer table continues in the next panel


def leaderboard_plot(panels: Mapping[str, list[tuple[str, dict]]], path: str | Path, *, metric: str,
                     better: str) -> Path:
    """One panel per setting (at most :data:`MAX_ROWS` rows each; a longer one continues in the
    next panel): each row's mean with its 95% CI over seeds (rows without an interval, a single
    seed, are drawn as open markers), best at the top.

    ``panels``: setting title -> [(row label, {mean, ci_low, ci_high}), ...] in rank order.
    """
    return save_figure(leaderboard_figure(panels, metric=metric, better=better), path)


def leaderboard_figure(panels: Mapping[str, list[tuple[str, dict]]], *, metric: str, better: str):
    """The figure of :func:`leaderboard_plot` (not saved)."""
    plt = _figure()
    chunks: list[tuple[str, list]] = []
    for title, rows in panels.items():
        for start in range(0, len(rows), MAX_ROWS):
            part = rows[start:start + MAX_ROWS]
            more = f" (rows {start + 1}-{start + len(part)} of {len(rows)})" if len(rows) > MAX_ROWS else ""
            chunks.append((title + more, part))
    heights = [0.32 * len(rows) + 1.4 for _, rows in chunks]
    width = 4 + 0.075 * max((len(label) for _, rows in chunks for label, _ in rows), default=10)
    fig, axes = plt.subplots(len(chunks), 1, figsize=(max(8.0, width), sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    arrow = {"lower": "lower is better ←", "higher": "higher is better →"}.get(better, better)
    for ax, (title, rows) in zip(axes[:, 0], chunks):
        y = np.arange(len(rows))
        for i, (_, m) in enumerate(rows):
            if m.get("ci_low") is None:
                ax.plot([m["mean"]], [i], "o", mfc="none", color="C0")
            else:
                ax.errorbar([m["mean"]], [i], xerr=[[m["mean"] - m["ci_low"]], [m["ci_high"] - m["mean"]]],
                            fmt="o", capsize=4, color="C0")
        ax.set_yticks(y, [label for label, _ in rows], fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="x")
        readable_axis(ax.xaxis)
        ax.set_xlabel(f"{metric}: mean, 95% CI over seeds ({arrow})", fontsize=9)
    fig.tight_layout()
    return fig


def overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of visible texts of ``fig`` whose drawn bounding boxes overlap (tick labels,
    axis labels, titles), measured with matplotlib's renderer."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_window_extent"))
    texts = [t for t in dict((id(t), t) for t in found).values()  # an artist can be found twice
             if t.get_visible() and str(t.get_text()).strip()]
    boxes, seen = [], set()
    for t in texts:  # one text drawn by two artists (a legend's) counts once
        box = t.get_window_extent(renderer)
        key = (t.get_text(), round(box.x0), round(box.y0), round(box.x1), round(box.y1))
        if key not in seen:
            seen.add(key)
            boxes.append((t.get_text(), box))
    out = []
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i][1], boxes[j][1]
            if a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5:
                out.append((boxes[i][0], boxes[j][0]))
    return out


def curves_plot(curves: list[dict], path: str | Path) -> Path:
    """Per setting (a row of panels): mean cumulative regret and mean reward over steps per
    config, with a 95% band over seeds. ``curves``: the entries of ``report.collect_curves``."""
    plt = _figure()
    settings: dict[str, list[dict]] = {}
    for c in curves:
        settings.setdefault(c["setting"], []).append(c)
    colors = {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(c["label"] for c in curves))}
    fig, axes = plt.subplots(len(settings), 2, figsize=(12, 3.8 * len(settings)), squeeze=False)
    for row, (title, entries) in zip(axes, settings.items()):
        for ax, key, ylabel in ((row[0], "cumulative_regret", "cumulative regret (lower is better)"),
                                (row[1], "mean_reward", "mean reward so far (higher is better)")):
            for e in entries:
                if key not in e:
                    continue
                x, color = np.asarray(e["step"]), colors[e["label"]]  # one colour per config in every panel
                label = f"{e['label']} ({e['n_seeds']} seed{'s' if e['n_seeds'] > 1 else ''})"
                ax.plot(x, e[key]["mean"], color=color, lw=1.8, label=label)
                if e["n_seeds"] > 1:
                    ax.fill_between(x, e[key]["low"], e[key]["high"], color=color, alpha=0.2, lw=0)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("steps (user decisions)")
            ax.set_ylabel(ylabel, fontsize=9)
            readable_axis(ax.xaxis)
            readable_axis(ax.yaxis)
            ax.grid(alpha=0.3)
        row[0].set_ylim(bottom=0)
        row[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("mean over seeds, band: 95% CI", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
