"""The sweep report on real Hydra multiruns: rows keyed by what differs, one table per setting,
OPE and coverage sweeps, files that match the runs' summaries, and no silent overwrite."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from recsim_causal.plots import readable_axis, short_number
from recsim_causal.experiment.report import mean_ci, wilson, write_report
from recsim_causal.experiment.runner import date_time_name

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SMALL = ["experiment.steps=2048", "experiment.progress=false", "env.num_envs=256", "env.n_items=20",
         "wandb.mode=disabled"]
PNG = b"\x89PNG\r\n\x1a\n"


def sweep(tmp: Path, *args: str) -> Path:
    out = tmp / "sweep"
    res = subprocess.run([PY, str(ROOT / "scripts" / "run.py"), "-m", *args, f"hydra.sweep.dir={out}"],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def report_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, str(ROOT / "scripts" / "report.py"), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def alpha_sweep(tmp_path_factory):
    """agent.alpha = 0.1, 1.0 x seed = 0, 1, 2 of LinUCB: the issue's example."""
    return sweep(tmp_path_factory.mktemp("alpha"), "agent=linucb", "agent.alpha=0.1,1.0", "seed=0,1,2", *SMALL)


def test_alpha_by_seed_sweep_gives_one_row_per_alpha(alpha_sweep):
    table = write_report(alpha_sweep)
    board = json.loads((alpha_sweep / "leaderboard.json").read_text())
    rows = board["rows"]
    assert len(rows) == 2 and table.count("### ") == 1
    assert sorted(r["config"]["agent.alpha"] for r in rows) == [0.1, 1.0]
    summaries = [json.loads(p.read_text()) for p in alpha_sweep.glob("*/summary.json")]
    for r in rows:
        assert r["n_seeds"] == 3 and sorted(r["seeds"]) == [0, 1, 2]
        assert set(r["config"]) == {"agent._target_", "agent.alpha"}  # only what differs (+ the agent)
        assert r["metrics"]["cumulative_regret"]["better"] == "lower"
        # the row's numbers are the runs' summaries, averaged over seeds with a t interval (scipy's)
        mine = [json.loads((Path(p) / "summary.json").read_text()) for p in r["runs"]]
        assert all((Path(p) / ".hydra" / "config.yaml").is_file() for p in r["runs"])
        values = [s["cumulative_regret"] for s in mine]
        m = r["metrics"]["cumulative_regret"]
        assert m["values"] == values
        lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
        assert math.isclose(m["mean"], np.mean(values)) and math.isclose(m["ci_low"], max(lo, 0), rel_tol=1e-3)
        assert math.isclose(m["ci_high"], hi, rel_tol=1e-3)
        assert f"alpha={r['config']['agent.alpha']}" in r["label"]
    assert len(summaries) == 6
    a, b = (r["metrics"]["cumulative_regret"] for r in rows)  # ranked; shared while the intervals overlap
    assert a["mean"] <= b["mean"]
    assert [r["rank"] for r in rows] == ([1, 1] if a["ci_low"] <= b["ci_high"] and b["ci_low"] <= a["ci_high"] else [1, 2])
    assert rows[0]["metrics"]["cumulative_regret"]["mean"] <= rows[1]["metrics"]["cumulative_regret"]["mean"]
    for name in ("leaderboard.md", "leaderboard.png", "curves.png", "curves.json"):
        assert (alpha_sweep / name).stat().st_size > 0
    assert (alpha_sweep / "leaderboard.png").read_bytes()[:8] == PNG == (alpha_sweep / "curves.png").read_bytes()[:8]


