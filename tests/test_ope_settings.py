"""experiment=ope for slates (pbm and cascade) and sessions, end to end: ope.json, ope.png,
logged sessions, a real offline W&B run, sweeps and bad input."""

import json

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from recsim_causal.data import load_parquet
from recsim_causal.experiment.runner import run_job
from tests.test_runner import ROOT, run, wandb_summary

SLATE = ["env=slate", "scm=position_bias", "env.n_items=6", "env.slate_size=3", "experiment.slate.n_rounds=4000",
         "experiment.train_rounds=2000", "experiment.ci.n_bootstrap_samples=200"]
SESSION = ["env=session", "env.n_items=10", "env.max_steps=5", "experiment.session.n_trajectories=1500",
           "experiment.session.truth_trajectories=30000", "experiment.train_rounds=2000",
           "experiment.ci.n_bootstrap_samples=200"]
PNG = b"\x89PNG\r\n\x1a\n"


def _every_row_marked(path):
    """Strict JSON (no NaN/Infinity) in which every estimator row carries interval_valid, a
    reason when it is false, and its weight diagnostics."""
    def refuse(token):
        raise ValueError(f"{path}: {token} is not strict JSON")

    saved = json.loads(path.read_text(), parse_constant=refuse)
    for t in saved["targets"].values():
        for name, row in t["estimators"].items():
            assert isinstance(row["interval_valid"], bool), name
            assert row["interval_valid"] or row["invalid_reason"], name
            assert "n_rounds" in row["diagnostics"], name
            if row["estimate"] is None:
                assert row["invalid_reason"].startswith("estimate undefined"), name


def compose_ope(overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=["experiment=ope", "wandb.mode=disabled", *overrides])


def test_slate_pbm_run_estimates_every_target_against_the_exact_truth(tmp_path):
    summary = run_job(compose_ope(SLATE), tmp_path)
    saved = json.loads((tmp_path / "ope.json").read_text())
    assert saved["setting"] == "slate" and saved["click_model"] == "pbm" and saved["n_rounds"] == 4000
    assert set(saved["targets"]) == {"softmax/plackett_luce", "epsilon_greedy/plackett_luce", "linucb/greedy"}
    for name, t in saved["targets"].items():
        assert set(t["estimators"]) == {"sips", "iips", "rips", "snsips", "sniips", "snrips", "cascade-dr"}
        # K=6, L=3: 120 slates, the Plackett-Luce truth is enumerated; the greedy one is one slate
        assert t["truth_method"] == ("exact" if name.endswith("greedy") else "enumeration") and t["truth_se"] == 0
        assert {"sips", "iips", "rips"} <= set(t["diagnostics"]) and t["diagnostics"]["sips"]["n_rounds"] == 4000
    _every_row_marked(tmp_path / "ope.json")
    # a greedy target rarely matches a logged slate: the self-normalized estimates are 0/0 -> null with a reason
    greedy = saved["targets"]["linucb/greedy"]["estimators"]
    assert all(r["interval_valid"] is False for r in greedy.values())
    # IIPS's assumption is one the interval cannot check: never marked valid
    assert all(t["estimators"]["iips"]["invalid_reason"].startswith("assumes the independence")
               for t in saved["targets"].values())
    # IIPS is unbiased under the PBM: its interval holds the truth for the stochastic targets
    assert all(saved["targets"][n]["estimators"]["iips"]["covers"] for n in ("softmax/plackett_luce",
                                                                                "epsilon_greedy/plackett_luce"))
    assert (tmp_path / "ope.png").read_bytes()[:8] == PNG
    assert "sniips" in summary["table"] and "truth" in summary["table"]
    # the run saves its log: OBP's long format, read back as a slate log
    logged = load_parquet(tmp_path / "logged.parquet")
    assert logged.setting == "slate" and logged.n_rounds == 3 * 4000 and logged.metadata["click_model"] == "pbm"


def test_slate_cascade_from_the_command_line_with_an_offline_wandb_run(tmp_path):
    out = tmp_path / "run"
    res = run(["experiment=ope", *SLATE, "scm.slate.model=cascade", "experiment.slate.n_rounds=2000", f"hydra.run.dir={out}"])
    assert res.returncode == 0, res.stderr
    saved = json.loads((out / "ope.json").read_text())
    assert saved["click_model"] == "cascade"
    rips = saved["targets"]["softmax/plackett_luce"]["estimators"]["rips"]
    assert np.isfinite(rips["estimate"]) and rips["ci_low"] <= rips["ci_high"]
    w = wandb_summary(out)
    assert w["state"] == "finished" and w["summary"]["setting"] == "slate"
    assert w["summary"]["tables/ope"]["_type"] == "table-file" and w["summary"]["images/ope"]["_type"] == "image-file"
    rips_w = w["summary"]["ope/softmax/plackett_luce/rips/estimate"]  # per-estimator scalars
    assert rips_w == pytest.approx(rips["estimate"])


