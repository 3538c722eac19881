"""The coverage report on the default world: do the intervals hold the exact V(pi) as often
as they claim? (>= 200 replications, statistical, seeded)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from recsim_causal.experiment.runner import run_job

ROOT = Path(__file__).resolve().parents[1]


def _compose(overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=["experiment=ope_coverage", "wandb.mode=disabled", *overrides])


@pytest.mark.slow
def test_ips_snips_dr_sndr_intervals_cover_the_exact_truth(tmp_path):
    R = 200
    cfg = _compose([f"experiment.n_replications={R}", "experiment.n_rounds=3000", "experiment.train_rounds=3000",
                    "experiment.truth_users=400000", "env.n_items=10", "experiment.targets=[random,softmax]",
                    "experiment.use=[dm,ipw,snipw,dr,sndr]", "experiment.ci.n_bootstrap_samples=300",
                    "experiment.ci.more_methods=[bernstein,hoeffding]"])
    summary = run_job(cfg, tmp_path)
    saved = json.loads((tmp_path / "coverage.json").read_text())
    assert (tmp_path / "coverage.png").exists() and saved["n_replications"] == R
    for target, t in saved["targets"].items():
        assert t["truth_se"] < 1e-3
        assert t["reliable_share"] == 1.0  # the diagnostics call every replication reliable at this size
        for est in ("ipw", "snipw", "dr", "sndr"):
            iv = t["estimators"][est]["intervals"]
            assert abs(iv["bootstrap"]["coverage"] - 0.95) <= 0.04, (target, est, iv["bootstrap"])
            assert iv["bootstrap"]["valid_share"] == 1.0
            # the finite-sample bounds never under-cover (within binomial noise of 95%)
            for m in ("bernstein", "hoeffding"):
                assert iv[m]["coverage"] >= 0.95 - 2 * (0.95 * 0.05 / R) ** 0.5, (target, est, m, iv[m])
            assert abs(t["estimators"][est]["bias"]) < 4 * t["estimators"][est]["bias_se"] + 3 * t["truth_se"]
        dm = t["estimators"]["dm"]["intervals"]["bootstrap"]
        assert dm["coverage"] >= 0.90 or dm["valid_share"] == 0.0
    assert "coverage of 95% intervals over 200 logs" in summary["table"]


def test_coverage_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"^experiment.n_replications: expected an integer >= 2, got 1$"):
        run_job(_compose(["experiment.n_replications=1"]), tmp_path)


@pytest.mark.slow
def test_coverage_sweeps_from_the_command_line(tmp_path):
    import subprocess
    import sys

    sweep = tmp_path / "sweep"
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "run.py"), "-m", "experiment=ope_coverage",
                          "experiment.n_rounds=500,1000", "experiment.logger.epsilon=0.3", "experiment.n_replications=2",
                          "experiment.train_rounds=500", "experiment.truth_users=2000", "experiment.targets=[random]",
                          "experiment.use=[ipw,dr]", "experiment.ci.n_bootstrap_samples=50", "env.n_items=10",
                          "wandb.mode=disabled", f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    runs = sorted(json.loads(p.read_text())["n_rounds"] for p in sweep.glob("*/coverage.json"))
    assert runs == [500, 1000] and len(list(sweep.glob("*/coverage.png"))) == 2
    # the sweep's own report: a row per n_rounds x target x estimator x interval method, and the heatmaps
    board = json.loads((sweep / "leaderboard.json").read_text())
    assert board["kind"] == "coverage" and len(board["rows"]) == 2 * 1 * 2 * 4
    assert (sweep / "heatmap_coverage.png").is_file() and (sweep / "heatmap_rmse.png").is_file()
