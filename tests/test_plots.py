"""Figures a reader can use: leaderboards of at most 30 rows per panel, and no text drawn over
other text (bounding boxes measured with matplotlib's renderer)."""

import numpy as np
import pytest

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


# Every figure the project writes, at the size of a default run, with no text over other text.
ESTIMATORS = ["dm", "ipw", "ipw-clip", "snipw", "dr", "sndr", "switch-dr", "dr-os", "sg-ipw", "mipw", "snmipw"]
TARGETS = ["random", "epsilon_greedy", "softmax", "linucb"]


def _ctr():
    from recsim_causal.experiment.ctr import ctr_figure

    rng = np.random.default_rng(0)
    n = 2000
    true_p = rng.random(n) * 0.4
    y = (rng.random(n) < true_p).astype(float)
    rows = {"cold": np.arange(0, 800), "warm": np.arange(800, n)}
    preds = {s: {m: np.clip(true_p[r] + rng.normal(0, s_, len(r)), 0.001, 0.999)
                 for m, s_ in (("logistic", 0.2), ("features", 0.1), ("bert", 0.05))} for s, r in rows.items()}
    return ctr_figure(rows, y, true_p, preds, 10)


def _coverage():
    from recsim_causal.experiment.coverage import coverage_figure

    rng = np.random.default_rng(1)
    methods = ["bootstrap", "normal", "bernstein", "hoeffding"]
    targets = {t: {"estimators": {e: {"intervals": {m: {"coverage": float(rng.random())} for m in methods}}
                                  for e in ESTIMATORS}} for t in TARGETS}
    return coverage_figure({"targets": targets, "interval_methods": methods, "alpha": 0.05, "n_replications": 100,
                            "n_rounds": 20_000, "scm": "confounded"})


def _heatmap():
    from recsim_causal.plots import heatmap_figure

    rng = np.random.default_rng(2)
    configs = [f"n_rounds={n:,} epsilon={e} target={t}" for n in (5000, 20000) for e in (0.05, 0.2) for t in TARGETS]
    values = rng.random((len(configs), len(ESTIMATORS)))
    values[0, 3] = np.nan
    return heatmap_figure({"Bandit-v0 · scm=confounded · slate size 1\nbootstrap intervals": (configs, ESTIMATORS, values),
                           "Bandit-v0 · scm=default · slate size 1\nnormal intervals": (configs * 4, ESTIMATORS[:2],
                                                                                       np.tile(values[:, :2], (4, 1)))},
                          metric="coverage", better="closer to 0.95")


def _curves():
    from recsim_causal.plots import curves_figure

    steps = np.linspace(0, 200_000, 50)
    curves = [{"setting": s, "label": label, "n_seeds": 3, "step": steps,
               **{k: {"mean": steps * f, "low": steps * f * 0.9, "high": steps * f * 1.1}
                  for k in ("cumulative_regret", "mean_reward")}}
              for s in ("Bandit-v0 · scm=default · slate size 1", "Session-v0 · scm=default · slate size 1")
              for label, f in (("LinUCB alpha=0.5", 0.1), ("RandomPolicy", 0.3), ("PPOBert (trained 500k steps)", 0.2))]
    return curves_figure(curves)


def _errorbar():
    from recsim_causal.plots import errorbar_figure

    m = np.linspace(0.2, 0.6, len(ESTIMATORS))
    return errorbar_figure([e.upper() for e in ESTIMATORS], m, m - 0.05, m + 0.05, xlabel="policy value",
                           title="OPE of softmax on Bandit-v0 · scm=default · one item", truth=[0.4] * len(m))


def _regret():
    from recsim_causal.plots import regret_figure

    steps = np.linspace(0, 1_500_000, 100)
    return regret_figure(steps, np.sqrt(steps) * 30, "LinUCB on Bandit-v0 · scm=drift · one item",
                         change_points=[500_000, 1_000_000])


@pytest.mark.parametrize("make", [_ctr, _coverage, _heatmap, _curves, _errorbar, _regret],
                         ids=["ctr", "coverage", "heatmap", "curves", "errorbar", "regret"])
def test_no_figure_draws_text_over_text(make):
    import matplotlib.pyplot as plt

    fig = make()
    try:
        assert overlapping_texts(fig) == []
    finally:
        plt.close(fig)