def test_session_run_logs_trajectories_and_compares_with_rollout_truth(tmp_path):
    out = tmp_path / "run"
    res = run(["experiment=ope", *SESSION, "experiment.logger.epsilon=1.0", f"hydra.run.dir={out}"])
    assert res.returncode == 0, res.stderr
    saved = json.loads((out / "ope.json").read_text())
    assert saved["setting"] == "session" and saved["n_rounds"] == 1500 and 1 <= saved["mean_session_length"] <= 5
    for t in saved["targets"].values():
        assert set(t["estimators"]) == {"dm", "tis", "pdis", "sntis", "snpdis", "dr", "sndr", "mis", "mdr"}
        assert t["estimators"]["dm"]["invalid_reason"].startswith("holds the reward model fixed")
        assert t["truth_se"] > 0 and t["truth_trajectories"] == 30000
        assert t["diagnostics"]["trajectory"]["n_rounds"] == 1500
    # a uniform logger (epsilon=1) and the uniform target: weights 1, and PDIS's bootstrap interval
    # over trajectories holds the rollout truth
    assert saved["targets"]["random"]["diagnostics"]["trajectory"]["max_weight"] == pytest.approx(1.0)
    assert saved["targets"]["random"]["estimators"]["pdis"]["covers"]
    # every weight 1: PDIS and MDR (weights refit in the bootstrap) are marked valid; MIS never is
    # (the observation is not the whole state: fatigue and interest drift are hidden)
    random = saved["targets"]["random"]["estimators"]
    assert all(random[e]["interval_valid"] for e in ("pdis", "mdr")), {e: random[e]["invalid_reason"] for e in random}
    assert random["mis"]["invalid_reason"].startswith("assumes the reward and the next state depend")
    assert random["mis"]["diagnostics"]["max_weight"] == pytest.approx(1.0, abs=0.05)
    _every_row_marked(out / "ope.json")
    logged = load_parquet(out / "logged.parquet")
    assert len(np.unique(logged.trajectory_id)) == 1500 and logged.n_rounds == saved["n_steps"]
    assert (out / "ope.png").read_bytes()[:8] == PNG
    w = wandb_summary(out)
    assert w["state"] == "finished" and w["summary"]["setting"] == "session"