def test_curves_json_matches_the_runs(alpha_sweep):
    curves = json.loads((alpha_sweep / "curves.json").read_text())
    board = json.loads((alpha_sweep / "leaderboard.json").read_text())
    assert len(curves) == 2
    for c, r in zip(curves, board["rows"]):
        assert c["label"] == r["label"] and c["n_seeds"] == 3
        finals = [v[-1] for v in c["cumulative_regret"]["per_seed"]]
        # the curve ends at each run's total regret, and its mean at the leaderboard's mean
        np.testing.assert_allclose(sorted(finals), sorted(r["metrics"]["cumulative_regret"]["values"]), rtol=1e-9)
        assert math.isclose(c["cumulative_regret"]["mean"][-1], r["metrics"]["cumulative_regret"]["mean"], rel_tol=1e-9)
        assert c["step"][-1] == 2048
        assert all(lo <= m <= hi for lo, m, hi in zip(c["cumulative_regret"]["low"], c["cumulative_regret"]["mean"],
                                                     c["cumulative_regret"]["high"]))


def test_reports_are_never_silently_overwritten(alpha_sweep):
    write_report(alpha_sweep, force=True)  # a report of recsim-report's (the sweep's own is replaced freely)
    res = report_cli(str(alpha_sweep))
    assert res.returncode == 2 and "pass --force" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = report_cli(str(alpha_sweep), "--metric", "mean_reward")  # another metric: its own files
    assert res.returncode == 0, res.stderr
    assert "leaderboard_mean_reward.md" in res.stdout and (alpha_sweep / "leaderboard_mean_reward.json").exists()
    assert res.stdout.count("mean_reward (") == 1  # the column once, not twice
    res = report_cli(str(alpha_sweep), "--force")
    assert res.returncode == 0 and "| 1 | LinUCB alpha=" in res.stdout
    res = report_cli(str(alpha_sweep), "--metric", "agent")
    assert res.returncode == 2 and res.stderr.startswith("error: report.metric: 'agent' is not a numeric metric")


def test_mixed_env_sweep_gives_one_table_per_setting(tmp_path):
    out = sweep(tmp_path, "agent=random,linucb", "env=bandit,slate,session", "seed=0,1", *SMALL)
    table = write_report(out)
    rows = json.loads((out / "leaderboard.json").read_text())["rows"]
    settings = {r["setting"] for r in rows}
    assert settings == {"Bandit-v0 · scm=default · slate size 1", "Bandit-v0 · scm=default · slate size 5",
                        "Session-v0 · scm=default · slate size 1"}
    assert table.count("### ") == 3
    for s in settings:
        srows = [r for r in rows if r["setting"] == s]
        assert [r["rank"] for r in srows] == [1, 2] and {r["label"] for r in srows} == {"LinUCB", "RandomPolicy"}
        assert all(r["n_seeds"] == 2 for r in srows)
        for r in srows:  # each row's runs are of that setting only
            for p in r["runs"]:
                summary = json.loads((Path(p) / "summary.json").read_text())
                assert s.startswith(summary["env"].rsplit("/", 1)[-1])
    assert (out / "curves.png").stat().st_size > 0


