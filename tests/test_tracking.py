"""What real offline W&B runs record, read back from their files with W&B's own inspector:
per-estimator scalars, images and tables under their own keys, the config the experiment used,
and PPO's training curves beside the online curves (each on its own step metric)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_runner import run, wandb_summary

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
def test_ppo_run_keeps_its_training_and_its_online_curves(tmp_path):
    """PPO trains 4,096 env steps, then the online loop makes 1,024 decisions: W&B's own step
    would have dropped the online points logged at steps below PPO's; each curve has its own."""
    out = tmp_path / "run"
    res = run(["agent=ppo_bert", "agent.device=cpu", "env.num_envs=64", "env.n_items=20", "agent.n_steps=8",
               "agent.batch_size=128", "agent.total_timesteps=4096", "experiment.steps=1024",
               "experiment.curve_points=8", "experiment.progress=false", f"hydra.run.dir={out}"], timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    rows = [r["history"]["item"] for r in wandb_records(out) if r.get("type") == "history"]
    ppo = [r for r in rows if "ppo/step" in r]
    online = [r for r in rows if "online/step" in r]
    assert max(r["ppo/step"] for r in ppo) >= 4096 > 1024
    assert any("ppo/train/entropy_loss" in r for r in ppo)
    # every point of the online curve summary.json holds reached W&B, with its own x
    assert [r["online/step"] for r in online] == summary["curve"]["steps"]
    assert np.allclose([r["online/cumulative_regret"] for r in online], summary["curve"]["cumulative_regret"])
    defs = [r["metric"] for r in wandb_records(out) if r.get("type") == "metric"]
    for name in ("online", "ppo"):
        assert any(d.get("glob_name") == f"{name}/*" and d.get("step_metric") == f"{name}/step" for d in defs)
    w = wandb_summary(out)["summary"]
    assert w["train_steps"] == summary["train_steps"] == 4096
