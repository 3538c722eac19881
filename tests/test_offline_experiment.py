"""experiment=offline: learned policies judged by the exact truth; the winner's curse measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recsim_causal.learn import judge
from recsim_causal.ope import simulate_log

ROOT = Path(__file__).resolve().parents[1]


def test_winners_curse_the_training_estimate_flatters_the_held_out_one_does_not():
    """An unclipped IPW learner fitted to one half of the log: its IPW estimate on that same half
    exceeds its exact value (from the SCM) by more than 3 standard errors, while on the held-out
    half the estimate is within 4 standard errors of the exact value on those users (the
    weights are heavy-tailed: a normal interval of one log may still miss)."""
    log = simulate_log("default", "linucb", 6000, epsilon=0.2, n_items=20, seed=1, train_rounds=3000)
    result = judge(log, {"free": {"learner": "ipw", "max_weight": None, "n_epochs": 40},
                         "dm": {"learner": "dm"}},
                   estimators=["ipw", "dr"], select_by="dr", truth_users=20000, n_bootstrap_samples=100, ci="normal")
    free = result.learners["free"]
    train, heldout = free["train"]["ipw"], free["heldout"]["ipw"]
    train_se = (train["ci_high"] - train["ci_low"]) / (2 * 1.96)
    assert train["estimate"] - free["true_value"] > 3 * train_se, (train, free["true_value"])
    heldout_se = (heldout["ci_high"] - heldout["ci_low"]) / (2 * 1.96)
    assert abs(heldout["estimate"] - heldout["truth_logged_users"]) < 4 * heldout_se, heldout
    gaps = free["winners_curse"]["ipw"]
    assert gaps["train_minus_truth"] > abs(gaps["heldout_minus_truth"])
    # the selection is what the numbers say: the best held-out estimate, and the truly best
    s = result.selection
    assert s["pick"] == max(result.learners, key=lambda k: result.learners[k]["ope_heldout"]["dr"])
    assert s["best"] == max(result.learners, key=lambda k: result.learners[k]["true_value"])
    assert s["regret"] == s["best_true_value"] - s["pick_true_value"] >= 0


@pytest.mark.slow
def test_offline_experiment_from_the_command_line(tmp_path):
    out = tmp_path / "run"
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run.py"), "experiment=offline", "env.n_items=20",
         "experiment.n_rounds=3000", "experiment.train_rounds=2000", "experiment.truth_users=5000",
         "experiment.online=[linucb,random]", "experiment.learners.ipw.n_epochs=5", "~experiment.learners.snipw", "~experiment.learners.dr",
         "~experiment.learners.dr_mlp",
         "experiment.estimators=[ipw,dr]", "experiment.ci.n_bootstrap_samples=20", "wandb.mode=disabled",
         f"hydra.run.dir={out}"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "winner's curse" in res.stdout and "pick by held-out dr" in res.stdout
    summary = json.loads((out / "offline.json").read_text())
    assert summary["schema"]["kind"] == "offline"
    oracle = summary["oracle"]["true_value"]
    for who in ("logger", "online_best"):
        assert 0 < summary[who]["true_value"] <= oracle
    assert summary["online_best"]["true_value"] == max(v["true_value"] for v in summary["online"].values())
    for name in ("ipw", "dm"):
        r = summary["learners"][name]
        assert 0 < r["true_value"] <= oracle and r["true_value_se"] > 0
        assert set(r["ope_heldout"]) == set(r["ope_train"]) == {"ipw", "dr"}
    assert (out / "offline.png").stat().st_size > 0


@pytest.mark.slow
def test_offline_sessions_from_the_command_line(tmp_path):
    """env=session: CQL, IQL and DQN learn on logged sessions; true returns by rollouts."""
    pytest.importorskip("torchrl", reason="the offline-rl extra")
    out = tmp_path / "run"
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run.py"), "experiment=offline", "env=session", "env.n_items=20",
         "experiment.session.n_trajectories=300", "experiment.train_rounds=1000",
         "experiment.session.truth_trajectories=500", "experiment.session.online=[random]",
         "experiment.session.learners.dqn.n_steps=30", "experiment.session.learners.cql.n_steps=30",
         "experiment.session.learners.iql.n_steps=30", "experiment.ci.n_bootstrap_samples=20", "wandb.mode=disabled",
         f"hydra.run.dir={out}"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((out / "offline.json").read_text())
    assert summary["setting"] == "session" and summary["schema"]["kind"] == "offline"
    for name in ("dqn", "cql", "iql"):
        r = summary["learners"][name]
        assert r["true_value"] > 0 and r["true_value_se"] > 0
        assert set(r["ope_heldout"]) == set(r["ope_train"]) == {"dm", "pdis", "snpdis", "dr", "sndr"}
    assert summary["logger"]["true_value"] > 0 and summary["oracle"]["true_value"] > 0
    assert summary["oracle"]["kind"] == "myopic" and "not computable" in summary["oracle"]["why"]
    assert "pick by held-out dr" in res.stdout and "myopic oracle" in res.stdout


@pytest.mark.slow
def test_a_sweep_over_a_learner_hyperparameter_reports_the_pick_and_its_regret(tmp_path):
    """Hydra multirun over ipw's max_weight: the sweep's report ranks (config, learner) by true
    value and picks by the held-out estimate; the pick and its regret are what the runs say."""
    sweep = tmp_path / "sweep"
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run.py"), "-m", "experiment=offline", "env.n_items=20",
         "experiment.learners.ipw.max_weight=5,50", "experiment.n_rounds=2000", "experiment.train_rounds=1000",
         "experiment.truth_users=3000", "experiment.online=[random]", "~experiment.learners.dr_mlp",
         "~experiment.learners.snipw", "~experiment.learners.dr", "experiment.learners.ipw.n_epochs=5",
         "experiment.estimators=[dr]", "experiment.ci.n_bootstrap_samples=20", "wandb.mode=disabled",
         f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    board = json.loads((sweep / "leaderboard.json").read_text())
    assert board["kind"] == "offline"
    rows = {r["label"]: r["metrics"] for r in board["rows"]}
    assert set(rows) == {"max_weight=5 learner=ipw", "max_weight=50 learner=ipw", "learner=dm"}
    runs = [json.loads(p.read_text()) for p in sweep.glob("*/offline.json")]
    truths = {(r["learners"]["ipw"]["params"]["max_weight"], k): v["true_value"] for r in runs
              for k, v in r["learners"].items()}
    (sel,) = board["selection"].values()
    best = max(truths.values())
    assert sel["best_true_value"] == best and sel["regret"] == best - sel["pick_true_value"] >= 0
    assert "pick by held-out estimate" in (sweep / "leaderboard.md").read_text()