def test_ope_sweep_gives_the_estimator_table(tmp_path):
    out = sweep(tmp_path, "experiment=ope", "seed=0,1", "experiment.n_rounds=500,1000", "experiment.train_rounds=500",
                "experiment.truth_users=1000", "experiment.ci.n_bootstrap_samples=30", "experiment.use=[dm,ipw,dr]",
                "experiment.targets=[random,epsilon_greedy]", "env.n_items=10", "wandb.mode=disabled")
    table = write_report(out)
    rows = json.loads((out / "leaderboard.json").read_text())["rows"]
    assert len(rows) == 2 * 2 * 3  # n_rounds x target x estimator
    assert "agent._target_" not in rows[0]["config"]  # the unused online agent is no key of an OPE run
    opes = {p.parent: json.loads(p.read_text()) for p in out.glob("*/ope.json")}
    for r in rows:
        assert r["n_seeds"] == 2
        recs = [opes[Path(p)]["targets"][r["config"]["target"]]["estimators"][r["config"]["estimator"]] for p in r["runs"]]
        errors = [x["estimate"] - x["truth"] for x in recs]
        assert math.isclose(r["metrics"]["rmse"]["mean"], math.sqrt(np.mean(np.square(errors))), rel_tol=1e-9)
        assert r["metrics"]["coverage"]["values"] == [x["covers"] for x in recs]
        assert all((Path(p) / ".hydra" / "config.yaml").is_file() for p in r["runs"])
    assert "n_rounds=500 target=random estimator=dr" in table and "rmse" in table
    # the estimator x config heatmaps: a cell per (n_rounds, target) row and estimator, the row's value
    from recsim_causal.experiment.report import heatmap_panels

    assert (out / "heatmap_rmse.png").stat().st_size > 0 and (out / "heatmap_coverage.png").stat().st_size > 0
    (title, (configs, estimators, values)), = heatmap_panels(rows, "rmse").items()
    assert title == rows[0]["setting"] and sorted(estimators) == ["dm", "dr", "ipw"] and len(configs) == 4
    for r in rows:
        cell = values[configs.index(f"n_rounds={r['config']['experiment.n_rounds']} target={r['config']['target']}"),
                      estimators.index(r["config"]["estimator"])]
        assert cell == r["metrics"]["rmse"]["mean"]


def test_coverage_sweep_rows_per_target_estimator_method(tmp_path):
    """Two coverage runs (seeds) in the format of experiment=ope_coverage, written by hand."""
    for seed, shift in ((0, 0.0), (1, 0.02)):
        d = tmp_path / f"{seed}_seed={seed}"
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "config.yaml").write_text(
            f"seed: {seed}\nenv: {{id: RecSimCausal/Bandit-v0, slate_size: 1}}\nscm: {{name: default}}\n"
            "experiment: {name: ope_coverage, n_rounds: 2000}\nagent: {_target_: recsim_causal.agents.LinUCB}\n")
        rows = [{"target": "random", "estimator": est, "method": m, "bias": 0.001 + shift, "bias_se": 0.001,
                 "rmse": 0.01 + shift, "coverage": 0.94 - shift, "mean_width": 0.04, "truth": 0.2}
                for est in ("ipw", "dr") for m in ("normal", "bootstrap")]
        (d / "coverage.json").write_text(json.dumps({"rows": rows, "replications": 100}))
    table = write_report(tmp_path)
    rows = json.loads((tmp_path / "leaderboard.json").read_text())["rows"]
    assert len(rows) == 4 and all(r["n_seeds"] == 2 for r in rows)
    for r in rows:
        assert math.isclose(r["metrics"]["coverage"]["mean"], 0.93) and r["metrics"]["rmse"]["values"] == [0.01, 0.03]
        assert r["metrics"]["coverage"]["ci_high"] <= 1.0
    assert "estimator=dr method=bootstrap" in table


def test_one_seed_says_no_interval_and_intervals_respect_the_range():
    assert mean_ci([3.0], "cumulative_regret")["ci_low"] is None
    from recsim_causal.experiment.report import fmt_stat

    assert fmt_stat(mean_ci([3.0], "cumulative_regret")) == "3.00 (1 seed, no interval)"  # 3 significant digits
    m = mean_ci([1.0, 100.0], "cumulative_regret")  # t with 1 df: the raw interval goes far below 0
    assert m["ci_low"] == 0.0 and m["ci_high"] > 100
    # Wilson's interval against scipy's
    lo, hi = wilson(18, 20)
    ref = stats.binomtest(18, 20).proportion_ci(0.95, method="wilson")
    assert math.isclose(lo, ref.low, rel_tol=1e-5) and math.isclose(hi, ref.high, rel_tol=1e-5)


