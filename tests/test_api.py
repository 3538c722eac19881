"""The Python API: simulate_log -> SimulatedLog -> evaluate -> OPEResult, target resolution,
result files, the experiment registry."""

import json
import math

import numpy as np
import pytest

from recsim_causal.agents import RandomPolicy
from recsim_causal.build import agent_config, resolve_agents
from recsim_causal.ope import OPEResult, SimulatedLog, evaluate, simulate_log
from recsim_causal.results import read_result, write_result


@pytest.fixture(scope="module")
def log() -> SimulatedLog:
    return simulate_log("default", "linucb", 20_000, epsilon=0.3, seed=0, train_rounds=2_000, n_items=10)


def test_simulated_log_truth_is_exact_on_the_logged_users(log):
    fb = log.feedback
    assert fb.n_rounds == 20_000 and fb.expected_reward.shape == (20_000, 10)
    # the uniform policy's value on the logged users is the mean oracle reward over all items
    assert log.truth("random") == pytest.approx(float(fb.expected_reward.mean()), rel=1e-12)
    # the logged pscore is the logger's distribution at the logged action, with epsilon mixed in
    assert np.all(fb.action_dist >= 0.3 / 10 - 1e-12)
    np.testing.assert_allclose(fb.pscore, fb.action_dist[np.arange(fb.n_rounds), fb.action])


def test_population_truth_against_monte_carlo(log):
    value, se = log.population_truth("random", n_users=50_000, seed=1)
    # independent: realized rewards of uniformly drawn actions on other fresh users
    rng = np.random.default_rng(123)
    users = log.world.sample_users(200_000, rng)
    rewards = log.world.respond(users, rng.integers(0, 10, 200_000)).reward
    mc_se = rewards.std() / math.sqrt(len(rewards))
    assert abs(value - rewards.mean()) < 4 * math.hypot(se, mc_se)
    assert 0 < se < 0.01


def test_evaluate_estimates_cover_the_truth(log):
    result = evaluate(log, ["random", {"_target_": "recsim_causal.agents.Softmax", "tau": 0.2, "name": "soft"}],
                      ["ipw", "snipw", "dr"], ci="normal", seed=0)
    assert isinstance(result, OPEResult) and result.setting == "one_item" and result.n_rounds == 20_000
    frame = result.to_frame()
    for col in ("target", "estimator", "estimate", "ci_low", "ci_high", "interval_valid", "truth", "error"):
        assert col in frame.columns
    assert sorted(frame.target.unique()) == ["random", "soft"] and len(frame) == 6
    truth_random = float(log.feedback.expected_reward.mean())
    for r in result.records:
        half = (r.ci_high - r.ci_low) / 2
        assert 0 < half < 0.05
        assert r.interval_valid
        assert abs(r.estimate - r.truth) <= 1.5 * half  # 1.5 x the 95% half-width: about 3 s.e.
        assert r.error == pytest.approx(r.estimate - r.truth)
        if r.target == "random":
            assert r.truth == pytest.approx(truth_random, rel=1e-12)
    assert "random" in result.table() and "diagnostics soft" in result.table()


def test_evaluate_a_policy_object_on_a_bare_log(log, tmp_path):
    path = log.save(tmp_path / "log.parquet")
    uniform = RandomPolicy(n_actions=10)
    by_path = evaluate(path, {"uniform": uniform}, ["ipw"], ci="normal")
    in_memory = evaluate(log.feedback, {"uniform": uniform}, ["ipw"], ci="normal")
    assert by_path.records[0].estimate == pytest.approx(in_memory.records[0].estimate, rel=1e-12)
    assert by_path.records[0].truth == pytest.approx(log.truth(uniform), rel=1e-12)


def test_result_files_are_strict_and_versioned(log, tmp_path):
    result = evaluate(log, ["random"], ["ipw"], ci="normal")
    path = result.to_json(tmp_path / "ope.json")
    kind, record = read_result(path)
    assert kind == "ope" and record["schema"] == {"kind": "ope", "version": 1}
    assert record["records"][0]["estimate"] == pytest.approx(result.records[0].estimate)
    result.plot(tmp_path / "ope.png")
    assert (tmp_path / "ope.png").stat().st_size > 1000

    write_result(tmp_path / "x.json", "ope", {"targets": {"a": {"error": float("nan"), "w": float("inf")}}})
    raw = json.loads((tmp_path / "x.json").read_text())  # strict JSON: no NaN tokens
    assert raw["targets"]["a"] == {"error": None, "w": None}
    assert raw["nulls"] == {"targets.a.error": "nan", "targets.a.w": "inf"}

    (tmp_path / "y.json").write_text(json.dumps({"schema": {"kind": "ope", "version": 99}, "targets": {}}))
    with pytest.raises(ValueError, match=r"y\.json: ope schema version 99 is not supported"):
        read_result(tmp_path / "y.json")
    (tmp_path / "ope2.json").write_text(json.dumps({"schema": {"kind": "ope", "version": 1}}))
    with pytest.raises(ValueError, match=r"ope2\.json: not a ope result \(missing targets\)"):
        read_result(tmp_path / "ope2.json")


