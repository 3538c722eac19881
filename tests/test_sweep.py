"""A sweep leaves its report when it ends and keeps every sweep's multirun.yaml (real Hydra
multiruns through scripts/run.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["experiment.steps=2048", "experiment.progress=false", "env.num_envs=256", "env.n_items=20",
         "wandb.mode=disabled", "experiment.save_log=false"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "run.py"), *args], cwd=cwd, capture_output=True,
                         text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_two_sweeps_into_one_dir_keep_both_multirun_yaml_and_report_both(tmp_path):
    out = tmp_path / "sweep"
    first = run("-m", "agent=random,linucb", "seed=0", *SMALL, f"hydra.sweep.dir={out}", cwd=tmp_path)
    assert f"report: {out}: leaderboard.md" in first.stdout
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["written_by"] == "sweep" and board["n_runs"] == 2
    assert sorted(r["n_seeds"] for r in board["rows"]) == [1, 1]
    # the table ranks what the runs' summaries say: LinUCB has less regret than random here
    regret = {yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text())[0]:
              json.loads((d / "summary.json").read_text())["cumulative_regret"] for d in out.glob("*_agent=*")}
    best = min(regret, key=regret.get)
    assert best == "agent=linucb" and board["rows"][0]["label"].startswith("LinUCB")
    assert "\n| 1 | LinUCB" in (out / "leaderboard.md").read_text()

    second = run("-m", "agent=random,linucb", "seed=1", *SMALL, f"hydra.sweep.dir={out}", cwd=tmp_path)
    assert "multirun.yaml is kept as multirun-" in second.stderr
    kept = sorted(out.glob("multirun*.yaml"))
    assert len(kept) == 2
    seeds = sorted(next(o for o in yaml.safe_load(p.read_text())["hydra"]["overrides"]["task"] if o.startswith("seed="))
                   for p in kept)
    assert seeds == ["seed=0", "seed=1"]  # both sweeps' command lines
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["n_runs"] == 4 and sorted(r["n_seeds"] for r in board["rows"]) == [2, 2]
    # an automatic report is replaced by recsim-report without --force; recsim-report's own is not
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "report.py"), str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "leaderboard.json").read_text())["written_by"] == "recsim-report"
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "report.py"), str(out)], capture_output=True, text=True)
    assert res.returncode == 2 and "--force" in res.stderr