def test_step_ticks_are_short_and_few():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert [short_number(x) for x in (950, 12_000, 100_000, 1_500_000)] == ["950", "12k", "100k", "1.5M"]
    fig, ax = plt.subplots()
    ax.plot([0, 1_000_000, 2_000_000], [0, 1, 2])
    readable_axis(ax.xaxis)
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    labels = [t.get_text() for t, x in zip(ax.get_xticklabels(), ax.get_xticks()) if lo <= x <= hi]
    plt.close(fig)
    assert 2 <= len(labels) <= 7 and all(len(t) <= 4 for t in labels), labels


def test_groups_are_named_by_date_and_time(tmp_path):
    assert date_time_name(Path("multirun/2026-11-28/00-50-00")) == "2026-11-28_00-50-00"
    assert date_time_name(Path("outputs/2026-11-28/00-50-00_linucb")) == "2026-11-28_00-50-00_linucb"
    stamp = tmp_path / "multirun.yaml"
    stamp.write_text("")
    os.utime(stamp, (1_800_000_000, 1_800_000_000))
    from datetime import datetime

    assert date_time_name(tmp_path, stamp) == f"{tmp_path.name}-{datetime.fromtimestamp(1_800_000_000):%Y-%m-%d_%H-%M-%S}"


def test_wandb_run_names_carry_scm_swept_values_and_seed(tmp_path):
    from tests.test_runner import wandb_summary

    out = sweep(tmp_path, "agent=linucb", "agent.alpha=0.1,1.0", "scm=confounded", *SMALL[:-1])
    names = {wandb_summary(p.parent)["name"] for p in out.glob("*/summary.json")}
    assert names == {"linucb-bandit-confounded-alpha=0.1-seed0", "linucb-bandit-confounded-alpha=1.0-seed0"}


def test_ope_diagnostics_are_read_per_estimator_or_family(tmp_path):
    """A hand-written ope.json whose target has weight diagnostics per estimator family."""
    d = tmp_path / "0_seed=0"
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text("seed: 0\nenv: {id: RecSimCausal/Bandit-v0, slate_size: 1}\n"
                                             "scm: {name: default}\nexperiment: {name: ope}\n")
    est = {"estimate": 0.3, "ci_low": 0.2, "ci_high": 0.4, "truth": 0.25, "covers": True}
    (d / "ope.json").write_text(json.dumps({"targets": {"random": {
        "truth": 0.25, "estimators": {"ipw": est, "ipw-clip": est, "dm": est},
        "diagnostics": {"ipw": {"ess_ratio": 0.5, "max_weight": 9.0}}}}}))
    write_report(tmp_path)
    rows = {r["config"]["estimator"]: r for r in json.loads((tmp_path / "leaderboard.json").read_text())["rows"]}
    assert rows["ipw"]["metrics"]["ess_ratio"]["mean"] == 0.5 == rows["ipw-clip"]["metrics"]["ess_ratio"]["mean"]
    assert "ess_ratio" not in rows["dm"]["metrics"] and rows["dm"]["n_seeds"] == 1
    assert math.isclose(rows["dm"]["metrics"]["rmse"]["mean"], 0.05)


