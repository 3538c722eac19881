"""What real offline W&B runs record, read back from their files with W&B's own inspector:
per-estimator scalars, images and tables under their own keys, the config the experiment used,
and PPO's training curves beside the online curves (each on its own step metric)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_runner import SMALL, run, wandb_summary

SMALL_OPE = ["experiment=ope", "env.n_items=10", "env.num_envs=256", "experiment.n_rounds=1500",
             "experiment.train_rounds=1500", "experiment.truth_users=3000", "experiment.ci.n_bootstrap_samples=30",
             "experiment.ci.dm_refits=2", "experiment.targets=[random,softmax]", "experiment.use=[dm,ipw,dr]",
             "experiment.ci.more_methods=[]"]


def wandb_records(run_dir: Path) -> list[dict]:
    """Every record of the run's .wandb transaction log (history rows, metric definitions, ...)."""
    out = subprocess.run([str(Path(sys.executable).with_name("wandb")), "leet", "inspect", "--json",
                          str(run_dir / "wandb")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_ope_run_has_per_estimator_scalars_and_only_the_config_it_used(tmp_path):
    out = tmp_path / "run"
    res = run([*SMALL_OPE, f"hydra.run.dir={out}"])
    assert res.returncode == 0, res.stderr[-3000:]
    saved = json.loads((out / "ope.json").read_text())
    w = wandb_summary(out)
    s = w["summary"]
    for target, t in saved["targets"].items():
        for est, e in t["estimators"].items():
            key = f"ope/{target}/{est}"
            assert s[f"{key}/estimate"] == pytest.approx(e["estimate"]) and s[f"{key}/error"] == pytest.approx(e["error"])
            assert s[f"{key}/covers"] == int(e["covers"]) and s[f"{key}/valid"] == int(e["interval_valid"])
            assert s[f"{key}/width"] == pytest.approx(e["ci_high"] - e["ci_low"])
    assert {f"ope/{t}/{e}/estimate" for t in ("random", "softmax") for e in ("dm", "ipw", "dr")} <= set(s)
    assert s["images/ope"]["_type"] == "image-file" and s["tables/ope"]["_type"] == "table-file"
    assert "agent" not in w["config"] and w["config"]["experiment"]["logger"]["agent"] == "linucb"


@pytest.mark.slow
def test_ppo_bert_trains_then_runs_and_keeps_its_training_and_its_online_curves(tmp_path):
    """PPO over MiniLM embeddings of the catalog texts, trained 60,000 env steps from the runner,
    then run like any agent (4,096 decisions), beating random clearly. W&B's own step would have
    dropped the online points logged at steps below PPO's; each curve has its own."""
    out = tmp_path / "run"
    res = run(["agent=ppo_bert", "agent.total_timesteps=60000", "agent.device=cpu", *SMALL, "experiment.curve_points=8",
               f"hydra.run.dir={out}"], timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    assert s["agent"] == "PPOBert" and s["train_steps"] == 60000 and s["device"] == "cpu"
    assert "PPOBert: training on cpu (device=cpu)" in res.stderr
    curves = s["train_curves"]  # SB3's curves, without +agent.verbose=1
    assert curves["steps"][-1] >= 60000 and len(curves["steps"]) == len(curves["train/entropy_loss"]) > 3
    rnd = run(["agent=random", *SMALL, "wandb.mode=disabled", f"hydra.run.dir={tmp_path / 'random'}"])
    assert rnd.returncode == 0, rnd.stderr
    r = json.loads((tmp_path / "random" / "summary.json").read_text())
    assert s["mean_reward"] > r["mean_reward"] + 0.1  # beats random clearly
    rows = [r["history"]["item"] for r in wandb_records(out) if r.get("type") == "history"]
    ppo = [r for r in rows if "ppo/step" in r]
    online = [r for r in rows if "online/step" in r]
    assert max(r["ppo/step"] for r in ppo) >= 60000 > max(s["curve"]["steps"])
    assert any("ppo/train/entropy_loss" in r for r in ppo)
    # every point of the online curve summary.json holds reached W&B, with its own x
    assert [r["online/step"] for r in online] == s["curve"]["steps"]
    assert np.allclose([r["online/cumulative_regret"] for r in online], s["curve"]["cumulative_regret"])
    defs = [r["metric"] for r in wandb_records(out) if r.get("type") == "metric"]
    for name in ("online", "ppo"):
        assert any(d.get("glob_name") == f"{name}/*" and d.get("step_metric") == f"{name}/step" for d in defs)
    w = wandb_summary(out)["summary"]
    assert w["agent"] == "PPOBert" and w["train_steps"] == s["train_steps"] == 60000
