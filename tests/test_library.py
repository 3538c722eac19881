"""Issue 8: the project installs like a library and fails well.

Each test pins one defect's fix: the wheel outside the repo, strict configs, one-line errors
for config and input mistakes, tracebacks for user code, run directories that are never
mixed, atomic writes under SIGTERM with the umask's mode, and a log that streams to disk.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SMALL = ["experiment.steps=4096", "experiment.progress=false", "env.num_envs=512", "env.n_items=20",
         "wandb.mode=disabled"]


def run(args, cwd, env=None, timeout=300):
    return subprocess.run([PY, str(ROOT / "scripts" / "run.py"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})


def error_lines(res) -> list[str]:
    return [line for line in res.stderr.strip().splitlines() if line.startswith("error:")]


# ----------------------------------------------------------------------------- installable


@pytest.mark.slow
def test_wheel_installs_outside_the_repo_and_runs(tmp_path):
    """Build the wheel, install it into a fresh venv outside the repo (dependencies from this
    venv by a path entry, so nothing of the checkout is importable), then load every preset,
    make an env by the Gymnasium entry-point convention and run the console command."""
    dist = tmp_path / "dist"
    build = subprocess.run([PY, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                            str(ROOT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    assert "Deprecat" not in build.stderr, build.stderr
    wheel = next(dist.glob("recsim_causal-*.whl"))
    top = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {n for n in top if not n.endswith(".dist-info")} == {"recsim_causal"}, top

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next(venv.glob("lib/python*/site-packages"))
    ours = next(Path(PY).parent.parent.glob("lib/python*/site-packages"))
    (site / "deps.pth").write_text(f"{ours}\n")  # a plain path: the checkout's editable finder is not loaded
    vpy = venv / "bin" / "python"
    inst = subprocess.run([str(vpy), "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    script = textwrap.dedent("""
        import sys
        import gymnasium as gym, recsim_causal
        from recsim_causal import World
        assert recsim_causal.__file__.startswith(sys.argv[1]), recsim_causal.__file__
        for preset in ("default", "confounded", "position_bias"):
            World(preset)
        env = gym.make("recsim_causal.envs:RecSimCausal/Bandit-v0")
        obs, info = env.reset(seed=0)
        print("ok", obs.shape)
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    res = subprocess.run([str(vpy), "-c", script, str(site)], cwd=work, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0 and "ok (16,)" in res.stdout, res.stderr
    res = subprocess.run([str(venv / "bin" / "recsim-run"), "agent=random", "experiment.steps=4096",
                          "wandb.mode=disabled", "experiment.progress=false", f"hydra.run.dir={work / 'run'}"],
                         cwd=work, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads((work / "run" / "summary.json").read_text())["steps"] == 4096
    # a user's policy module + my_conf/agent/softlin.yaml, an OPE target of the installed command by
    # name (--config-dir) beside a named inline variant of the same class: two rows
    from tests.test_api import SOFTLIN

    (work / "softlin_policy.py").write_text(SOFTLIN)
    (work / "my_conf" / "agent").mkdir(parents=True)
    (work / "my_conf" / "agent" / "softlin.yaml").write_text("_target_: softlin_policy.SoftLin\ntau: 0.05\n")
    res = subprocess.run([str(venv / "bin" / "recsim-run"), "--config-dir", str(work / "my_conf"), "experiment=ope",
                          "experiment.targets=[softlin,{name: warm, _target_: softlin_policy.SoftLin, tau: 0.1}]",
                          "experiment.n_rounds=2000", "experiment.train_rounds=300", "experiment.truth_users=1000",
                          "env.n_items=10", "experiment.use=[ipw]", "experiment.ci.dm_refits=0",
                          "experiment.ci.method=normal", "experiment.ci.more_methods=[]", "wandb.mode=disabled",
                          f"hydra.run.dir={work / 'ope'}"],
                         cwd=work, capture_output=True, text=True, timeout=300, env={**env, "PYTHONPATH": str(work)})
    assert res.returncode == 0, res.stderr
    targets = json.loads((work / "ope" / "ope.json").read_text())["targets"]
    assert list(targets) == ["softlin", "warm"] and targets["softlin"]["truth"] != targets["warm"]["truth"]


# ----------------------------------------------------------------------------- strict configs


@pytest.mark.parametrize("overrides, message", [
    (["+scm.nodes.click.biass=3.0"],
     "error: scm.nodes.click.biass: unknown key (did you mean 'bias'? known: bias, gate, parents, type)"),
    (["seed=1.9"], "error: seed: expected an integer in [0, 2**32), got 1.9"),
    (["+experiment.stepz=10"],
     "error: experiment.stepz: unknown key (did you mean 'steps'? known: curve_points, name, progress, save_log, steps)"),
    (["+agent.alpah=2"], "error: agent.alpah: unknown key (did you mean 'alpha'? known: alpha, dim, lambda_, n_actions, seed, shared)"),
    (["env.world_seed=1.5"], "error: env.world_seed: expected an integer >= 0, got 1.5"),
    (["env.n_items=1000000000"], "error: out of memory: env.n_items: a catalog of 1,000,000,000 items needs ~"),
])
def test_config_and_input_mistakes_are_one_line(tmp_path, overrides, message):
    _one_line(tmp_path, ["agent=linucb", *SMALL, *overrides], message)


def test_a_missing_data_file_is_one_line(tmp_path):
    """An Open Bandit Dataset folder without its item_context.csv."""
    folder = tmp_path / "all"
    folder.mkdir()
    (folder / "all.csv").write_text(",timestamp,item_id,position,click,propensity_score\n0,t,1,1,0,0.1\n")
    _one_line(tmp_path, ["experiment=ope", "wandb.mode=disabled", f"experiment.data={folder}"],
              f"error: load_obd: {folder / 'item_context.csv'} is missing")


def _one_line(tmp_path, args, message):
    res = run([*args, f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert error_lines(res) and error_lines(res)[0].startswith(message), res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "r" / "summary.json").exists()


def test_a_user_policy_error_keeps_its_traceback(tmp_path):
    (tmp_path / "buggy.py").write_text(textwrap.dedent("""
        import numpy as np

        class Buggy:
            def __init__(self, n_actions, dim, seed=0):
                self.n_actions = n_actions

            def action_probs(self, contexts):
                return np.full((len(contexts), self.n_actions), 1 / self.n_actions)

            def act(self, contexts, rng):
                return rng.integers(0, self.n_actions, len(contexts)), np.full(len(contexts), 1 / self.n_actions)

            def update(self, contexts, actions, rewards):
                raise KeyError("user_feature")
    """))
    res = run(["agent=random", "agent._target_=buggy.Buggy", *SMALL, f"hydra.run.dir={tmp_path / 'r'}"],
              cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert res.returncode == 1, res.stderr
    assert "Traceback (most recent call last)" in res.stderr and "buggy.py" in res.stderr
    assert error_lines(res)[-1].startswith("error: KeyError raised in user code (Buggy.update at "), res.stderr


# ----------------------------------------------------------------------------- outputs


def test_a_second_run_refuses_a_run_directory_with_results(tmp_path):
    out = tmp_path / "r"
    assert run(["agent=random", *SMALL, f"hydra.run.dir={out}"], cwd=tmp_path).returncode == 0
    config = (out / ".hydra" / "config.yaml").read_text()
    res = run(["agent=linucb", "seed=7", *SMALL, f"hydra.run.dir={out}"], cwd=tmp_path)
    assert res.returncode == 2
    assert error_lines(res) == [f"error: hydra.run.dir: {out} already holds another run's results "
                                "(logged.parquet, regret.png, summary.json); choose another directory or pass overwrite=true"]
    assert (out / ".hydra" / "config.yaml").read_text() == config  # the earlier run's config is untouched
    assert json.loads((out / "summary.json").read_text())["agent"] == "RandomPolicy"
    res = run(["agent=linucb", *SMALL, f"hydra.run.dir={out}", "overwrite=true"], cwd=tmp_path)
    assert res.returncode == 0 and json.loads((out / "summary.json").read_text())["agent"] == "LinUCB"


def test_save_log_false_writes_no_log(tmp_path):
    res = run(["agent=random", *SMALL, "experiment.save_log=false", f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "r" / "summary.json").exists() and not (tmp_path / "r" / "logged.parquet").exists()


WRITER = """
import signal, sys, time
from recsim_causal.io import atomic_write
# A shell without job control starts background jobs with SIGINT ignored, and children inherit
# that: restore Python's own handler so the test sends the signal a user's Ctrl-C would.
signal.signal(signal.SIGINT, signal.default_int_handler)
with atomic_write(sys.argv[1]) as f:
    f.write("x" * 1000)
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_an_atomic_write_leaves_no_temporary_file(tmp_path, sig):
    target = tmp_path / "out" / "big.json"
    proc = subprocess.Popen([PY, "-c", WRITER, str(target)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    assert len(list(target.parent.iterdir())) == 1  # the temporary file
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert proc.returncode != 0
    assert list(target.parent.iterdir()) == []


def test_result_files_follow_the_umask(tmp_path):
    script = f"import os; os.umask(0o022); from recsim_causal.io import write_json; write_json({str(tmp_path / 'a.json')!r}, {{}})"
    subprocess.run([PY, "-c", script], check=True, timeout=60)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644


def test_a_run_killed_midway_leaves_no_partial_log(tmp_path):
    out = tmp_path / "r"
    proc = subprocess.Popen([PY, str(ROOT / "scripts" / "run.py"), "agent=random", "experiment.steps=50000000",
                             "experiment.progress=false", "wandb.mode=disabled", f"hydra.run.dir={out}"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 120
    while not any(p.name.startswith(".logged.parquet") for p in out.glob(".*")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # some chunks are written
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    left = sorted(p.name for p in out.iterdir() if p.name != ".hydra" and p.suffix != ".log")
    assert left == [], left  # neither a partial log nor its temporary file


def _peak_rss_mb(tmp_path, steps: int) -> float:
    code = ("import resource, sys; from recsim_causal.experiment.runner import run_job; "
            "from hydra import compose, initialize_config_module\n"
            "with initialize_config_module('recsim_causal.conf', version_base='1.3'):\n"
            f"    cfg = compose('config', overrides=['agent=random', 'experiment.steps={steps}', "
            "'experiment.progress=false', 'wandb.mode=disabled'])\n"
            f"run_job(cfg, __import__('pathlib').Path({str(tmp_path / str(steps))!r}))\n"
            "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    res = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr
    return float(res.stdout.split("RSS")[-1])


@pytest.mark.slow
def test_peak_memory_stays_flat_as_steps_grow(tmp_path):
    """The log streams to Parquet in chunks: 8x the decisions, about the same peak RSS."""
    small, large = _peak_rss_mb(tmp_path, 250_000), _peak_rss_mb(tmp_path, 2_000_000)
    assert large < 1.3 * small, (small, large)


def test_a_user_policy_without_slates_ranks_by_plackett_luce(tmp_path):
    """The README's policy has no act_slate: in a slate run it is ranked by Plackett-Luce over
    its distribution; the log's prefix pscores are the running products of the per-position
    draws' probabilities, and its pscore the whole slate's."""
    import numpy as np

    from recsim_causal.data import load_parquet

    (tmp_path / "plain.py").write_text(textwrap.dedent("""
        import numpy as np

        class Plain:
            def __init__(self, n_actions, dim, seed=0):
                self.n_actions = n_actions
                self.p = np.random.default_rng(seed).dirichlet(np.ones(n_actions))

            def action_probs(self, contexts):
                return np.tile(self.p, (len(contexts), 1))

            def act(self, contexts, rng):
                a = rng.choice(self.n_actions, len(contexts), p=self.p)
                return a, self.p[a]

            def update(self, contexts, actions, rewards):
                pass
    """))
    out = tmp_path / "r"
    res = run(["agent=random", "agent._target_=plain.Plain", "env=slate", "scm=position_bias", *SMALL,
               f"hydra.run.dir={out}"], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    log = load_parquet(out / "logged.parquet")
    p = np.random.default_rng(0).dirichlet(np.ones(20))
    slates, cascade = log.action.reshape(-1, 5), log.pscore_cascade.reshape(-1, 5)
    for slate, ps, whole in zip(slates[:50], cascade[:50], log.pscore[::5]):  # by hand: draws without replacement
        left, expect = 1.0, []
        for item in slate:
            expect.append(p[item] / left)
            left -= p[item]
        np.testing.assert_allclose(ps, np.cumprod(expect), rtol=1e-12)
        assert whole == pytest.approx(np.prod(expect), rel=1e-12)


def test_the_default_run_directory_works(tmp_path):
    """No hydra.run.dir: Hydra's default outputs/<date>/<time>_<agent> (it interpolates
    ${hydra:...}, which the run-directory check must resolve before Hydra does), or
    <time>_<experiment> for a run that is not online (OPE does not use the agent group)."""
    res = run(["agent=random", *SMALL], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (summary,) = tmp_path.glob("outputs/*/*_random/summary.json")
    assert json.loads(summary.read_text())["steps"] == 4096
    res = run(["experiment=ope", "experiment.n_rounds=2000", "experiment.train_rounds=1000", "experiment.truth_users=2000",
              "experiment.targets=[random]", "experiment.ci.dm_refits=0", "experiment.ci.n_bootstrap_samples=50",
              "env.n_items=10", "wandb.mode=disabled"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert len(list(tmp_path.glob("outputs/*/*_ope/ope.json"))) == 1