def test_errorbar_plot_takes_intervals_that_miss_their_estimate(tmp_path):
    """A percentile bootstrap of a ratio estimator (or a refitted DM) may not contain its point
    estimate; the OPE plot draws it anyway (default `experiment=ope` used to crash on it)."""
    import numpy as np

    from recsim_causal.plots import errorbar_plot

    path = errorbar_plot(["a", "b", "c"], [0.1, 0.2, 0.3], [0.15, 0.1, np.nan], [0.2, 0.3, np.nan],
                         tmp_path / "ope.png", xlabel="value", title="t", truth=[0.1, 0.2, 0.3])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_trained_policy_states_its_training_steps_in_the_leaderboard(tmp_path):
    """PPO's summary.json says how many env steps it trained before its online run (hand-written
    runs in the format of experiment=online); the leaderboard states them beside its regret."""
    from recsim_causal.experiment.report import _plot_label

    for agent, steps, regret in (("PPOBert", 507_904, 30.0), ("LinUCB", 0, 20.0)):
        for seed in (0, 1):
            d = tmp_path / f"{agent}_{seed}"
            (d / ".hydra").mkdir(parents=True)
            (d / ".hydra" / "config.yaml").write_text(
                f"seed: {seed}\nenv: {{id: RecSimCausal/Bandit-v0, slate_size: 1}}\nscm: {{name: default}}\n"
                f"agent: {{_target_: recsim_causal.agents.{agent}}}\nexperiment: {{name: online, steps: 1024}}\n")
            (d / "summary.json").write_text(json.dumps({"cumulative_regret": regret + seed, "mean_reward": 0.5,
                                                        "train_steps": steps, "steps": 1024, "seed": seed}))
    table = write_report(tmp_path)
    assert "| train_steps |" in table.splitlines()[2]
    line = {r.split("|")[2].strip(): r for r in table.splitlines() if r.startswith("| 1") or r.startswith("| 2")}
    assert line["PPOBert"].rstrip(" |").endswith("507,904") and line["LinUCB"].rstrip(" |").endswith("| 0")
    rows = json.loads((tmp_path / "leaderboard.json").read_text())["rows"]
    assert [_plot_label(r) for r in rows] == ["LinUCB", "PPOBert (trained 508k steps)"]


# ------------------------------------------------------- OPE across a change; off-policy selection

SHIFT = ["experiment=ope_shift", "scm=user_shift", "experiment.n_rounds=400", "experiment.train_rounds=300",
         "experiment.target_contexts=500", "experiment.truth_users=1000", "experiment.seeds=2",
         "experiment.use=[ipw,dr]", "experiment.targets=[softmax]", "env.n_items=10", "wandb.mode=disabled"]
OPS = ["experiment=ops", "experiment.n_rounds=500", "experiment.train_rounds=300", "experiment.use=[dm,ipw,dr]",
       "experiment.ks=[1,2]", "env.n_items=10", "wandb.mode=disabled"]


@pytest.fixture(scope="module")
def shift_sweep(tmp_path_factory):
    """seed = 0, 1, each run 2 logs (seeds seed, seed + 1): logs 0, 1, 2 (the other row keys are tested on OPE sweeps)."""
    return sweep(tmp_path_factory.mktemp("shift"), *SHIFT, "seed=0,1")


@pytest.fixture(scope="module")
def ops_sweep(tmp_path_factory):
    return sweep(tmp_path_factory.mktemp("ops"), *OPS, "seed=0,1")


def _job_config(run_dir: Path) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(Path(run_dir) / ".hydra" / "config.yaml"))