def test_targets_resolve_with_labels_and_are_never_merged(tmp_path):
    soft = "recsim_causal.agents.Softmax"
    two = resolve_agents([{"_target_": soft, "tau": 0.02, "name": "cold"}, {"_target_": soft, "tau": 0.1, "name": "warm"}])
    assert list(two) == ["cold", "warm"] and two["cold"]["tau"] == 0.02 and "name" not in two["cold"]
    unnamed = resolve_agents([{"_target_": soft, "tau": 0.02}, {"_target_": soft, "tau": 0.1}])
    assert list(unnamed) == ["Softmax(tau=0.02)", "Softmax(tau=0.1)"]
    with pytest.raises(ValueError, match=r"^targets: items 0 and 2 are both labelled 'x' \(give each its own name"):
        resolve_agents([{"_target_": soft, "name": "x"}, "random", {"_target_": soft, "tau": 0.1, "name": "x"}])
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "softlin.yaml").write_text(f"_target_: {soft}\ntau: 0.3\n")
    assert agent_config("softlin", config_dir=tmp_path) == {"_target_": soft, "tau": 0.3}
    with pytest.raises(ValueError, match=r"^targets\[0\]: unknown agent 'nosuch' \(known: .*softlin"):
        resolve_agents(["nosuch"], config_dir=tmp_path)


def test_registry_maps_experiment_and_setting_to_one_runner(monkeypatch):
    from recsim_causal.experiment import registry

    monkeypatch.setitem(registry.RUNNERS, ("probe", "slate"), "recsim_causal.experiment.online:run_online")

    @registry.register("probe", "session")
    def run_probe(cfg, out_dir, tracker):
        return {"ran": True}

    try:
        assert registry.runner_for("probe", "session") is run_probe
        assert registry.runner_for("probe", "slate").__name__ == "run_online"
        with pytest.raises(ValueError, match=r"^env: experiment=probe runs in the settings"):
            registry.runner_for("probe", "one_item")
    finally:
        registry.RUNNERS.pop(("probe", "session"), None)
    assert registry.setting_of({"env": {"id": "RecSimCausal/Session-v0"}}) == "session"
    assert registry.setting_of({"env": {"id": "RecSimCausal/Bandit-v0", "slate_size": 5}}) == "slate"
    assert registry.setting_of({"env": {"slate_size": 1}, "experiment": {"data": "x.parquet"}}) == "one_item"
    assert registry.setting_of({"env": {"slate_size": 5}, "experiment": {"data": "x.parquet"}}) == "slate"
    with pytest.raises(ValueError, match=r"^experiment.name: expected one of online, ope"):
        registry.runner_for("nope", "one_item")


SOFTLIN = '''
import numpy as np


class SoftLin:
    """A user's policy: softmax over a fixed linear score of the context, temperature tau."""

    def __init__(self, n_actions, dim, seed=0, tau=0.1):
        self.n_actions, self.tau = n_actions, tau
        self.w = np.random.default_rng(seed).normal(size=(dim, n_actions))

    def action_probs(self, contexts):
        z = contexts @ self.w / max(self.tau, 1e-9) / 100
        p = np.exp(z - z.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    def act(self, contexts, rng):
        p = self.action_probs(contexts)
        a = (p.cumsum(axis=1) < rng.random((len(p), 1))).sum(axis=1).clip(max=self.n_actions - 1)
        return a, p[np.arange(len(a)), a]

    def update(self, contexts, actions, rewards):
        pass
'''


def test_custom_policy_through_config_dir_as_ope_targets(tmp_path):
    """A user's module + my_conf/agent/softlin.yaml: an OPE target by name, and two named
    inline variants of the class: three rows each, never merged."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "softlin_policy.py").write_text(SOFTLIN)
    (tmp_path / "my_conf" / "agent").mkdir(parents=True)
    (tmp_path / "my_conf" / "agent" / "softlin.yaml").write_text("_target_: softlin_policy.SoftLin\ntau: 0.05\n")
    run_py = Path(__file__).resolve().parents[1] / "scripts" / "run.py"
    targets = ("[softlin,{name: cold, _target_: softlin_policy.SoftLin, tau: 0.02},"
               "{name: warm, _target_: softlin_policy.SoftLin, tau: 0.1}]")
    res = subprocess.run(
        [sys.executable, str(run_py), "--config-dir", str(tmp_path / "my_conf"), "experiment=ope", f"experiment.targets={targets}",
         "experiment.n_rounds=2000", "experiment.train_rounds=300", "experiment.truth_users=1000", "env.n_items=10",
         "experiment.use=[ipw,dr]", "experiment.ci.dm_refits=0", "experiment.ci.n_bootstrap_samples=50",
         "experiment.ci.more_methods=[]", "wandb.mode=disabled", f"hydra.run.dir={tmp_path / 'out'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr
    _, saved = read_result(tmp_path / "out" / "ope.json")
    assert list(saved["targets"]) == ["softlin", "cold", "warm"]
    assert all(len(t["estimators"]) == 2 for t in saved["targets"].values())
    truths = [saved["targets"][k]["truth"] for k in ("softlin", "cold", "warm")]
    assert len(set(truths)) == 3  # three different policies
    assert (tmp_path / "out" / "logged.parquet").is_file()  # the run saved its log
    res = subprocess.run(
        [sys.executable, str(run_py), "--config-dir", str(tmp_path / "my_conf"), "experiment=ope",
         "experiment.targets=[{name: x, _target_: softlin_policy.SoftLin},{name: x, _target_: softlin_policy.SoftLin, tau: 1.0}]",
         "wandb.mode=disabled", f"hydra.run.dir={tmp_path / 'bad'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 2
    assert "experiment.targets: items 0 and 1 are both labelled 'x'" in res.stderr
