#!/usr/bin/env python
"""Bad inputs, each a mistake a user makes: every one must end the run with exit code 2 and one
stderr line starting ``error:`` that names the field or file (no traceback).

    python scripts/smoke_bad_inputs.py            # one line per case, exit 1 if any case fails
    python scripts/smoke_bad_inputs.py -k seed    # only the cases whose name holds 'seed'

The cases call ``recsim-run``'s entry point (:func:`recsim_causal.cli.run`) in this process, the
same Hydra app as ``python scripts/run.py``; the files they need (broken logs, Open Bandit Dataset
folders, SCM files) are written into a temporary directory first. Run by the tests
(tests/test_failures.py), so by ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["experiment.steps=1000", "experiment.progress=false", "env.num_envs=500", "env.n_items=20",
         "wandb.mode=disabled"]


def make_files(tmp: Path) -> dict[str, Path]:
    """The broken files the cases point at."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    from recsim_causal.data import LoggedFeedback, save_parquet

    rng = np.random.default_rng(0)
    n = 100
    good = tmp / "good.parquet"
    save_parquet(LoggedFeedback(context=rng.normal(size=(n, 3)), action=rng.integers(0, 4, n),
                                reward=rng.binomial(1, 0.3, n), pscore=np.full(n, 0.25), n_actions=4), good)
    table = pq.read_table(good)
    files = {"good": good}
    files["no_pscore"] = tmp / "no_pscore.parquet"
    pq.write_table(table.drop_columns(["pscore"]).replace_schema_metadata(table.schema.metadata), files["no_pscore"])
    files["empty_log"] = tmp / "empty.parquet"
    pq.write_table(table.slice(0, 0), files["empty_log"])
    data = good.read_bytes()
    (files.setdefault("cut", tmp / "cut.parquet")).write_bytes(data[: len(data) // 2])
    (files.setdefault("zero", tmp / "zero.parquet")).write_bytes(b"")
    (files.setdefault("text", tmp / "text.parquet")).write_text("action,reward\n1,0\n")
    # Open Bandit Dataset folders: a CSV cut mid-row, a header only, a click that is a word
    K = 4
    frame = pd.DataFrame({"timestamp": pd.date_range("2019-11-24", periods=n, freq="37s").astype(str),
                          "item_id": rng.integers(0, K, n), "position": rng.integers(1, 4, n),
                          "click": rng.binomial(1, 0.2, n), "propensity_score": np.full(n, 1 / K),
                          "user_feature_0": rng.choice(["a", "b"], n)})
    items = pd.DataFrame({"item_id": np.arange(K), "item_feature_0": rng.uniform(size=K)})
    for name in ("obd_cut", "obd_header", "obd_word"):
        folder = files[name] = tmp / name / "random" / "all"
        folder.mkdir(parents=True)
        items.to_csv(folder / "item_context.csv")
        text = frame.to_csv()
        if name == "obd_cut":
            text = text[: text.rindex("\n", 0, len(text) - 1) + 12]
        elif name == "obd_header":
            text = text.splitlines()[0] + "\n"
        else:
            text = text.replace(",0,0.25,", ",yes,0.25,", 1)
        (folder / "all.csv").write_text(text)
    # SCM files under a --config-dir
    conf = files["conf"] = tmp / "conf"
    (conf / "scm").mkdir(parents=True)
    default = (ROOT / "conf" / "scm" / "default.yaml").read_text()
    for name, text in {"a_list": "- a\n- b\n", "syntax": "name: x\nnodes: {a: [\n", "dup_keys": "name: x\nname: y\n",
                       "python_tag": "name: !!python/object/apply:os.system ['echo pwned']\n",
                       "dim_true": default.replace("{type: normal, dim: 8,", "{type: normal, dim: true,", 1),
                       "huge": default.replace("bias: -2.0", "bias: 1e39"),
                       "observed_twice": default.replace("observed: [taste_signal,", "observed: [taste_signal, taste_signal,"),
                       }.items():
        (conf / "scm" / f"{name}.yaml").write_text(text)
    (files.setdefault("a_file", tmp / "a_file")).write_text("x")
    (files.setdefault("dangling", tmp / "dangling")).symlink_to(tmp / "nowhere" / "x")
    planted = files["planted"] = tmp / "planted"
    planted.mkdir()
    (planted / ".hydra").symlink_to(tmp)
    results = files["results"] = tmp / "results"  # a directory holding another run's results
    results.mkdir()
    (results / "summary.json").write_text("{}\n")
    return files


def cases(f: dict[str, Path]) -> list[tuple[str, list[str], str]]:
    """(name, arguments, how the error line starts)."""
    ope = ["experiment=ope", "wandb.mode=disabled"]
    scm = ["--config-dir", str(f["conf"])]
    mem = "error: out of memory: env.num_envs x env.n_items: "
    return [
        ("unknown agent", ["agent=linucbb"], "error: In 'config': Could not find 'agent/linucbb' (available: "),
        ("unknown env", ["env=bandits"], "error: In 'config': Could not find 'env/bandits'"),
        ("typo'd key", ["experiment.stepz=3"], "error: Could not override 'experiment.stepz'."),
        ("unknown added key", ["+experiment.stepz=3"], "error: experiment.stepz: unknown key (did you mean 'steps'?"),
        ("unknown top-level key", ["+seeds=3"], "error: config.seeds: unknown key (did you mean 'seed'?"),
        ("unknown wandb key", ["+wandb.modee=x"], "error: wandb.modee: unknown key (did you mean 'mode'?"),
        ("override syntax", ["seed=[1"], "error: no viable alternative at input '[1'"),
        ("seed not an integer", ["seed=1.9"], "error: seed: expected an integer in [0, 2**32), got 1.9"),
        ("seed too large", ["seed=4294967296"], "error: seed: expected an integer in [0, 2**32), got 4294967296"),
        ("seed too large, ppo", ["agent=ppo_bert", "seed=1180591620717411303424"], "error: seed: expected an integer in"),
        ("overwrite=no", ["overwrite=no"], "error: overwrite: expected true or false, got 'no'"),
        ("overwrite='false'", ["overwrite='false'"], "error: overwrite: expected true or false, got 'false'"),
        ("save_log=no", ["experiment.save_log=no"], "error: experiment.save_log: expected true or false, got 'no'"),
        ("slate env, one-item log", [*ope, "env=slate", f"experiment.data={f['good']}"],
         f"error: experiment.data: {f['good']} is a one-item log without the slate columns slate_id"),
        ("negative alpha", ["agent.alpha=-1"], "error: agent (recsim_causal.agents.LinUCB): LinUCB: alpha must be >= 0"),
        ("zero steps", ["experiment.steps=0"], "error: experiment.steps: expected an integer >= 1, got 0"),
        ("bad wandb mode", ["wandb.mode=sometimes"], "error: wandb.mode: expected one of offline, online, disabled"),
        ("fatigue_rate inf", ["env=session", "env.fatigue_rate=inf"], "error: env.fatigue_rate: expected a finite number >= 0, got inf"),
        ("leave_bias nan", ["env=session", "env.leave_bias=nan"], "error: env.leave_bias: expected a finite number, got nan"),
        ("drift out of range", ["env=session", "env.drift=1.5"], "error: env.drift: expected a number in [0, 1], got 1.5"),
        ("a million items, full oracle", ["env.n_items=1000000", "env.num_envs=1024"], mem + "1,024 users x 1,000,000 items (oracle=full; "),
        ("a hundred million users", ["env.num_envs=100000000"], mem + "100,000,000 users x 20 items (oracle=full; "),
        ("torch threads 0", ["env.backend=torch", "env.threads=0"], "error: env.threads: expected an integer >= 1, got 0"),
        ("log without pscore", [*ope, f"experiment.data={f['no_pscore']}"], f"error: {f['no_pscore']}: column 'pscore' is missing"),
        ("empty log", [*ope, f"experiment.data={f['empty_log']}"], f"error: {f['empty_log']}: the log has no rows"),
        ("truncated parquet", [*ope, f"experiment.data={f['cut']}"], f"error: {f['cut']}: not a readable Parquet file"),
        ("zero-byte parquet", [*ope, f"experiment.data={f['zero']}"], f"error: {f['zero']}: not a readable Parquet file"),
        ("text as parquet", [*ope, f"experiment.data={f['text']}"], f"error: {f['text']}: not a readable Parquet file"),
        ("missing data file", [*ope, f"experiment.data={f['good'].with_name('nope.parquet')}"],
         f"error: experiment.data: expected a .parquet log or an Open Bandit Dataset folder, got '{f['good'].with_name('nope.parquet')}'"),
        ("OBD cut mid-row", [*ope, f"experiment.data={f['obd_cut']}"], f"error: load_obd: {f['obd_cut'] / 'all.csv'}: row 100 of 100"),
        ("OBD header only", [*ope, f"experiment.data={f['obd_header']}"], f"error: load_obd: {f['obd_header'] / 'all.csv'} has no rows"),
        ("OBD click='yes'", [*ope, f"experiment.data={f['obd_word']}"],
         f"error: load_obd: {f['obd_word'] / 'all.csv'}: column 'click' holds 'yes'"),
        ("SCM file a list", [*scm, "scm=a_list"], "error: scm: the config scm=a_list is a list, expected a mapping"),
        ("SCM YAML syntax", [*scm, "scm=syntax"], "error: while parsing a flow node"),
        ("SCM duplicate keys", [*scm, "scm=dup_keys"], "error: while constructing a mapping"),
        ("SCM python tag", [*scm, "scm=python_tag"], "error: could not determine a constructor for the tag"),
        ("SCM dim: true", [*scm, "scm=dim_true"], "error: scm.nodes.taste.dim: expected an integer >= 1, got True"),
        ("SCM 1e39 in float32", [*scm, "scm=huge"], "error: scm.nodes.click.bias: 1e+39 does not fit float32"),
        ("SCM observed twice", [*scm, "scm=observed_twice"], "error: scm.observed: 'taste_signal' is listed twice"),
        ("run dir under a file", [f"hydra.run.dir={f['a_file'] / 'sub'}"], f"error: hydra.run.dir: cannot create {f['a_file'] / 'sub'}: Not a directory"),
        ("run dir in /proc", ["hydra.run.dir=/proc/recsim_smoke"], "error: hydra.run.dir: cannot create /proc/recsim_smoke"),
        ("run dir a dangling symlink", [f"hydra.run.dir={f['dangling']}"], f"error: hydra.run.dir: {f['dangling']} is a symlink to"),
        ("planted .hydra symlink", [f"hydra.run.dir={f['planted']}"], f"error: hydra.run.dir: {f['planted'] / '.hydra'} is a symlink"),
        ("run dir with results", [f"hydra.run.dir={f['results']}"], f"error: hydra.run.dir: {f['results']} already holds another run's results"),
    ]


def run_case(args: list[str], tmp: Path, i: int) -> tuple[int, list[str]]:
    """``recsim-run args`` in this process: (exit code, stderr lines)."""
    from recsim_causal.cli import run

    if not any(a.startswith("hydra.run.dir=") for a in args):
        args = [*args, f"hydra.run.dir={tmp / 'runs' / str(i)}"]
    err, out = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            options = args[:2] if args[:1] == ["--config-dir"] else []  # options before overrides
            small = [] if "experiment=ope" in args else SMALL  # an OPE run reads its log: no steps
            run([*options, *small, *args[len(options):]])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, err.getvalue().strip().splitlines()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only the cases whose name holds this")
    args = parser.parse_args(argv)
    failed = 0
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        todo = [c for c in cases(make_files(tmp)) if args.k in c[0]]
        for i, (label, case_args, start) in enumerate(todo):
            t0 = time.perf_counter()
            code, lines = run_case(case_args, tmp, i)
            ok = code == 2 and len(lines) == 1 and lines[0].startswith(start)
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {label:<32} exit {code}  {time.perf_counter() - t0:4.1f}s  "
                  f"{lines[0] if len(lines) == 1 else f'{len(lines)} stderr lines'}")
            if not ok:
                print(f"     expected exit 2 and one line starting {start!r}; stderr:\n     " + "\n     ".join(lines[-8:]))
    print(f"{len(todo) - failed} of {len(todo)} bad inputs end in one error line, exit 2")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