def test_session_sweep_over_gamma_and_logger_epsilon(tmp_path):
    sweep = tmp_path / "sweep"
    small = [o for o in SESSION if "_trajectories=" not in o]
    res = run(["-m", "experiment=ope", *small, "experiment.session.n_trajectories=500",
               "experiment.session.truth_trajectories=5000", "experiment.session.targets=[random]",
               "experiment.session.gamma=1.0,0.8", "experiment.logger.epsilon=0.5", "wandb.mode=disabled",
               f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}"])
    assert res.returncode == 0, res.stderr
    gammas = sorted(json.loads(p.read_text())["gamma"] for p in sweep.glob("*/ope.json"))
    assert gammas == [0.8, 1.0]


@pytest.mark.parametrize("overrides, message", [
    ([*SLATE, "experiment.slate.estimators=[sips,sipz]"], r"^experiment.slate.estimators: unknown estimator 'sipz'"),
    ([*SLATE, "experiment.slate.targets=[{agent: random, slate: topk}]"], r"^experiment.slate.targets\[0\].slate: unknown slate policy 'topk'"),
    ([*SLATE, "experiment.slate.n_rounds=0"], r"^experiment.slate.n_rounds: expected an integer >= 1, got 0$"),
    ([*SESSION, "experiment.session.gamma=0"], r"^experiment.session.gamma: expected a number in \(0, 1\], got 0$"),
    ([*SESSION, "experiment.session.estimators=[pdis,wis]"], r"^experiment.session.estimators: unknown estimator 'wis'"),
])
def test_invalid_slate_and_session_settings(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        run_job(compose_ope(overrides), tmp_path)


def test_a_logged_session_parquet_is_evaluated_without_truth(tmp_path):
    first = tmp_path / "first"
    small = [o for o in SESSION if "_trajectories=" not in o]
    run_job(compose_ope([*small, "experiment.session.n_trajectories=600", "experiment.session.truth_trajectories=2000",
                         "experiment.session.targets=[random]"]), first)
    summary = run_job(compose_ope([*small, f"experiment.data={first / 'logged.parquet'}",
                                   "experiment.session.targets=[random,epsilon_greedy]"]), tmp_path / "second")
    assert summary["warning"] == "no truth: external data" and summary["n_rounds"] == 300
    for t in summary["targets"].values():
        assert t["truth"] is None and t["estimators"]["pdis"]["truth"] is None
        assert t["estimators"]["pdis"]["ci_low"] <= t["estimators"]["pdis"]["ci_high"]
    assert (tmp_path / "second" / "ope.png").read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match=r"^experiment.data: expected a .parquet log of sessions"):
        run_job(compose_ope([*small, f"experiment.data={tmp_path / 'nothing.csv'}"]), tmp_path / "third")


def test_slate_and_session_targets_are_labelled_and_never_merged(tmp_path):
    """Slate and session targets resolve like every experiment's: a mapping's ``name`` labels it,
    and two targets with one label are refused in one line naming both."""
    soft = "{_target_: recsim_causal.agents.Softmax, tau: 0.2}"
    with pytest.raises(ValueError, match=r"^experiment.slate.targets: items 0 and 1 are both labelled 'x'"):
        run_job(compose_ope(["env=slate", "scm=position_bias", "env.n_items=10", "experiment.train_rounds=200",
                             "experiment.slate.n_rounds=300",
                             f"experiment.slate.targets=[{{name: x, agent: {soft}}},{{name: x, agent: random}}]"]),
                tmp_path / "slate")
    with pytest.raises(ValueError, match=r"^experiment.session.targets: items 0 and 1 are both labelled 'Softmax\(tau=0.2\)'"):
        run_job(compose_ope(["env=session", "env.n_items=10", "experiment.train_rounds=200",
                             "experiment.session.n_trajectories=50", "experiment.session.truth_trajectories=50",
                             f"experiment.session.targets=[{soft},{soft}]"]), tmp_path / "session")


def test_a_slate_parquet_is_evaluated_by_the_experiment_as_evaluate_does(tmp_path):
    """experiment=ope env=slate experiment.data=<a simulate_log slate parquet>: the targets learn
    from the first half of the slates and evaluate() gives the same numbers on the second half."""
    from recsim_causal.agents import RandomPolicy
    from recsim_causal.agents.slate import GreedySlate, PlackettLuceSlate
    from recsim_causal.build import make_agent, resolve_agents
    from recsim_causal.data import save_parquet
    from recsim_causal.ope import evaluate, simulate_log

    log = simulate_log("position_bias", "random", 1200, slate_size=3, epsilon=0.2, n_items=6, seed=3, train_rounds=10)
    path = save_parquet(log.feedback, tmp_path / "slates.parquet")
    targets = "[{agent: random, slate: plackett_luce},{agent: softmax, slate: greedy, name: top}]"
    summary = run_job(compose_ope([*SLATE, f"experiment.data={path}", f"experiment.slate.targets={targets}",
                                   "experiment.slate.estimators=[sips,iips,rips,cascade-dr]"]), tmp_path / "out")
    assert summary["warning"] == "no truth: external data" and summary["n_rounds"] == 600
    # the same evaluation by hand: the second half of the file, the targets' agents taught its first half
    fb = load_parquet(path)
    first = fb.slate_id < 600
    softmax = make_agent(next(iter(resolve_agents(["softmax"]).values())), n_actions=6, dim=fb.dim_context, seed=2)
    softmax.update(fb.context[first], fb.action[first], fb.reward[first])
    mine = {"random/plackett_luce": PlackettLuceSlate(RandomPolicy(6, fb.dim_context), 3),
            "top": GreedySlate(softmax, 3)}
    again = evaluate(fb.subset(~first), mine, ["sips", "iips", "rips", "cascade-dr"], ci="bootstrap",
                     n_bootstrap_samples=200, seed=0)
    for name, block in again.targets.items():
        got = summary["targets"][name]
        assert got["truth"] is None
        for est, row in block["estimators"].items():
            assert got["estimators"][est]["estimate"] == row["estimate"], (name, est)
            assert got["estimators"][est]["ci_low"] == row["ci_low"], (name, est)
    # a uniform logger and target (epsilon mixes uniform with uniform): every weight is 1, SIPS is the
    # second half's mean slate reward exactly
    slate_reward = fb.reward[~first].reshape(-1, 3).sum(axis=1).mean()
    assert summary["targets"]["random/plackett_luce"]["estimators"]["sips"]["estimate"] == pytest.approx(slate_reward)
    saved = json.loads((tmp_path / "out" / "ope.json").read_text())
    assert saved["data"] == str(path) and saved["targets"]["top"]["estimators"]["sips"]["truth"] is None


@pytest.mark.parametrize("which, message", [
    ("one_item", r"^experiment.data: \S+ is a one-item log without the slate columns slate_id, position, "
                 r"pscore_cascade, pscore_item_position; expected a slate log"),
    ("no_item_position", r"^experiment.data: \S+ is a slate log without the slate columns pscore_item_position"),
    ("csv", r"^experiment.data: expected a .parquet slate log, got '\S+log.csv'$"),
])
def test_a_wrong_file_for_slate_ope_is_one_line(tmp_path, which, message):
    from recsim_causal.data import LoggedFeedback, save_parquet

    rng = np.random.default_rng(0)
    cols = dict(context=rng.normal(size=(6, 2)), action=np.array([0, 1, 2, 0, 2, 1]), reward=np.zeros(6),
                pscore=np.full(6, 1 / 6), n_actions=3)
    if which == "no_item_position":
        cols.update(position=np.tile([0, 1], 3), slate_id=np.repeat([0, 1, 2], 2), pscore_cascade=np.full(6, 0.5))
    path = tmp_path / ("log.csv" if which == "csv" else "log.parquet")
    if which == "csv":
        path.write_text("a,b\n")
    else:
        save_parquet(LoggedFeedback(**cols), path)
    with pytest.raises(ValueError, match=message):
        run_job(compose_ope([*SLATE, f"experiment.data={path}"]), tmp_path / "out")
