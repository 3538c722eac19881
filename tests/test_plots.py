"""Figures a reader can use: leaderboards of at most 30 rows per panel, and no text drawn over
other text (bounding boxes measured with matplotlib's renderer)."""

import numpy as np

from recsim_causal.plots import MAX_ROWS, leaderboard_figure, overlapping_texts


def test_the_overlap_check_sees_text_drawn_over_text():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.text(0.5, 0.5, "one label")
    ax.text(0.52, 0.5, "another label")
    ax.text(0.5, 0.1, "apart")
    assert overlapping_texts(fig) == [("one label", "another label")]
    plt.close(fig)


def test_a_long_leaderboard_is_split_into_panels_of_at_most_30_rows_without_overlaps():
    rng = np.random.default_rng(0)
    means = np.sort(rng.random(80))
    rows = [(f"LinUCB alpha={a:.3f} experiment.n_rounds={n:,}", {"mean": m, "ci_low": m - 0.05, "ci_high": m + 0.05})
            for a, n, m in zip(rng.random(80), rng.integers(1_000, 50_000, 80), means)]
    rows[3] = ("one seed", {"mean": 0.5, "ci_low": None, "ci_high": None})
    fig = leaderboard_figure({"Bandit-v0 · scm=default · one item": rows, "Session-v0 · scm=default": rows[:4]},
                             metric="rmse", better="lower")
    axes = fig.axes
    assert [len(ax.get_yticklabels()) for ax in axes] == [30, 30, 20, 4]
    assert all(len(ax.get_yticklabels()) <= MAX_ROWS for ax in axes)
    assert axes[1].get_title().endswith("(rows 31-60 of 80)")
    # every row is in exactly one panel, in rank order
    labels = [t.get_text() for ax in axes[:3] for t in ax.get_yticklabels()]
    assert labels == [label for label, _ in rows]
    assert overlapping_texts(fig) == []


def test_ope_figure_has_one_panel_per_target_with_truth_invalid_and_missing_marked():
    from recsim_causal.plots import ope_figure

    est = lambda v, valid=True: {"estimate": v, "ci_low": v - 0.05, "ci_high": v + 0.05, "interval_valid": valid}
    targets = {"random": {"truth": 0.28, "estimators": {"ipw": est(0.29), "dm": est(0.35, False),
                                                       "mipw": {"estimate": None, "invalid_reason": "no embedding"}}},
               "softmax": {"truth": 0.47, "estimators": {"ipw": est(0.45), "dr": est(0.48)}},
               "linucb": {"truth": 0.70, "estimators": {"dr": est(0.69)}}}
    fig = ope_figure(targets, title="OPE")
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ["target random", "target softmax", "target linucb"]
    first = shown[0]
    assert [t.get_text() for t in first.get_yticklabels()] == ["ipw", "dm (invalid CI)"]
    assert "not shown: mipw: no embedding" in first.get_xlabel()
    truth_lines = [line for line in first.get_lines() if list(line.get_xdata()) == [0.28, 0.28]]
    assert len(truth_lines) == 1
    assert overlapping_texts(fig) == []
