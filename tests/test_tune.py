"""hydra/sweeper=optuna tunes a policy on its mean regret over seeds (experiment=tune): a real
Optuna study of 3 trials at a tiny size, checked against the trials' own runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_optuna_tunes_linucb_alpha_on_mean_regret_over_seeds(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the tune extra (make test installs it)")
    out = tmp_path / "tune"
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run.py"), "-m", "hydra/sweeper=optuna", "experiment=tune", "agent=linucb",
         "agent.alpha=interval(0.0, 3.0)", "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=1",
         "hydra.sweeper.sampler.seed=0", "experiment.seeds=[0,1]", "experiment.steps=1024", "env.num_envs=256",
         "env.n_items=20", "wandb.mode=disabled", f"hydra.sweep.dir={out}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    best = yaml.safe_load((out / "optimization_results.yaml").read_text())
    trials = [json.loads(p.read_text()) for p in sorted(out.glob("*/tune.json"))]
    assert len(trials) == 3
    for t in trials:  # a trial's objective is the mean of its seeds' own runs
        job = next(p.parent for p in out.glob("*/tune.json") if json.loads(p.read_text()) == t)
        regrets = [json.loads((job / f"seed{s}" / "summary.json").read_text())["cumulative_regret"] for s in (0, 1)]
        assert t["values"] == regrets and t["objective"] == pytest.approx(np.mean(regrets))
        assert 0 <= t["agent"]["alpha"] <= 3
    assert best["best_value"] == pytest.approx(min(t["objective"] for t in trials))
    winner = min(trials, key=lambda t: t["objective"])
    assert best["best_params"]["agent.alpha"] == pytest.approx(winner["agent"]["alpha"])
    # the sweep's report ranks the trials, each with its two seeds
    board = json.loads((out / "leaderboard.json").read_text())
    assert len(board["rows"]) == 3 and all(r["n_seeds"] == 2 for r in board["rows"])
    assert board["rows"][0]["metrics"]["cumulative_regret"]["mean"] == pytest.approx(best["best_value"])
