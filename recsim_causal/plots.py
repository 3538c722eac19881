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
    return save_figure(regret_figure(steps, cumulative_regret, title, change_points), path)


def regret_figure(steps: np.ndarray, cumulative_regret: np.ndarray, title: str, change_points: Sequence[int] = ()):
    """The figure of :func:`regret_plot` (not saved)."""
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
    return fig


def errorbar_plot(labels: Sequence[str], means: Sequence[float], lows: Sequence[float], highs: Sequence[float],
                  path: str | Path, *, xlabel: str, title: str, truth: Sequence[float] | None = None) -> Path:
    """Horizontal bars with error bars (OPE estimates with CIs against the truth, offline learners)."""
    return save_figure(errorbar_figure(labels, means, lows, highs, xlabel=xlabel, title=title, truth=truth), path)


def errorbar_figure(labels: Sequence[str], means: Sequence[float], lows: Sequence[float], highs: Sequence[float], *,
                    xlabel: str, title: str, truth: Sequence[float] | None = None):
    """The figure of :func:`errorbar_plot` (not saved)."""
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
    return fig


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
    undrawn = {id(label) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis) for tick in _ticks_out_of_view(axis)
               for label in (tick.label1, tick.label2)}
    texts = [t for t in dict((id(t), t) for t in found).values()  # an artist can be found twice
             if t.get_visible() and str(t.get_text()).strip() and id(t) not in undrawn]
    boxes, seen = [], set()
    for t in texts:  # one text drawn by two artists (a legend's) counts once
        box = t.get_window_extent(renderer)
        if not np.isfinite([box.x0, box.y0, box.x1, box.y1]).all():
            raise AssertionError(f"text {t.get_text()!r} has no finite bounding box")
        key = (t.get_text(), round(box.x0), round(box.y0), round(box.x1), round(box.y1))
        if key not in seen:
            seen.add(key)
            boxes.append((t.get_text(), box))
    if not boxes:
        return []
    x0, y0, x1, y1 = np.array([[b.x0, b.y0, b.x1, b.y1] for _, b in boxes]).T[:, :, None]
    hit = (x0 < x1.T - 0.5) & (x0.T < x1 - 0.5) & (y0 < y1.T - 0.5) & (y0.T < y1 - 0.5)  # more than half a pixel
    return [(boxes[i][0], boxes[j][0]) for i, j in zip(*np.nonzero(np.triu(hit, 1)))]


def _ticks_out_of_view(axis) -> list:
    """The ticks of a matplotlib axis that lie outside its view limits: matplotlib places them
    (a locator may step past the data) but never draws them or their labels."""
    lo, hi = sorted(axis.get_view_interval())
    slack = 1e-9 * max(abs(hi - lo), 1e-300)
    ticks = axis.get_major_ticks() + axis.get_minor_ticks()
    return [t for t in ticks if not (lo - slack <= t.get_loc() <= hi + slack)] if np.isfinite([lo, hi]).all() else []


def curves_plot(curves: list[dict], path: str | Path) -> Path:
    """Per setting (a row of panels): mean cumulative regret and mean reward over steps per
    config, with a 95% band over seeds. ``curves``: the entries of ``report.collect_curves``."""
    return save_figure(curves_figure(curves), path)


def curves_figure(curves: list[dict]):
    """The figure of :func:`curves_plot` (not saved)."""
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
    return fig


def heatmap_plot(panels: Mapping[str, tuple[Sequence[str], Sequence[str], Any]], path: str | Path, *, metric: str,
                 better: str | None) -> Path:
    """Estimator x config heatmaps of an OPE or coverage sweep, one panel per setting (and
    interval method): :func:`heatmap_figure`, saved."""
    return save_figure(heatmap_figure(panels, metric=metric, better=better), path)


def heatmap_figure(panels: Mapping[str, tuple[Sequence[str], Sequence[str], Any]], *, metric: str,
                   better: str | None):
    """One heatmap per panel: a row per config (at most :data:`MAX_ROWS`; a longer panel
    continues in the next), a column per estimator, each cell's value written in it to 3
    significant digits; a cell without a value is grey and says "n/a".

    ``panels``: title -> (row labels, column labels, values of shape (rows, columns), NaN where
    missing). ``better``: "lower" shades large values dark (errors, widths); "closer to 0.95"
    (coverage) centres a diverging scale on 0.95, under-coverage red, over-coverage blue.
    """
    plt = _figure()
    from matplotlib.colors import TwoSlopeNorm

    chunks = []
    for title, (rows, cols, values) in panels.items():
        values = np.asarray(values, float).reshape(len(rows), len(cols))
        for start in range(0, len(rows), MAX_ROWS):
            more = f" (rows {start + 1}-{min(start + MAX_ROWS, len(rows))} of {len(rows)})" if len(rows) > MAX_ROWS else ""
            chunks.append((title + more, list(rows[start:start + MAX_ROWS]), list(cols),
                           values[start:start + MAX_ROWS]))
    target = None
    if better and better.startswith("closer to "):
        target = float(better.removeprefix("closer to "))
    finite = np.concatenate([c[3][np.isfinite(c[3])] for c in chunks]) if chunks else np.array([])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if target is not None:
        norm, cmap = TwoSlopeNorm(vcenter=target, vmin=min(lo, target - 1e-6), vmax=max(hi, target + 1e-6)), "RdBu"
    else:
        norm, cmap = None, "viridis_r" if better == "higher" else "viridis"
    longest_row = max((len(r) for c in chunks for r in c[1]), default=10)
    longest_col = max((len(x) for c in chunks for x in c[2]), default=4)
    longest_title = max((len(line) for c in chunks for line in c[0].splitlines()), default=10)
    n_cols = max((len(c[2]) for c in chunks), default=1)
    cell_w = 0.62 if longest_col > 6 else max(0.62, 0.075 * longest_col + 0.1)
    width = max(1.5 + 0.07 * longest_row + cell_w * n_cols, 0.075 * longest_title + 1.5)
    heights = [0.3 * len(c[1]) + 1.4 + 0.07 * longest_col for c in chunks]
    fig, axes = plt.subplots(len(chunks), 1, figsize=(width, sum(heights)), squeeze=False, layout="constrained",
                             gridspec_kw={"height_ratios": heights})
    from recsim_causal.results import fmt

    arrow = {"lower": "lower is better", "higher": "higher is better"}.get(better or "", better or "")
    for ax, (title, rows, cols, values) in zip(axes[:, 0], chunks):
        shown = np.ma.masked_invalid(values)
        image = ax.imshow(shown, cmap=cmap, norm=norm, vmin=None if norm else lo, vmax=None if norm else hi,
                          aspect="auto")
        ax.set_facecolor("0.85")
        for i in range(len(rows)):
            for j in range(len(cols)):
                v = values[i, j]
                if not np.isfinite(v):
                    ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="0.3")
                    continue
                r, g, b, _ = image.cmap(image.norm(v))
                ax.text(j, i, fmt(float(v)), ha="center", va="center", fontsize=7,
                        color="white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black")
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set_xticks(range(len(cols)), cols, fontsize=8, rotation=90 if longest_col > 6 else 0)
        ax.tick_params(top=True, labeltop=True, bottom=False, labelbottom=False)
        ax.set_title(title, fontsize=9)
        bar = fig.colorbar(image, ax=ax, fraction=0.08, pad=0.02)
        bar.set_label(f"{metric} ({arrow})" if arrow else metric, fontsize=8)
        bar.ax.tick_params(labelsize=7)
    return fig
