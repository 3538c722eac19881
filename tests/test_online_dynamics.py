"""The online runner in a world that changes: dynamic-regret fields, new items, logged time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

from recsim_causal.data import load_parquet
from recsim_causal.experiment.online import run_online

ROOT = Path(__file__).resolve().parents[1]


def _cfg(overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=["experiment.progress=false", "wandb.mode=disabled",
                                                        "env.num_envs=512", "env.n_items=20", *overrides])


def test_drift_run_reports_change_points_and_recovery(tmp_path):
    s = run_online(_cfg(["scm=drift", "agent=d_linucb", "experiment.steps=6144",
                         "scm.dynamics.shift.taste_trend.every=2000"]), tmp_path)
    assert s["change_points"] == [2000, 4000] and s["recovery_window"] == 2000
    assert len(s["recovery_regret"]) == 2 and all(r > 0 for r in s["recovery_regret"])
    assert s["recovery_regret"][0] + s["recovery_baseline"][0] <= s["cumulative_regret"] + 1e-6  # disjoint windows
    log = load_parquet(tmp_path / "logged.parquet")
    assert log.t is not None and np.array_equal(np.unique(log.t), np.arange(0, 6144, 512))
    assert (tmp_path / "regret.png").stat().st_size > 0


def test_churn_run_tells_agents_of_new_items_and_measures_their_cold_start(tmp_path):
    for agent in ("linucb", "linucb_text", "restart_linucb"):
        s = run_online(_cfg(["scm=churn", f"agent={agent}", "experiment.steps=4096", "scm.dynamics.churn.every=2048"]),
                       tmp_path / agent)
        assert s["change_points"] == [2048]
        assert 0 < s["new_items_shown"] <= 2 and s["new_item_impressions"] > 0
        assert 0 <= s["new_item_regret"] <= s["cumulative_regret"]


def test_stationary_run_has_no_dynamic_fields(tmp_path):
    s = run_online(_cfg(["agent=linucb", "experiment.steps=1024"]), tmp_path)
    assert "change_points" not in s and "new_item_regret" not in s
    assert load_parquet(tmp_path / "logged.parquet").t is None


def test_slate_run_on_churn_reports_recovery_and_new_item_regret(tmp_path):
    s = run_online(_cfg(["env=slate", "scm=churn", "agent=linucb", "experiment.steps=4096",
                         "scm.dynamics.churn.every=2048"]), tmp_path)
    assert s["slate_size"] > 1 and s["change_points"] == [2048]
    assert len(s["recovery_regret"]) == 1 and s["recovery_regret"][0] > 0
    assert 0 < s["new_items_shown"] <= 2 and s["new_item_impressions"] > 0
    assert 0 <= s["new_item_regret"] <= s["cumulative_regret"]
