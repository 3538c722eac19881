"""The OPE experiment on the real SCM: unbiasedness against the exact truth, confounding,
external data, and the Hydra app's outputs."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from recsim_causal.agents import LinUCB, RandomPolicy, Softmax
from recsim_causal import World
from recsim_causal.data import save_parquet
from recsim_causal.ope.simulate import collect, fresh_truth, train
from recsim_causal.experiment.runner import run_job
from recsim_causal.ope import DR, IPS, SNIPS, estimate_all, fit_predict, policy_value

ROOT = Path(__file__).resolve().parents[1]


def compose_ope(overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=["experiment=ope", "wandb.mode=disabled",
                                                         "experiment.ci.n_bootstrap_samples=200", *overrides])


@pytest.fixture(scope="module")
def trained():
    world = World("default", n_items=20, seed=0)
    logger = LinUCB(n_actions=20, dim=world.obs_dim, alpha=1.0, seed=0)
    train(world, logger, 5000, np.random.default_rng(1))
    target = Softmax(n_actions=20, dim=world.obs_dim, tau=0.1, linear=True, seed=1)
    train(world, target, 5000, np.random.default_rng(2))
    return world, logger, target


def test_ips_and_dr_are_unbiased_against_the_scm_truth(trained):
    """Over 40 independent logs: mean(estimate - truth on the logged users) within 3 s.e. of 0."""
    world, logger, target = trained
    errors = {"ipw": [], "dr": []}
    for rep in range(40):
        fb, _ = collect(world, logger, 2000, 0.3, np.random.default_rng(100 + rep))
        pi = target.action_probs(fb.context)
        q_hat = fit_predict(fb.context, fb.action, fb.reward, 20, base_model="ridge", features="interaction",
                            n_folds=2, random_state=rep)
        est = estimate_all([IPS(), DR()], reward=fb.reward, action=fb.action, pscore=fb.pscore, action_dist=pi,
                           estimated_rewards_by_reg_model=q_hat)
        truth = policy_value(pi, fb.expected_reward)
        for k in errors:
            errors[k].append(est[k] - truth)
    for k, e in errors.items():
        e = np.asarray(e)
        assert abs(e.mean()) < 3 * e.std(ddof=1) / np.sqrt(len(e)), (k, e.mean(), e.std())


def test_snips_is_consistent(trained):
    world, logger, target = trained
    err = []
    for n in (500, 20_000):
        fb, _ = collect(world, logger, n, 0.3, np.random.default_rng(7))
        pi = target.action_probs(fb.context)
        est = estimate_all([SNIPS()], reward=fb.reward, action=fb.action, pscore=fb.pscore, action_dist=pi)["snipw"]
        err.append(abs(est - policy_value(pi, fb.expected_reward)))
    assert err[1] < 0.05 and err[1] < err[0] + 0.01


def test_truth_on_logged_users_agrees_with_a_fresh_sample(trained):
    world, logger, target = trained
    fb, _ = collect(world, logger, 30_000, 0.1, np.random.default_rng(3))
    v_logged = policy_value(target.action_probs(fb.context), fb.expected_reward)
    v_fresh = fresh_truth(world, target, 30_000, np.random.default_rng(4))
    assert abs(v_logged - v_fresh) < 0.01  # two samples of the same E_x; per-user sd of V is < 0.4
    # the logged pscores are the logger's probabilities of the logged actions
    np.testing.assert_allclose(fb.pscore, fb.action_dist[np.arange(fb.n_rounds), fb.action])


@pytest.mark.slow
def test_confounded_world_tells_the_three_row_story_and_marks_intervals_invalid(tmp_path):
    cfg = compose_ope(["scm=confounded", "experiment.n_rounds=20000", "experiment.train_rounds=10000",
                       "experiment.targets=[random]", "experiment.use=[ipw,snipw,dm]", "env.n_items=50"])
    summary = run_job(cfg, tmp_path)
    assert summary["confounded"] and "intent_signal" in summary["warning"] and "intent" in summary["warning"]
    rows = summary["targets"]["random"]["estimators"]
    assert all(not r["interval_valid"] and "confounded" in r["invalid_reason"] for r in rows.values())
    story = summary["confounding"]["random"]
    ipw = story["estimators"]["ipw"]
    assert ipw["remaining"] == pytest.approx(ipw["naive_bias"] - ipw["oracle_bias"])
    se = rows["ipw"]["intervals"]["normal"]
    se = (se["ci_high"] - se["ci_low"]) / 3.92
    assert abs(ipw["oracle_bias"]) < 3 * se and abs(ipw["naive_bias"] - story["implied_ips_bias"]) < 3 * se
    assert summary["pscore"]["error_bound"] < 1e-3 and "closed form gaussian" in summary["pscore"]["method"]
    saved = json.loads((tmp_path / "ope.json").read_text())
    assert saved["confounded"] is True and "WARNING: confounded world" in summary["table"]
    assert "confounding random (ipw bias): with logged P(a|x)" in summary["table"]
    assert (tmp_path / "ope.png").exists()


def test_unconfounded_run_writes_ope_json_with_truth(tmp_path):
    cfg = compose_ope(["experiment.n_rounds=5000", "experiment.train_rounds=3000", "experiment.truth_users=5000",
                       "experiment.targets=[random,linucb]", "env.n_items=30"])
    summary = run_job(cfg, tmp_path)
    saved = json.loads((tmp_path / "ope.json").read_text())
    assert saved["confounded"] is False and saved["warning"] is None
    for target in ("random", "linucb"):
        rows = saved["targets"][target]["estimators"]
        assert set(rows) == {"dm", "ipw", "ipw-clip", "snipw", "dr", "sndr", "switch-dr", "dr-os", "sg-ipw", "mipw", "snmipw"}
        for r in rows.values():
            assert {"estimate", "ci_low", "ci_high", "truth", "error", "relative_error"} <= set(r)
            assert r["ci_low"] < r["ci_high"] and np.isfinite(r["estimate"])
    # DM: the refitting bootstrap is shown (wider than the fixed-model one) and never called valid
    dm = saved["targets"]["random"]["estimators"]["dm"]
    assert dm["interval_method"] == "bootstrap_refit" and dm["interval_valid"] is False
    fixed = dm["intervals"]["bootstrap"]
    assert dm["ci_high"] - dm["ci_low"] > fixed["ci_high"] - fixed["ci_low"]
    refit = dm["intervals"]["bootstrap_refit"]  # the refits' centre off the estimate is reported, in the table too
    assert refit["bootstrap_bias"] == pytest.approx(refit["refit_mean"] - dm["estimate"])
    assert "dm interval: bootstrap refits of the reward model" in summary["table"]
    assert f"{refit['bootstrap_bias']:+.4f} (random)" in summary["table"]
    for est in ("ipw", "snipw", "dr", "sndr"):  # quiet diagnostics: valid intervals
        assert saved["targets"]["random"]["estimators"][est]["interval_valid"] is True
    assert "diagnostics random: n 5,000" in summary["table"]
    # the uniform target is evaluated by IPS within its CI here
    assert saved["targets"]["random"]["estimators"]["ipw"]["covers"]
    assert abs(saved["targets"]["random"]["truth"] - saved["targets"]["random"]["truth_fresh_users"]) < 0.03


def test_external_parquet_log_is_evaluated_without_truth(tmp_path):
    world = World("default", n_items=10, seed=0)
    fb, _ = collect(world, RandomPolicy(n_actions=10, dim=world.obs_dim, seed=0), 4000, 0.0, np.random.default_rng(0))
    save_parquet(fb, tmp_path / "log.parquet")
    cfg = compose_ope([f"experiment.data={tmp_path / 'log.parquet'}", "experiment.targets=[epsilon_greedy]"])
    summary = run_job(cfg, tmp_path / "out")
    assert summary["warning"] == "no truth: external data"
    rows = summary["targets"]["epsilon_greedy"]["estimators"]
    assert "mipw" not in rows and rows["ipw"]["ci_low"] <= rows["ipw"]["estimate"]
    assert summary["targets"]["epsilon_greedy"]["truth"] is None


def test_open_bandit_dataset_folder_is_evaluated_without_truth(tmp_path):
    from tests.test_data_obp import write_obd_folder

    folder, *_ = write_obd_folder(tmp_path, n=3000, K=10)
    summary = run_job(compose_ope([f"experiment.data={folder}", "experiment.targets=[random]"]), tmp_path / "out")
    rows = summary["targets"]["random"]["estimators"]
    assert summary["n_rounds"] == 1500 and summary["warning"] == "no truth: external data"
    # OBD's random logger and a uniform target: IPS is the click rate of the evaluated half
    assert rows["ipw"]["ci_low"] <= rows["ipw"]["estimate"] <= rows["ipw"]["ci_high"]
    assert 0.1 < rows["ipw"]["estimate"] < 0.3


@pytest.mark.parametrize("overrides, message", [
    (["experiment.n_rounds=0"], r"^experiment.n_rounds: expected an integer > 0, got 0$"),
    (["experiment.logger.epsilon=1.5"], r"^experiment.logger.epsilon: expected a number in \[0, 1\]"),
    (["experiment.targets=[linucbb]"], r"^experiment.targets\[0\]: unknown agent 'linucbb' \(known: "),
    (["experiment.use=[ipw,dr2]"], r"^experiment.use: unknown estimator 'dr2'"),
    (["experiment.data=/nonexistent/log.csv"], r"^experiment.data: expected a .parquet log or an Open Bandit"),
])
def test_invalid_ope_settings(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        run_job(compose_ope(overrides), tmp_path)


def test_ope_sweep_from_the_command_line(tmp_path):
    sweep = tmp_path / "sweep"
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "run.py"), "-m", "experiment=ope",
                          "experiment.n_rounds=500,1000", "experiment.train_rounds=500", "experiment.truth_users=1000",
                          "experiment.targets=[random]", "experiment.use=[ipw,dr]", "experiment.ci.n_bootstrap_samples=20",
                          "experiment.ci.dm_refits=2", "env.n_items=20",
                          "wandb.mode=disabled", f"hydra.sweep.dir={sweep}"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    runs = sorted(json.loads(p.read_text())["n_rounds"] for p in sweep.glob("*/ope.json"))
    assert runs == [500, 1000]
    assert "ipw" in res.stdout and "truth" in res.stdout


def test_a_long_log_is_streamed_to_disk_and_evaluated_in_one_pass(tmp_path):
    """Above experiment.stream_above rounds the log goes to logged.parquet chunk by chunk (the same
    rounds simulate_log draws) and is evaluated streamed; estimates cover the exact truth."""
    from recsim_causal.data import load_parquet
    from recsim_causal.ope import simulate_log

    cfg = compose_ope(["experiment.n_rounds=70000", "experiment.stream_above=50000", "experiment.stream_fit_rows=5000",
                       "experiment.train_rounds=1000", "experiment.truth_users=20000", "env.n_items=10",
                       "experiment.targets=[random]", "experiment.use=[dm,ipw,snipw,dr,mipw]",
                       "experiment.ci.more_methods=[normal]"])
    summary = run_job(cfg, tmp_path / "out")
    assert summary["streamed"]["left_out"] == ["dm_refits"] and summary["n_rounds"] == 65_000
    saved = json.loads((tmp_path / "out" / "ope.json").read_text())  # DM's refits: null, with the reason
    assert saved["targets"]["random"]["estimators"]["dm"]["intervals"]["bootstrap_refit"] is None
    assert saved["nulls"]["targets.random.estimators.dm.intervals.bootstrap_refit"].startswith("not in a streamed run")
    log = load_parquet(tmp_path / "out" / "logged.parquet")
    assert log.n_rounds == 70_000
    same = simulate_log("default", "linucb", 70_000, epsilon=cfg.experiment.logger.epsilon, seed=0,
                        train_rounds=1000, n_items=10)
    np.testing.assert_array_equal(log.action, same.feedback.action)  # written chunk by chunk, drawn alike
    truth = float(same.feedback.expected_reward[5000:].mean())  # the uniform policy on the evaluated rows
    rows = summary["targets"]["random"]["estimators"]
    assert set(rows) == {"dm", "ipw", "snipw", "dr", "mipw"}
    for r in (rows[k] for k in ("ipw", "snipw", "dr")):
        assert r["truth"] == pytest.approx(truth, rel=1e-9)
        assert r["intervals"]["normal"]["ci_low"] <= truth <= r["intervals"]["normal"]["ci_high"]
    # MIPS by hand on the same rows: the uniform target's share of the logged item's topic over the logger's
    topic, fb = same.world.catalog.topic, same.feedback.subset(slice(5000, None))
    same_topic = topic[None, :] == topic[fb.action][:, None]
    w = same_topic.mean(axis=1) / (fb.action_dist * same_topic).sum(axis=1)
    assert rows["mipw"]["estimate"] == pytest.approx(float((w * fb.reward).mean()), rel=1e-9)
