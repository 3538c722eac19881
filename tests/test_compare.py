"""The paired comparison (common random numbers): identical policies differ by exactly 0, the
paired A/B interval covers the world's true difference and is narrower than the unpaired one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

from recsim_causal.experiment.compare import run_compare

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["env.num_envs=256", "env.n_items=20", "experiment.progress=false", "wandb.mode=disabled"]


def cfg(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=["experiment=compare", *SMALL, *overrides])


def test_identical_policies_differ_by_exactly_zero_when_paired(tmp_path):
    """Same users, same noise, same draws: two copies of LinUCB are one run twice; run on
    their own users (unpaired) they differ."""
    out = run_compare(cfg("experiment.policies=[epsilon_greedy,{name: copy, _target_: recsim_causal.agents.EpsilonGreedy}]",
                          "experiment.steps=1024", "experiment.n_seeds=3", "experiment.eval_users=1000",
                          "experiment.truth_users=2000"), tmp_path)
    pair = out["pairs"][0]
    for m in ("mean_reward", "cumulative_regret", "final_value"):
        assert pair[m]["difference"] == 0 and pair[m]["ci_width"] == 0
        assert pair[m]["unpaired"]["ci_width"] > 0
    assert all(r["estimate"] == 0 and r["truth"] == 0 for r in pair["ab_test"]["replications"])
    a, b = (out["per_policy_unpaired"][k]["mean_reward"] for k in ("epsilon_greedy", "copy"))
    assert a != b


def test_paired_ci_covers_the_true_difference_and_is_narrower(tmp_path):
    """Over 20 replications (seeds): the paired 95% interval of the final policies' A/B test
    covers the exact V(a) - V(b) (binomial: >= 16 of 20 unless coverage is below ~0.9) and is
    narrower than the measured unpaired interval in every replication."""
    out = run_compare(cfg("experiment.policies=[linucb,epsilon_greedy]", "experiment.steps=512",
                          "experiment.n_seeds=20", "experiment.eval_users=2000", "experiment.truth_users=10000",
                          "experiment.unpaired=false"), tmp_path)
    tests = out["pairs"][0]["ab_test"]["replications"]
    assert len(tests) == 20
    assert sum(t["covers"] for t in tests) >= 16
    assert all(t["ci_width"] < t["unpaired_ci_width"] for t in tests)
    truths = np.array([t["truth"] for t in tests])
    estimates = np.array([t["estimate"] for t in tests])
    # the truth is each replication's own final policies' difference (exact V): estimates track it
    assert np.corrcoef(truths, estimates)[0, 1] > 0.5
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert saved["pairs"][0]["ab_test"]["coverage"] == np.mean([t["covers"] for t in tests])


def test_compare_from_the_command_line_and_bad_input(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, str(ROOT / "scripts" / "run.py"), "experiment=compare", *SMALL, *a],
                                    capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    res = run("experiment.policies=[random,thompson]", "experiment.steps=512", "experiment.n_seeds=2",
              "experiment.eval_users=500", "experiment.truth_users=1000", f"hydra.run.dir={tmp_path / 'run'}")
    assert res.returncode == 0, res.stderr
    assert "random - thompson" in res.stdout and "paired 95% CI" in res.stdout
    saved = json.loads((tmp_path / "run" / "compare.json").read_text())
    assert saved["policies"] == ["random", "thompson"] and saved["pairs"][0]["mean_reward"]["unpaired"]["ci_width"] > 0
    res = run("experiment.policies=[linucb]", f"hydra.run.dir={tmp_path / 'bad'}")
    assert res.returncode == 2 and "experiment.policies: expected a list of at least two agents" in res.stderr
    res = run("experiment.policies=[linucb,nosuch]", f"hydra.run.dir={tmp_path / 'bad2'}")
    assert res.returncode == 2 and "experiment.policies[1]: unknown agent 'nosuch'" in res.stderr
    res = run("env=session", f"hydra.run.dir={tmp_path / 'bad3'}")
    assert res.returncode == 2 and "experiment=compare runs Bandit-v0" in res.stderr


def test_slates_compare_without_final_value(tmp_path):
    out = run_compare(cfg("env=slate", "scm=position_bias", "experiment.policies=[random,linucb]", "experiment.steps=512",
                          "experiment.n_seeds=2", "experiment.unpaired=false"), tmp_path)
    pair = out["pairs"][0]
    assert pair["cumulative_regret"]["difference"] > 0  # random ranks worse than LinUCB
    assert "final_value" not in pair and "ab_test" not in pair