@pytest.mark.slow
def test_ope_shift_sweep_rows_are_every_log_against_the_truth_after(shift_sweep, capsys):
    table = write_report(shift_sweep, force=True)  # the sweep's own report (written at its end) is replaced
    assert "its log 0 (seed 1) is" in capsys.readouterr().err  # the log both runs hold counts once
    board = json.loads((shift_sweep / "leaderboard.json").read_text())
    rows = board["rows"]
    assert board["kind"] == "ope_shift" and board["metric"] == "rmse" and board["better"] == "lower"
    assert len(rows) == 2 * 2  # estimator x weights (one target)
    # the logs by log seed, straight from the files: run seed s holds logs s and s + 1
    logs: dict[int, dict] = {}
    for p in shift_sweep.glob("*/ope_shift.json"):
        for i, log in enumerate(json.loads(p.read_text())["runs"]):
            assert logs.setdefault(_job_config(p.parent)["seed"] + i, log) == log  # one seed: one log in either run
    assert sorted(logs) == [0, 1, 2]
    for r in rows:
        c = r["config"]
        assert set(c) == {"target", "estimator", "weights"}
        assert f"weights={c['weights']}" in r["label"] and r["n_seeds"] == 3 and sorted(r["seeds"]) == [0, 1, 2]
        recs = [next(x for x in logs[s]["rows"]
                     if (x["target"], x["estimator"], x["weights"]) == (c["target"], c["estimator"], c["weights"]))
                for s in (0, 1, 2)]
        err = np.array([x["estimate"] - x["truth_after"] for x in recs])
        m = r["metrics"]
        assert math.isclose(m["rmse"]["mean"], float(np.sqrt(np.mean(err ** 2))), rel_tol=1e-12)
        lo, hi = stats.t.interval(0.95, 2, loc=err.mean(), scale=stats.sem(err))
        assert math.isclose(m["mean_error"]["mean"], err.mean(), rel_tol=1e-12, abs_tol=1e-15)
        assert math.isclose(m["mean_error"]["ci_low"], lo, rel_tol=1e-3) and math.isclose(m["mean_error"]["ci_high"], hi, rel_tol=1e-3)
        k = sum(x["ci_low"] <= x["truth_after"] <= x["ci_high"] for x in recs)  # coverage of V_after, not V_before
        ref = stats.binomtest(k, 3).proportion_ci(0.95, method="wilson")
        assert m["coverage"]["mean"] == k / 3
        assert math.isclose(m["coverage"]["ci_low"], ref.low, abs_tol=1e-5) and math.isclose(m["coverage"]["ci_high"], ref.high, abs_tol=1e-5)
        assert math.isclose(m["mean_width"]["mean"], np.mean([x["ci_high"] - x["ci_low"] for x in recs]), rel_tol=1e-12)
        if c["weights"] == "none":
            assert "ess_ratio" not in m
        else:  # the context weights' ESS of each log
            ess = [logs[s]["weights"]["ess_ratio"] for s in (0, 1, 2)]
            assert math.isclose(m["ess_ratio"]["mean"], np.mean(ess), rel_tol=1e-12)
    ranked = [r["metrics"]["rmse"]["mean"] for r in rows]  # within a config and target, by RMSE
    ranks = [r["rank"] for r in rows]
    assert ranked == sorted(ranked) and ranks[0] == 1 and ranks == sorted(ranks)
    assert "| target=softmax estimator=dr weights=context | 3 |" in table
    assert (shift_sweep / "heatmap_rmse.png").read_bytes()[:8] == PNG == (shift_sweep / "heatmap_coverage.png").read_bytes()[:8]


