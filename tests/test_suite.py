"""The standard suite: its sweeps, and one real run with the README's policy joining it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recsim_causal.suite import SETTINGS, expected_runs, suite_commands

ROOT = Path(__file__).resolve().parents[1]


def test_suite_commands_cover_settings_agents_and_seeds(tmp_path):
    cmds = suite_commands(tmp_path, agents=["linucb", "ppo_bert"], added=["popular", "my_pkg.Mine"], seeds=3, steps=1000,
                          ppo_timesteps=5000, jobs=2, config_dir="my_conf", extra=["wandb.mode=disabled"], group="g")
    assert len(cmds) == 3  # named agents, PPO (its own training budget), the _target_ policy
    assert expected_runs(cmds) == 2 * 4 * 3 + 1 * 3 * 3 + 1 * 4 * 3
    for cmd in cmds:
        assert any(c.startswith("+setting=") for c in cmd) and "seed=0,1,2" in cmd and "experiment.steps=1000" in cmd
        assert cmd[cmd.index("--config-dir") + 1] == "my_conf" and cmd[-2] == "wandb.mode=disabled"
    assert "agent=linucb,popular" in cmds[0] and f"+setting={','.join(SETTINGS)}" in cmds[0]
    assert "agent=ppo_bert" in cmds[1] and "agent.total_timesteps=5000" in cmds[1]
    assert "+setting=bandit_default,bandit_confounded,session_default" in cmds[1]  # PPO: one item per decision
    assert "agent._target_=my_pkg.Mine" in cmds[2]
    for name in SETTINGS:  # every setting is a config of the setting group
        assert (ROOT / "conf" / "setting" / f"{name}.yaml").is_file()


@pytest.mark.slow
def test_suite_runs_with_the_readme_policy(tmp_path):
    from tests.docblocks import file_block

    block = lambda name: file_block(ROOT / "README.md", name)
    (tmp_path / "my_policy.py").write_text(block("my_policy.py"))
    (tmp_path / "my_conf" / "agent").mkdir(parents=True)
    (tmp_path / "my_conf" / "agent" / "popular.yaml").write_text(block("my_conf/agent/popular.yaml"))
    out = tmp_path / "suite"
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "suite.py"), "--agents", "random,linucb", "--config-dir",
                          "my_conf", "--add", "popular", "--seeds", "2", "--out", str(out), "--steps", "1024",
                          "env.num_envs=256", "env.n_items=20", "wandb.mode=disabled", "experiment.progress=false"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(tmp_path)})
    assert "suite:" in res.stdout, res.stderr[-3000:]
    rows = json.loads((out / "leaderboard.json").read_text())["rows"]
    settings = {r["setting"] for r in rows}
    assert len(settings) == 4 and res.stdout.count("### ") == 4
    for s in settings:
        labels = {r["label"] for r in rows if r["setting"] == s}
        assert {"LinUCB", "RandomPolicy"} <= labels
        if "slate size 1" in s:  # the README policy has no act_slate: it joins the one-item settings
            assert "GreedyByPopularity" in labels
    assert all(r["n_seeds"] == 2 for r in rows)
    assert (out / "curves.png").stat().st_size > 0 and (out / "leaderboard.png").stat().st_size > 0
