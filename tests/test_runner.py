"""The Hydra runner end to end: outputs, W&B offline runs, sweeps, launchers, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from recsim_causal.data import load_parquet
from recsim_causal.experiment.online import run_online
from recsim_causal.experiment.report import write_report
from recsim_causal.experiment.runner import run_job

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SMALL = ["experiment.steps=4096", "experiment.progress=false", "env.num_envs=512", "env.n_items=20"]


def run(args, cwd=ROOT, env=None, timeout=300):
    return subprocess.run([PY, str(ROOT / "scripts" / "run.py"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})


def wandb_summary(run_dir: Path) -> dict:
    """What the real offline W&B run recorded, read back with W&B's own inspector."""
    wandb_bin = Path(PY).with_name("wandb")
    out = subprocess.run([str(wandb_bin), "leet", "inspect", "--summary", "--json", str(run_dir / "wandb")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def compose_cfg(overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=[*SMALL, "wandb.mode=disabled", *overrides])


def test_single_run_writes_outputs_and_an_offline_wandb_run(tmp_path):
    out = tmp_path / "run"
    res = run(["agent=linucb", *SMALL, f"hydra.run.dir={out}"])
    assert res.returncode == 0, res.stderr
    assert "cumulative_regret" in res.stdout
    summary = json.loads((out / "summary.json").read_text())
    for key in ("agent", "env", "seed", "steps", "cumulative_reward", "cumulative_regret", "mean_reward",
                "oracle_mean_reward", "steps_per_s", "wall_s"):
        assert key in summary
    assert summary["agent"] == "LinUCB" and summary["steps"] == 4096
    assert 0 <= summary["mean_reward"] <= summary["oracle_mean_reward"] <= 1
    logged = load_parquet(out / "logged.parquet")
    assert logged.n_rounds == 4096 and logged.n_actions == 20
    assert np.isclose(logged.reward.sum(), summary["cumulative_reward"])
    assert logged.metadata["config"]["agent"]["_target_"] == "recsim_causal.agents.LinUCB"
    assert (out / "regret.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    w = wandb_summary(out)
    assert w["state"] == "finished" and w["exit_code"] == 0
    assert w["config"]["agent"]["alpha"] == 1.0 and w["config"]["seed"] == 0
    assert np.isclose(w["summary"]["cumulative_regret"], summary["cumulative_regret"])
    assert w["summary"]["images/regret"]["_type"] == "image-file"
    assert w["summary"]["online/step"] == 4096  # the learning curve was logged up to the last decision


def test_unreachable_wandb_never_fails_the_run(tmp_path):
    """Online mode against a W&B server that is not there (a closed loopback port)."""
    out = tmp_path / "run"
    res = run(["agent=linucb", *SMALL, "wandb.mode=online", "wandb.init_timeout=1", f"hydra.run.dir={out}"],
              env={"WANDB_API_KEY": "local-" + "0" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"})
    assert res.returncode == 0, res.stderr
    assert "wandb: tracking disabled for this run" in res.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == 4096


@pytest.mark.parametrize("model", ["pbm", "cascade"])
def test_slate_run_logs_one_row_per_slot(tmp_path, model):
    cfg = compose_cfg(["env=slate", "scm=position_bias", f"scm.slate.model={model}", "agent=linucb"])
    summary = run_job(cfg, tmp_path)
    logged = load_parquet(tmp_path / "logged.parquet")
    assert logged.n_rounds == 5 * summary["steps"]
    np.testing.assert_array_equal(logged.position[:10], [0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    assert np.isclose(logged.reward.sum(), summary["cumulative_reward"])
    assert 0 < summary["mean_reward"] <= summary["oracle_mean_reward"]
    slates = logged.action.reshape(-1, 5)
    assert np.all(np.diff(np.sort(slates, axis=1), axis=1) > 0)  # no item twice in a slate
    if model == "cascade":
        assert np.all(logged.reward.reshape(-1, 5).sum(axis=1) <= 1)


def _slate_run(tmp_path, agent, *more):
    cfg = compose_cfg(["env=slate", "scm=position_bias", "env.n_items=8", "env.slate_size=3", f"agent={agent}", *more])
    return cfg, run_job(cfg, tmp_path), load_parquet(tmp_path / "logged.parquet")


def test_an_online_slate_log_is_a_slate_log_with_exact_propensities(tmp_path):
    """An online slate log (a learning context-free epsilon-greedy agent dealing its own slates)
    is simulate_log's long format. Its propensities are checked against the slates the loop
    drew: within one vector step every user faces the same distribution, so each (item, slot)
    count of the step's 512 slates is binomial with the logged marginal (z-scores: mean square
    about 1), and E[1 / P(a_1..a_l)] = K! / (K - l)! (within 4 s.e.)."""
    _, summary, log = _slate_run(tmp_path, "epsilon_greedy")
    K, L, n, B = 8, 3, summary["steps"], 512
    assert log.setting == "slate" and log.n_rounds == L * n
    np.testing.assert_array_equal(log.slate_id, np.repeat(np.arange(n), L))  # consecutive across chunks
    np.testing.assert_array_equal(log.position, np.tile(np.arange(L), n))
    assert np.isclose(log.reward.sum(), summary["cumulative_reward"])
    cascade, marginal = log.pscore_cascade.reshape(n, L), log.pscore_item_position.reshape(n, L)
    np.testing.assert_array_equal(log.pscore, np.repeat(cascade[:, -1], L))  # the whole slate's, on every row
    slates, z = log.action.reshape(n, L), []
    for step in range(n // B):
        rows = slice(step * B, (step + 1) * B)
        for pos in range(L):
            p = np.zeros(K)
            p[slates[rows, pos]] = marginal[rows, pos]  # the step's marginals (the same for its users)
            assert np.allclose(p[slates[rows, pos]], marginal[rows, pos])
            count = np.bincount(slates[rows, pos], minlength=K)
            seen = p > 0
            z.extend((count[seen] - B * p[seen]) / np.sqrt(B * p[seen] * (1 - p[seen])))
            assert (count[~seen] == 0).all()
    z = np.asarray(z)
    assert np.abs(z).max() < 5 and 0.6 < np.mean(z**2) < 1.5, (np.abs(z).max(), np.mean(z**2))
    for pos, count in ((0, K), (1, K * (K - 1))):
        inv = 1 / cascade[:, pos]
        assert abs(inv.mean() - count) < 4 * inv.std(ddof=1) / np.sqrt(n), (pos, inv.mean())


def test_an_online_slate_log_is_evaluated_and_learned_from_as_slates(tmp_path):
    """A uniform logger's online slate log: evaluate() reads it as slates, and its estimate of the
    logger's own value is the logged mean slate reward (within 2 s.e.); fit() on it learns a
    Plackett-Luce slate policy worth more than the logger in the SCM."""
    from recsim_causal.build import world_from_config
    from recsim_causal.config import as_resolved
    from recsim_causal.learn import fit
    from recsim_causal.learn.slate import slate_value
    from recsim_causal.ope import evaluate

    cfg, summary, log = _slate_run(tmp_path, "random")
    path = tmp_path / "logged.parquet"
    result = evaluate(path, {"logger": {"agent": "random", "slate": "plackett_luce"}}, ["sips", "iips", "rips"],
                      ci="normal")
    assert result.setting == "slate" and result.n_rounds == summary["steps"]
    slate_reward = log.reward.reshape(-1, 3).sum(axis=1)
    se = slate_reward.std(ddof=1) / np.sqrt(len(slate_reward))
    for est, row in result.targets["logger"]["estimators"].items():
        assert abs(row["estimate"] - slate_reward.mean()) < 2 * se, (est, row["estimate"], slate_reward.mean())
    policy = fit(path, learner="ipw", n_epochs=5, seed=0)
    world = world_from_config(as_resolved(cfg))
    learned, learned_se = slate_value(world, policy, 20_000, np.random.default_rng(1))
    logger, logger_se = slate_value(world, _uniform_slates(world), 20_000, np.random.default_rng(1))
    assert learned - logger > 4 * np.hypot(learned_se, logger_se), (learned, logger)


def _uniform_slates(world):
    from recsim_causal.agents import RandomPolicy
    from recsim_causal.agents.slate import PlackettLuceSlate

    return PlackettLuceSlate(RandomPolicy(world.n_items, world.obs_dim), world.slate_size)


def test_multirun_sweep_then_leaderboard(tmp_path):
    sweep = tmp_path / "sweep"
    res = run(["-m", "agent=random,linucb", "seed=0,1", *SMALL, f"hydra.sweep.dir={sweep}"])
    assert res.returncode == 0, res.stderr
    summaries = sorted(sweep.glob("*/summary.json"))
    assert len(summaries) == 4
    table = write_report(sweep)
    assert table.index("LinUCB") < table.index("RandomPolicy")  # lower regret ranks first
    assert (sweep / "leaderboard.png").exists() and "| rank | config | seeds |" in (sweep / "leaderboard.md").read_text()
    names = {wandb_summary(p.parent)["name"] for p in summaries}  # W&B run names: agent, env, scm, seed
    assert names == {"random-bandit-default-seed0", "random-bandit-default-seed1", "linucb-bandit-default-seed0",
                     "linucb-bandit-default-seed1"}
    for name in names:  # under -m every summary line of a job starts with its name
        assert f"[{name}] cumulative_regret" in res.stdout
    rep = subprocess.run([PY, str(ROOT / "scripts" / "report.py"), str(sweep), "--force"], capture_output=True, text=True)
    assert rep.returncode == 0 and "| 1 | LinUCB | 2 |" in rep.stdout


def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path):
    sweep = tmp_path / "sweep"
    # a dozen overrides (the defaults' own values) make Hydra's job directory name ~300 bytes,
    # past the 255 a file name may have: it is cut to 200 plus a hash, in the worker processes too
    long = [f"scm.nodes.{k}={v}" for k, v in (("click.bias", -2.0), ("purchase.bias", -1.0), ("taste.scale", 1.0),
                                              ("affinity.scale", 1.5), ("price_effect.scale", -0.8),
                                              ("popularity_appeal.scale", -0.4), ("fatigue_effect.scale", -1.0),
                                              ("price_sensitivity.sigma", 0.5), ("taste_signal.noise", 0.5))]
    res = run(["-m", "hydra/launcher=joblib_local", "agent=epsilon_greedy,thompson", *SMALL, *long,
               "wandb.mode=disabled", f"hydra.sweep.dir={sweep}"])
    assert res.returncode == 0, res.stderr
    assert "Joblib" in res.stderr + res.stdout
    jobs = sorted(p.parent for p in sweep.glob("*/summary.json"))
    assert len(jobs) == 2 and len({p.name[-10:] for p in jobs}) == 2
    assert all(180 < len(p.name.encode()) <= 202 and p.name.startswith(f"{i}_agent=") for i, p in enumerate(jobs))
    lines = [line for line in res.stdout.splitlines() if "cumulative_regret" in line]
    assert len(lines) == 2 and all(line.startswith(("[epsilon_greedy-bandit-default-seed0] cumulative_regret",
                                                    "[thompson-bandit-default-seed0] cumulative_regret")) for line in lines)


@pytest.mark.slow
def test_ray_launcher_on_a_local_ray_instance(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    sweep = tmp_path / "sweep"
    res = run(["-m", "hydra/launcher=ray_local", "agent=linucb,thompson", *SMALL, f"hydra.sweep.dir={sweep}"],
              env={"RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in sweep.glob("*/summary.json")]
    assert sorted(s["agent"] for s in summaries) == ["LinUCB", "ThompsonSampling"]
    printed = res.stdout + res.stderr  # every job's summary reaches the console (no Ray log de-duplication)
    for job in ("linucb", "thompson"):
        assert f"[{job}-bandit-default-seed0] cumulative_regret" in printed, printed[-3000:]
    for p in sweep.glob("*/summary.json"):  # each Ray job finished its own W&B run
        assert wandb_summary(p.parent)["state"] == "finished"


def _readme_block(name: str) -> str:
    from tests.docblocks import file_block

    return file_block(ROOT / "README.md", name)


def test_readme_custom_policy_example_runs_against_linucb(tmp_path):
    """The README's 20-line policy, benchmarked against LinUCB exactly as README says."""
    (tmp_path / "my_policy.py").write_text(_readme_block("my_policy.py"))
    (tmp_path / "my_conf" / "agent").mkdir(parents=True)
    (tmp_path / "my_conf" / "agent" / "popular.yaml").write_text(_readme_block("my_conf/agent/popular.yaml"))
    assert len(_readme_block("my_policy.py").strip().splitlines()) <= 25
    sweep = tmp_path / "sweep"
    res = run(["-m", "--config-dir", "my_conf", "agent=linucb,popular", *SMALL, "wandb.mode=disabled",
               f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    agents = sorted(json.loads(p.read_text())["agent"] for p in sweep.glob("*/summary.json"))
    assert agents == ["GreedyByPopularity", "LinUCB"]


# ----------------------------------------------------------------------------- bad input


def test_unknown_agent_lists_the_options():
    res = run(["agent=linucbb", *SMALL])
    assert res.returncode != 0
    assert "Could not find 'agent/linucbb'" in res.stderr
    for name in ("epsilon_greedy", "linucb", "lin_thompson", "random", "softmax", "thompson"):
        assert name in res.stderr


def test_invalid_value_is_one_line_naming_the_field(tmp_path):
    res = run(["agent.alpha=-1", *SMALL, "wandb.mode=disabled", f"hydra.run.dir={tmp_path / 'r'}"])
    assert res.returncode == 2
    lines = [l for l in res.stderr.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "alpha" in lines[0] and "-1" in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "r" / "summary.json").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["agent.alpha=-1"], r"alpha"),
        (["agent=epsilon_greedy", "agent.epsilon=1.5"], r"epsilon"),
        (["experiment.steps=0"], r"^experiment.steps: expected an integer >= 1, got 0$"),
        (["env=slate", "scm=position_bias", "env.n_items=3"], r"^env.slate_size: expected an integer in \[1, n_items=3\], got 5"),
        (["env.num_envs=0"], r"^env.num_envs: expected an integer >= 1, got 0"),
        (["wandb.mode=sometimes"], r"^wandb.mode: expected one of offline, online, disabled, got 'sometimes'"),
        (["agent._target_=no_such_pkg.Policy"], r"^agent._target_: cannot import 'no_such_pkg.Policy'"),
    ],
)
def test_invalid_config_values(tmp_path, overrides, message):
    cfg = compose_cfg(overrides)
    with pytest.raises(ValueError, match=message) as e:
        run_job(cfg, tmp_path)
    assert "\n" not in str(e.value)
    assert not list(tmp_path.glob("*.json")) and not list(tmp_path.glob("*.parquet"))


def test_world_on_the_torch_backend_from_the_runner(tmp_path, capsys):
    """env.backend=torch: the world computes with torch, the runner and its agents see numpy."""
    summaries = {}
    for backend in ("numpy", "torch"):
        cfg = compose_cfg(["agent=linucb", f"env.backend={backend}", "env.dtype=float64"])
        summaries[backend] = run_job(cfg, tmp_path / backend)
    s = summaries["torch"]
    assert (s["env_backend"], s["env_device"]) == ("torch", "cpu") and summaries["numpy"]["env_backend"] == "numpy"
    assert "env: the world computes with torch on cpu" in capsys.readouterr().err
    assert s["steps"] == summaries["numpy"]["steps"] and 0 < s["mean_reward"] < 1
    # different noise streams, the same world: mean rewards within a few standard errors
    se = (0.25 / s["steps"]) ** 0.5 * 2
    assert abs(s["oracle_mean_reward"] - summaries["numpy"]["oracle_mean_reward"]) < 5 * se


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_for_without_cuda_is_one_line(tmp_path):
    cfg = compose_cfg(["agent=ppo_bert", "agent.device=cuda"])
    with pytest.raises(ValueError, match=r"^agent.device: 'cuda' was asked for, but torch .* sees no CUDA device") as e:
        run_job(cfg, tmp_path)
    assert "\n" not in str(e.value)


class NaNPolicy:
    """A user's broken policy: NaN probabilities."""

    def __init__(self, n_actions, dim, seed=0):
        self.n_actions = n_actions

    def action_probs(self, contexts):
        return np.full((len(contexts), self.n_actions), np.nan)

    def act(self, contexts, rng):
        return np.zeros(len(contexts), dtype=np.int64), np.full(len(contexts), np.nan)

    def update(self, contexts, actions, rewards):
        pass


class WrongShapePolicy(NaNPolicy):
    def action_probs(self, contexts):
        return np.full((len(contexts), self.n_actions + 1), 1 / (self.n_actions + 1))

    def act(self, contexts, rng):
        return np.zeros(len(contexts), dtype=np.int64), np.full(len(contexts), 1.0)


class InterruptedPolicy(NaNPolicy):
    """Acts uniformly; the user presses Ctrl-C after a few batches."""

    calls = 0

    def action_probs(self, contexts):
        return np.full((len(contexts), self.n_actions), 1 / self.n_actions)

    def act(self, contexts, rng):
        return rng.integers(0, self.n_actions, len(contexts)), np.full(len(contexts), 1 / self.n_actions)

    def update(self, contexts, actions, rewards):
        InterruptedPolicy.calls += 1
        if InterruptedPolicy.calls == 5:
            raise KeyboardInterrupt


@pytest.mark.parametrize("target, message", [("NaNPolicy", r"NaNPolicy.*NaN"), ("WrongShapePolicy", r"WrongShapePolicy.*shape")])
def test_broken_user_policy_is_named(tmp_path, target, message):
    cfg = compose_cfg(["agent=random", f"agent._target_=tests.test_runner.{target}"])
    with pytest.raises(ValueError, match=message):
        run_job(cfg, tmp_path)


def test_interrupted_run_leaves_no_half_written_file(tmp_path):
    cfg = compose_cfg(["agent=random", "agent._target_=tests.test_runner.InterruptedPolicy", "experiment.steps=20000"])
    with pytest.raises(KeyboardInterrupt):
        run_job(cfg, tmp_path)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- learning, checked


def _regret(agent: str, seed: int, out: Path, steps: int = 20_000) -> dict:
    extra = ["+agent.n_mc_draws=100"] if agent == "lin_thompson" else []  # MC pscores: fewer draws suffice here
    cfg = compose_cfg([f"agent={agent}", f"seed={seed}", f"experiment.steps={steps}", "env.num_envs=256",
                       "env.n_items=20", "experiment.curve_points=20", *extra])
    return run_online(cfg, out / f"{agent}_{seed}")


@pytest.mark.slow
def test_agents_rank_as_expected_on_the_default_world(tmp_path):
    """Over 3 seeds of 20,000 decisions: LinUCB and both Thompsons beat epsilon-greedy, which beats
    random, and LinUCB's regret in the second half of the run is smaller than in the first. (The
    closest pair, Thompson against epsilon-greedy, is ~6 standard errors of the difference of the
    3-seed means apart, and every seed ranks them the same way: a Thompson that stopped learning
    would sit with random.)"""
    regret = {a: [] for a in ("random", "epsilon_greedy", "thompson", "lin_thompson", "linucb")}
    for seed in range(3):
        for agent in regret:
            s = _regret(agent, seed, tmp_path)
            regret[agent].append(s["cumulative_regret"])
            if agent == "linucb":
                assert s["regret_second_half"] < s["regret_first_half"]
    mean = {a: np.mean(v) for a, v in regret.items()}
    assert mean["random"] > mean["epsilon_greedy"]
    for good in ("linucb", "lin_thompson", "thompson"):
        assert mean[good] < mean["epsilon_greedy"], (good, mean)


def test_regret_from_the_blockwise_oracle_equals_the_full_one(tmp_path):
    """env.oracle=best finds the best item without the (N, K) table: the same regret as "full";
    "chosen" has no best item, so the online experiment refuses it in one line."""
    full = run_job(compose_cfg(["agent=linucb", "env.oracle=full"]), tmp_path / "full")
    best = run_job(compose_cfg(["agent=linucb", "env.oracle=best"]), tmp_path / "best")
    assert best["cumulative_regret"] == pytest.approx(full["cumulative_regret"], rel=1e-6)  # float32 world
    with pytest.raises(ValueError, match=r"^env.oracle: the online experiment measures regret against the best item"):
        run_job(compose_cfg(["agent=linucb", "env.oracle=chosen"]), tmp_path / "chosen")