def test_ops_sweep_rows_are_selection_metrics_over_seeds(ops_sweep):
    write_report(ops_sweep, force=True)
    board = json.loads((ops_sweep / "leaderboard.json").read_text())
    rows = board["rows"]
    assert board["kind"] == "ops" and board["metric"] == "regret@1" and board["better"] == "lower"
    results = {str(p.parent): json.loads(p.read_text()) for p in ops_sweep.glob("*/ops.json")}
    assert len(results) == 2 and sorted(r["config"]["estimator"] for r in rows) == ["dm", "dr", "ipw"]
    for r in rows:
        assert r["config"] == {"estimator": r["config"]["estimator"]} and r["n_seeds"] == 2  # only seeds differ
        regret, rho, tau = [], [], []
        for p in r["runs"]:  # from each run's estimates and truths: scipy's correlations, regret by hand
            res = results[p]
            names = list(res["truth"])
            est = np.array([res["estimators"][r["config"]["estimator"]]["estimates"][n] for n in names])
            tru = np.array([res["truth"][n] for n in names])
            regret.append(tru.max() - tru[np.argmax(est)])
            rho.append(stats.spearmanr(est, tru).statistic)
            tau.append(stats.kendalltau(est, tru).statistic)
        m = r["metrics"]
        np.testing.assert_allclose(m["regret@1"]["values"], regret, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(m["spearman"]["values"], rho, rtol=1e-9)
        np.testing.assert_allclose(m["kendall"]["values"], tau, rtol=1e-9)
        lo, hi = stats.t.interval(0.95, 1, loc=np.mean(rho), scale=stats.sem(rho))
        assert math.isclose(m["spearman"]["ci_low"], max(lo, -1.0), rel_tol=1e-3, abs_tol=1e-12)
        assert math.isclose(m["spearman"]["ci_high"], min(hi, 1.0), rel_tol=1e-3)  # a correlation stays in [-1, 1]
        assert m["regret@1"]["better"] == "lower" and m["spearman"]["better"] == "higher"
        assert set(m) >= {"regret@2", "ndcg@1", "ndcg@2", "sharpe@2"} and "sharpe@1" not in m  # SharpeRatio@1: null
    means = [r["metrics"]["regret@1"]["mean"] for r in rows]
    assert means == sorted(means)
    assert (ops_sweep / "heatmap_regret@1.png").read_bytes()[:8] == PNG
    res = report_cli(str(ops_sweep), "--metric", "spearman")
    assert res.returncode == 0, res.stderr
    rho = [r["metrics"]["spearman"]["mean"] for r in json.loads((ops_sweep / "leaderboard_spearman.json").read_text())["rows"]]
    assert rho == sorted(rho, reverse=True)
    res = report_cli(str(ops_sweep), "--metric", "rmse", "--force")
    assert res.returncode == 2 and res.stderr.startswith("error: report.metric: 'rmse' is not a selection metric")


def test_new_kinds_in_a_mixed_sweep_and_bad_files_are_one_line(shift_sweep, ops_sweep, tmp_path):
    import shutil

    mixed = tmp_path / "mixed"
    shutil.copytree(shift_sweep, mixed / "shift")
    shutil.copytree(ops_sweep, mixed / "ops")
    for p in mixed.glob("*/leaderboard*"):
        p.unlink()
    res = report_cli(str(mixed))
    assert res.returncode == 2 and res.stderr.strip() == "error: report: the sweep holds ope_shift, ops runs; pick one with --kind"
    assert report_cli(str(mixed), "--kind", "ops").returncode == 0
    (tmp_path / "empty").mkdir()
    res = report_cli(str(tmp_path / "empty"))  # no result file: the known files are named
    assert res.returncode == 2 and "ope_shift.json or ops.json under" in res.stderr

    job = next(p for p in (mixed / "shift").iterdir() if (p / "ope_shift.json").exists())
    record = json.loads((job / "ope_shift.json").read_text())
    del record["runs"][1]["rows"][0]["truth_after"]
    (job / "ope_shift.json").write_text(json.dumps(record))
    res = report_cli(str(mixed), "--kind", "ope_shift", "--force")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith(f"error: report: {job}/ope_shift.json: runs[1].rows[0]: expected the fields target,")
    assert res.stderr.rstrip().endswith("(missing truth_after)")

    job = next(p for p in (mixed / "ops").iterdir() if (p / "ops.json").exists())
    record = json.loads((job / "ops.json").read_text())
    record["estimators"]["dr"]["metrics"] = [0.5]
    (job / "ops.json").write_text(json.dumps(record))
    res = report_cli(str(mixed), "--kind", "ops", "--force")
    assert res.returncode == 2 and res.stderr.strip() == \
        f"error: report: {job}/ops.json: estimators.dr.metrics: expected a mapping metric -> number, got [0.5]"
    (job / "ops.json").write_text(json.dumps({**record, "schema": {"kind": "ope", "version": 1}}))  # a foreign file
    res = report_cli(str(mixed), "--kind", "ops", "--force")
    assert res.returncode == 2 and res.stderr.strip() == f"error: report: {job}/ops.json: expected a 'ops' result, got 'ope'"
    (job / "ops.json").write_text("{not json")
    res = report_cli(str(mixed), "--kind", "ops", "--force")
    assert res.returncode == 2 and res.stderr.startswith(f"error: report: {job}/ops.json: cannot read (JSONDecodeError")
