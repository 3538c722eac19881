"""How runs fail: nothing lost under faults, every mistake one line.

Most cases call the console command's ``run(argv)`` in this process (the same Hydra app as
``python scripts/run.py``, with stderr captured); concurrency, sweeps and kills use real
processes.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recsim_causal.cli import run as cli_run
from recsim_causal.io import atomic_path
from recsim_causal.rundir import LOCK_NAME, claim_run_dir, lock_run_dir, unlock_run_dir

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SMALL = ["experiment.steps=2000", "experiment.progress=false", "env.num_envs=500", "env.n_items=20",
         "wandb.mode=disabled"]


def cli(args, capsys):
    """``recsim-run args`` in this process: (exit code, stderr lines)."""
    capsys.readouterr()
    try:
        cli_run(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err.strip().splitlines()


def one_error(args, capsys, start: str) -> None:
    """The command fails with exit 2 and exactly one stderr line, ``start...``."""
    code, err = cli(args, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith(start), err


def run_py(args, timeout=300, **kw):
    return subprocess.Popen([PY, str(ROOT / "scripts" / "run.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, **kw)


def seed_of(run_dir: Path) -> int:
    return json.loads((run_dir / "summary.json").read_text())["seed"]


# ----------------------------------------------------------------------------- overwrite


def test_overwrite_takes_only_true_or_false(tmp_path, capsys):
    d = tmp_path / "D"
    assert cli([*SMALL, f"hydra.run.dir={d}"], capsys)[0] == 0
    for value, shown in (("no", "'no'"), ("'false'", "'false'"), ("0", "0"), ("yes", "'yes'"), ("null", "None")):
        one_error([*SMALL, "seed=2", f"overwrite={value}", f"hydra.run.dir={d}"], capsys,
                  f"error: overwrite: expected true or false, got {shown}")
    assert seed_of(d) == 0


def test_overwrite_removes_the_earlier_results_it_does_not_rewrite(tmp_path, capsys):
    d = tmp_path / "D"
    assert cli([*SMALL, "agent=random", "seed=5", f"hydra.run.dir={d}"], capsys)[0] == 0
    assert (d / "logged.parquet").exists()
    # a writer killed by SIGKILL leaves its temporary file: not a result, removed by the next run
    with pytest.raises(KeyboardInterrupt), atomic_path(d / "logged.parquet") as tmp:
        tmp.write_bytes(b"x" * 1000)
        os.link(tmp, d / f".logged.parquet.killed.tmp.parquet")
        raise KeyboardInterrupt
    assert cli([*SMALL, "agent=linucb", "seed=6", "overwrite=true", "experiment.save_log=false",
                f"hydra.run.dir={d}"], capsys)[0] == 0
    names = sorted(p.name for p in d.iterdir())
    assert names == [".hydra", "cli.log", "regret.png", "summary.json"], names
    assert seed_of(d) == 6


def test_a_killed_runs_temporary_file_does_not_block_the_directory(tmp_path, capsys):
    d = tmp_path / "D"
    d.mkdir()
    (d / ".logged.parquet.a1b2c3.tmp.parquet").write_bytes(b"PAR1" + b"\0" * 100)
    assert cli([*SMALL, f"hydra.run.dir={d}"], capsys)[0] == 0
    assert not [p for p in d.iterdir() if ".tmp" in p.name]


# ----------------------------------------------------------------------------- the run directory's lock


def test_two_runs_started_together_into_one_directory(tmp_path):
    d = tmp_path / "D"
    procs = [run_py(["agent=random", "experiment.steps=200000", "experiment.progress=false", "wandb.mode=disabled",
                     f"seed={s}", f"hydra.run.dir={d}"]) for s in (10, 11)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], [o[1][-2000:] for o in outs]
    winner = codes.index(0)
    loser_err = outs[1 - winner][1].strip().splitlines()
    assert len(loser_err) == 1 and loser_err[0].startswith(f"error: hydra.run.dir: {d}"), loser_err
    assert ("is in use by another run (pid " in loser_err[0]) or ("already holds another run's results" in loser_err[0])
    assert seed_of(d) == (10, 11)[winner]
    assert not (d / LOCK_NAME).exists()  # released when the run ended


def test_the_lock_refuses_a_live_holder_and_takes_a_dead_ones(tmp_path):
    d = tmp_path / "D"
    holder = subprocess.Popen([PY, "-c", "import sys, time; from recsim_causal.rundir import lock_run_dir; "
                               "lock_run_dir(sys.argv[1]); print('held', flush=True); time.sleep(60)", str(d)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=rf"^hydra.run.dir: {d} is in use by another run \(pid {holder.pid}\)"):
            lock_run_dir(d)
    finally:
        holder.kill()
        holder.wait()
    # killed by SIGKILL: its lock file (with its pid) stays, but no live process holds it
    assert (d / LOCK_NAME).read_text().strip() == str(holder.pid)
    with claim_run_dir(d):
        assert (d / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert not (d / LOCK_NAME).exists()


def test_the_lock_is_held_for_the_whole_run(tmp_path):
    d = tmp_path / "D"
    with claim_run_dir(d):
        probe = subprocess.run([PY, "-c", "import sys; from recsim_causal.rundir import lock_run_dir; "
                                "lock_run_dir(sys.argv[1])", str(d)], capture_output=True, text=True)
        assert probe.returncode == 1 and f"is in use by another run (pid {os.getpid()})" in probe.stderr
    assert lock_run_dir(d) and not lock_run_dir(d)  # taken now; held already
    unlock_run_dir(d)


# ----------------------------------------------------------------------------- run directories that cannot be used


def test_unusable_run_directories_are_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    one_error([*SMALL, f"hydra.run.dir={tmp_path / 'file' / 'sub'}"], capsys,
              f"error: hydra.run.dir: cannot create {tmp_path / 'file' / 'sub'}: Not a directory")
    one_error([*SMALL, "hydra.run.dir=/proc/recsim_run"], capsys,
              "error: hydra.run.dir: cannot create /proc/recsim_run: No such file or directory")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "x")
    one_error([*SMALL, f"hydra.run.dir={tmp_path / 'dangling'}"], capsys,
              f"error: hydra.run.dir: {tmp_path / 'dangling'} is a symlink to {tmp_path / 'nowhere' / 'x'}, which does not exist")
    assert not (tmp_path / "nowhere").exists()
    planted, elsewhere = tmp_path / "planted", tmp_path / "elsewhere"
    planted.mkdir(), elsewhere.mkdir()
    (planted / ".hydra").symlink_to(elsewhere)
    one_error([*SMALL, f"hydra.run.dir={planted}"], capsys, f"error: hydra.run.dir: {planted / '.hydra'} is a symlink")
    assert not list(elsewhere.iterdir())


# ----------------------------------------------------------------------------- sweeps


@pytest.mark.parametrize("launcher", ["basic", pytest.param("joblib_local", marks=pytest.mark.slow)])
def test_a_failing_sweep_job_leaves_the_others_whole(tmp_path, launcher):
    sweep = tmp_path / "sweep"
    args = ["-m", "agent.alpha=1,-1,0.5,0.2", *SMALL, f"hydra.sweep.dir={sweep}"]
    if launcher != "basic":
        args.insert(1, f"hydra/launcher={launcher}")
    p = run_py(args)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 2, err[-3000:]
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 2, err
    assert lines[0].startswith("error: job 1 (agent.alpha=-1,") and "alpha must be >= 0, got -1.0" in lines[0]
    assert lines[1].startswith(f"error: sweep {sweep}: 1 of 4 jobs failed (1_agent.alpha=-1,")
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [j.name[0] for j in jobs] == ["0", "1", "2", "3"]
    for i, job in enumerate(jobs):  # every healthy job ran to the end and kept all its results
        if i == 1:
            assert not (job / "summary.json").exists() and "alpha must be >= 0" in (job / "error.log").read_text()
        else:
            assert {"summary.json", "logged.parquet", "regret.png"} <= {p.name for p in job.iterdir()}
            assert json.loads((job / "summary.json").read_text())["steps"] == 2000


# ----------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("agent", ["linucb", "random", "thompson", "ppo_bert"])
def test_one_seed_limit_for_every_agent(tmp_path, capsys, agent):
    one_error([*SMALL, f"agent={agent}", "seed=4294967296", f"hydra.run.dir={tmp_path / 'r'}"], capsys,
              "error: seed: expected an integer in [0, 2**32), got 4294967296")
    one_error([*SMALL, f"agent={agent}", "seed=1180591620717411303424", f"hydra.run.dir={tmp_path / 'r'}"], capsys,
              "error: seed: expected an integer in [0, 2**32), got 1180591620717411303424")


def test_agents_built_in_python_share_the_seed_limit():
    from recsim_causal.agents import LinUCB, RandomPolicy

    for cls in (LinUCB, RandomPolicy):
        with pytest.raises(ValueError, match=r"^\w+: seed: expected an integer in \[0, 2\*\*32\), got 4294967296$"):
            cls(n_actions=3, dim=2, seed=2**32)
        cls(n_actions=3, dim=2, seed=2**32 - 1)


# ----------------------------------------------------------------------------- data files


def small_log(path: Path, n: int = 200) -> Path:
    import numpy as np

    from recsim_causal.data import LoggedFeedback, save_parquet

    rng = np.random.default_rng(0)
    fb = LoggedFeedback(context=rng.normal(size=(n, 3)), action=rng.integers(0, 4, n), reward=rng.binomial(1, 0.3, n),
                        pscore=np.full(n, 0.25), n_actions=4)
    save_parquet(fb, path)
    return path


def without_column(src: Path, dst: Path, column: str) -> Path:
    import pyarrow.parquet as pq

    table = pq.read_table(src)
    pq.write_table(table.drop_columns([column]).replace_schema_metadata(table.schema.metadata), dst)
    return dst


def test_bad_log_files_are_one_line_naming_the_file(tmp_path, capsys):
    good = small_log(tmp_path / "good.parquet")
    cases = {}
    for column in ("pscore", "action", "reward", "context"):
        cases[f"no_{column}"] = (without_column(good, tmp_path / f"no_{column}.parquet", column), f"column '{column}' is missing")
    data = good.read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    (tmp_path / "zero.parquet").write_bytes(b"")
    (tmp_path / "text.parquet").write_text("action,reward\n1,0\n")
    for name in ("cut", "zero", "text"):
        cases[name] = (tmp_path / f"{name}.parquet", "not a readable Parquet file")
    for name, (path, what) in cases.items():
        one_error(["experiment=ope", "wandb.mode=disabled", f"experiment.data={path}",
                   f"hydra.run.dir={tmp_path / name}"], capsys, f"error: {path}: {what}")


def test_bad_log_metadata_is_one_line(tmp_path):
    import json as js

    import pyarrow.parquet as pq

    from recsim_causal.data.parquet import METADATA_KEY, load_parquet

    good = small_log(tmp_path / "good.parquet")
    table = pq.read_table(good)
    meta = js.loads(table.schema.metadata[METADATA_KEY])
    for edit, message in ((lambda m: m.pop("shapes"), "lacks 'shapes'"), (lambda m: m.update(n_actions="4"), "'n_actions' is '4'"),
                          (lambda m: m.update(format="other"), "unsupported format 'other'")):
        m = dict(meta)
        edit(m)
        bad = tmp_path / "bad.parquet"
        pq.write_table(table.replace_schema_metadata({METADATA_KEY: js.dumps(m).encode()}), bad)
        with pytest.raises(ValueError, match=rf"^{bad}: .*{message}"):
            load_parquet(bad)
    empty = tmp_path / "empty.parquet"
    pq.write_table(table.slice(0, 0), empty)
    with pytest.raises(ValueError, match=rf"^{empty}: the log has no rows$"):
        load_parquet(empty)


def test_a_full_disk_is_one_line_naming_the_file(tmp_path):
    """A file-size limit (``ulimit -f 2048``) as a full disk: the log write fails, the run says which file."""
    import resource

    lim = 2 * 2**20
    d = tmp_path / "D"
    res = subprocess.run([PY, str(ROOT / "scripts" / "run.py"), "agent=random", "experiment.steps=400000",
                          "experiment.progress=false", "wandb.mode=disabled", f"hydra.run.dir={d}"],
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (lim, lim)),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"error: {d / 'logged.parquet'}: cannot write it: Error writing bytes to file. Detail: [errno 27] File too large"]
    assert not [p for p in d.iterdir() if p.suffix == ".parquet" or ".tmp" in p.name]


def test_bad_open_bandit_dataset_files(tmp_path):
    from recsim_causal.data import load_obd
    from tests.test_data_obp import write_obd_folder

    folder, data, _ = write_obd_folder(tmp_path)
    csv = folder / "men.csv"
    text = csv.read_text()
    assert load_obd(folder).n_rounds == 40
    csv.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 30])  # cut in the middle of the last row
    with pytest.raises(ValueError, match=rf"^load_obd: {csv}: row 40 of 40 has empty fields \(the file is cut short\?\)$"):
        load_obd(folder)
    csv.write_text(text.splitlines()[0] + "\n")
    with pytest.raises(ValueError, match=rf"^load_obd: {csv} has no rows$"):
        load_obd(folder)
    lines = text.splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("click")] = "yes"
    csv.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match=rf"^load_obd: {csv}: column 'click' holds 'yes' \(expected numbers\)$"):
        load_obd(folder)


# ----------------------------------------------------------------------------- session settings and sizes


def test_session_settings_are_checked(tmp_path, capsys):
    import gymnasium as gym

    import recsim_causal.envs as envs

    one_error(["env=session", *SMALL, "env.fatigue_rate=inf", f"hydra.run.dir={tmp_path / 'a'}"], capsys,
              "error: env.fatigue_rate: expected a finite number >= 0, got inf")
    one_error(["env=session", *SMALL, "env.leave_bias=nan", f"hydra.run.dir={tmp_path / 'b'}"], capsys,
              "error: env.leave_bias: expected a finite number, got nan")
    with pytest.raises(ValueError, match=r"^env.interest_node: unknown node 'nope' \(known: .*taste"):
        gym.make(envs.SESSION_ID, interest_node="nope")
    env = gym.make(envs.SESSION_ID, interest_node=None)  # off, as asked
    assert env.unwrapped.core.interest is None


# ----------------------------------------------------------------------------- config mistakes


@pytest.mark.slow
def test_smoke_bad_inputs():
    """scripts/smoke_bad_inputs.py: 40-odd bad inputs (Hydra-level mistakes, SCM files, data files,
    sizes refused before allocation, run directories), each exit 2 with one ``error:`` line."""
    res = subprocess.run([PY, str(ROOT / "scripts" / "smoke_bad_inputs.py")], capture_output=True, text=True,
                         timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]
    counted = res.stdout.strip().splitlines()[-1]
    n = int(counted.split()[0])
    assert n >= 30 and counted == f"{n} of {n} bad inputs end in one error line, exit 2", counted


def test_wandb_disabled_in_the_environment_wins(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    args = [a for a in SMALL if not a.startswith("wandb.")]
    assert cli([*args, "wandb.mode=offline", f"hydra.run.dir={tmp_path / 'r'}"], capsys)[0] == 0
    assert (tmp_path / "r" / "summary.json").exists() and not (tmp_path / "r" / "wandb").exists()


# ----------------------------------------------------------------------------- torch on the CPU


def test_the_torch_backend_on_the_cpu_steps_with_one_thread_unless_told(capsys, tmp_path):
    import gymnasium as gym
    import numpy as np
    import torch

    import recsim_causal.envs as envs
    from recsim_causal import World

    before = torch.get_num_threads()
    seen = []
    world = World("default", n_items=20, dtype="float32", backend="torch", device="cpu")
    original = world.sample_users

    def spy(*args, **kwargs):  # the threads torch has while the env computes
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    world.sample_users = spy
    venv = gym.make_vec(envs.BANDIT_ID, num_envs=8, vectorization_mode="vector_entry_point", world=world)
    venv.reset(seed=0)
    venv.step(torch.zeros(8, dtype=torch.int64))
    assert seen == [1, 1] and torch.get_num_threads() == before  # restored after each call
    for threads, expect in ((3, 3), (None, before)):
        w = World("default", n_items=20, dtype="float32", backend="torch", device="cpu", threads=threads)
        with w.xp.compute():
            assert torch.get_num_threads() == expect
    env = gym.make(envs.BANDIT_ID, n_items=20, backend="torch", device="cpu", threads=2)
    assert env.unwrapped.world.xp.threads == 2
    with pytest.raises(ValueError, match=r"^env.threads: expected an integer >= 1, got 0$"):
        gym.make(envs.BANDIT_ID, backend="torch", device="cpu", threads=0)
    with pytest.raises(ValueError, match=r"^block_size: expected an integer >= 1, got 0$"):
        gym.make(envs.BANDIT_ID, block_size=0)
    one_error([*SMALL, "env.backend=torch", "env.threads=0", f"hydra.run.dir={tmp_path / 'r'}"], capsys,
              "error: env.threads: expected an integer >= 1, got 0")


# ----------------------------------------------------------------------------- the embedding cache


def test_a_corrupt_embedding_cache_is_named_and_replaced(tmp_path, capsys):
    import numpy as np
    from transformers import BertConfig

    from recsim_causal.embeddings import encode_texts, stats

    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    texts = ["red running shoes", "a blue kettle", "noise cancelling headphones"]
    good = encode_texts(texts, config, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npy")
    raw = path.read_bytes()
    corruptions = {
        "wrong shape": lambda: np.save(path, good[:2]),
        "NaN": lambda: np.save(path, np.where(np.eye(3, good.shape[1], dtype=bool), np.nan, good).astype(np.float32)),
        "truncated": lambda: path.write_bytes(raw[: len(raw) // 2]),
        "not unit vectors": lambda: np.save(path, 2 * good),
    }
    for name, corrupt in corruptions.items():
        corrupt()
        capsys.readouterr()
        misses = stats.cache_misses
        again = encode_texts(texts, config, cache_dir=tmp_path)
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"warning: embedding cache {path}: ") and \
            err[0].endswith("; encoding again and replacing it"), (name, err)
        np.testing.assert_array_equal(again, good)  # encoded again: the same numbers
        assert stats.cache_misses == misses + 1
        np.testing.assert_array_equal(np.load(path), good)  # the file is whole again


# ----------------------------------------------------------------------------- the report


def test_the_report_counts_each_seed_once_and_says_what_it_leaves_out(tmp_path, capsys):
    import shutil

    from recsim_causal.experiment.report import write_report

    sweep = tmp_path / "sweep"
    p = run_py(["-m", "agent=random", "seed=0,1,2,3", *SMALL, f"hydra.sweep.dir={sweep}"])
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    jobs = sorted(d for d in sweep.iterdir() if d.is_dir())
    regrets = [json.loads((j / "summary.json").read_text())["cumulative_regret"] for j in jobs]
    write_report(sweep)
    row = json.loads((sweep / "leaderboard.json").read_text())["rows"][0]
    assert row["n_seeds"] == 4 and row["metrics"]["cumulative_regret"]["values"] == regrets

    shutil.copytree(jobs[0], sweep / "copy_of_0")  # a copied job directory is not a fifth seed
    with pytest.raises(ValueError, match=rf"^report: .* and .* are the same config with seed 0 \(a copied job directory\?\); remove one$"):
        write_report(sweep, force=True)
    shutil.rmtree(sweep / "copy_of_0")

    stray = sweep / "stray"  # a result without .hydra/: left out, with a word
    stray.mkdir()
    (stray / "summary.json").write_text((jobs[1] / "summary.json").read_text())
    listed = sweep / "listed"  # a summary.json that is a list: an error naming it
    listed.mkdir()
    (listed / "summary.json").write_text("[1, 2]\n")
    with pytest.raises(ValueError, match=rf"^report: {listed / 'summary.json'}: expected a JSON object, got list$"):
        write_report(sweep, force=True)
    shutil.rmtree(listed)
    summary = json.loads((jobs[3] / "summary.json").read_text())
    (jobs[3] / "summary.json").write_text(json.dumps({**summary, "cumulative_regret": None}))  # a null metric
    capsys.readouterr()
    table = write_report(sweep, force=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"warning: report: {stray / 'summary.json'} left out: no .hydra/config.yaml beside it and no "
                   "config in it: its settings are unknown"]
    row = json.loads((sweep / "leaderboard.json").read_text())["rows"][0]
    assert row["label"] != "None" and row["n_seeds"] == 4
    assert row["metrics"]["cumulative_regret"]["values"] == regrets[:3]
    assert "(3 of 4 seeds)" in table.split("| 1 |")[1].splitlines()[0]


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoints_are_checked_on_load(tmp_path):
    import json as js

    import numpy as np

    from recsim_causal.agents import LinUCB

    agent = LinUCB(n_actions=3, dim=2, seed=1)
    x = np.random.default_rng(0).normal(size=(50, 2))
    agent.update(x, np.arange(50) % 3, np.ones(50))
    good = tmp_path / "good.npz"
    agent.save(str(good))
    back = LinUCB.load(str(good))
    np.testing.assert_array_equal(back.action_probs(x), agent.action_probs(x))

    def saved(meta=None, **state):
        with np.load(good) as data:
            arrays = {k: data[k] for k in data.files}
        m = js.loads(str(arrays["__meta__"]))
        arrays["__meta__"] = np.array(js.dumps(meta(m) if meta else m))
        arrays.update(state)
        path = tmp_path / "bad.npz"
        np.savez(path, **arrays)
        return str(path)

    with pytest.raises(ValueError, match=r"^LinUCB.load: .*bad.npz: state 'A' is float64 of shape \(5, 2, 2\), "
                                         r"expected numbers of shape \(3, 2, 2\)$"):
        LinUCB.load(saved(A=np.tile(np.eye(2), (5, 1, 1))))
    with pytest.raises(ValueError, match=r"^LinUCB.load: .*bad.npz: state 'theta' holds NaN or inf$"):
        LinUCB.load(saved(theta=np.full((3, 2), np.nan)))
    with pytest.raises(ValueError, match=r"^LinUCB.load: .*bad.npz: state.extra: unknown key"):
        LinUCB.load(saved(extra=np.zeros(2)))
    with pytest.raises(ValueError, match=r"^LinUCB.load: .*bad.npz.note: unknown key"):
        LinUCB.load(saved(meta=lambda m: {**m, "note": "x"}))
    (tmp_path / "text.npz").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"^LinUCB.load: .*text.npz: not a file written by LinUCB.save"):
        LinUCB.load(str(tmp_path / "text.npz"))


def test_ctr_checkpoints_are_checked_on_load(tmp_path):
    import json as js

    import numpy as np
    import torch
    from safetensors.torch import load_file, save_file

    from recsim_causal.ctr.model import META, WEIGHTS, CTRConfig, CTRModel

    rng = np.random.default_rng(0)
    model = CTRModel(CTRConfig(model="logistic", n_epochs=1), n_actions=4, dim=3)
    x, a = rng.normal(size=(200, 3)), rng.integers(0, 4, 200)
    model.fit(x, a, rng.binomial(1, 0.3, 200).astype(float))
    path = model.save(tmp_path / "m")
    assert np.isfinite(CTRModel.load(path).predict(x, a)).all()
    meta = js.loads((path / META).read_text())
    (path / META).write_text(js.dumps({**meta, "extra": 1}))
    with pytest.raises(ValueError, match=rf"^CTRModel.load: {path / META}.extra: unknown key"):
        CTRModel.load(path)
    (path / META).write_text(js.dumps({**meta, "format": "other/9"}))
    with pytest.raises(ValueError, match=r"expected format 'recsim_causal.ctr/1', got 'other/9'\)"):
        CTRModel.load(path)
    (path / META).write_text(js.dumps(meta))
    state = load_file(str(path / WEIGHTS))
    save_file({**state, "x_sd": torch.zeros_like(state["x_sd"])}, str(path / WEIGHTS))
    with pytest.raises(ValueError, match=r"x_sd must be finite and x_sd > 0"):
        CTRModel.load(path)
