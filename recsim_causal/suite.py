"""The standard benchmark suite: every built-in agent on the standard settings, one command.

    recsim-suite                                   # or: python scripts/suite.py
    PYTHONPATH=. recsim-suite --config-dir my_conf --add popular      # your policy joins
    recsim-suite --add my_policy.GreedyByPopularity                   # or by its _target_

Settings (``conf/setting/``): one item on the ``default`` and ``confounded`` worlds (Bandit-v0),
slates of 5 on ``position_bias``, sessions on ``default`` (Session-v0). Every agent runs
``--seeds`` seeds with a fixed budget of ``--steps`` decisions (PPO trains ``--ppo-timesteps``
env steps first). One Hydra multirun over settings x agents x seeds (joblib, ``--jobs``
processes; PPO and policies given by ``_target_`` in their own), then the report writes
leaderboard.md/.json/.png and curves.png/.json into the suite directory, one table per setting.
PPO (one item per decision) sits out the slate setting. A run that fails (a policy without
``act_slate`` in the slate setting) stops its sweep: a WARNING line says how many runs are
missing from the tables and which failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

SETTINGS = ("bandit_default", "bandit_confounded", "slate_position_bias", "session_default")  # conf/setting/
AGENTS = ("random", "epsilon_greedy", "softmax", "thompson", "linucb", "lin_thompson", "ppo_bert")


def _run_command() -> list[str]:
    """The Hydra app: the installed ``recsim-run`` next to this Python, else the module."""
    exe = Path(sys.executable).with_name("recsim-run")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from recsim_causal.cli import run; run()"]


def suite_commands(out: Path, *, agents: list[str], added: list[str], seeds: int, steps: int,
                   ppo_timesteps: int, jobs: int, config_dir: str | None, extra: list[str], group: str,
                   settings: tuple[str, ...] = SETTINGS) -> list[list[str]]:
    """The suite's Hydra multiruns, each over every setting x seed: one for the named agents,
    one for PPO (its training budget is its own key), one per added ``_target_``."""
    base = [*_run_command(), "-m"] + (["--config-dir", config_dir] if config_dir else [])
    common = [f"+setting={','.join(settings)}", f"seed={','.join(str(s) for s in range(seeds))}",
              f"experiment.steps={steps}", "hydra/launcher=joblib_local", f"hydra.launcher.n_jobs={jobs}",
              f"wandb.group={group}", *extra]
    named = [a for a in [*agents, *added] if "." not in a and a != "ppo_bert"]
    cmds = []
    if named:
        cmds.append([*base, f"agent={','.join(named)}", *common, f"hydra.sweep.dir={out / 'agents'}"])
    if "ppo_bert" in agents:  # PPO recommends one item: it sits out the slate setting
        one_item = ",".join(s for s in settings if not s.startswith("slate"))
        cmds.append([*base, "agent=ppo_bert", f"agent.total_timesteps={ppo_timesteps}",
                     *[f"+setting={one_item}" if c.startswith("+setting=") else c for c in common],
                     f"hydra.sweep.dir={out / 'ppo_bert'}"])
    for i, target in enumerate(a for a in added if "." in a):
        cmds.append([*base, "agent=random", f"agent._target_={target}", *common, f"hydra.sweep.dir={out / f'added{i}'}"])
    return cmds


def expected_runs(cmds: list[list[str]]) -> int:
    """How many runs the multiruns ``cmds`` launch: the product of their swept lists."""
    total = 0
    for cmd in cmds:
        n = 1
        for arg in cmd:
            if "=" in arg and not arg.startswith(("hydra", "wandb")) and "[" not in arg:
                n *= len(arg.split("=", 1)[1].split(","))
        total += n
    return total


def failed_jobs(out: Path) -> list[str]:
    """Job directories of the suite without a summary.json (a job that failed)."""
    return sorted(str(d.relative_to(out)) for d in out.glob("*/*") if d.is_dir() and (d / ".hydra").is_dir()
                  and not (d / "summary.json").exists())


def main(argv: list[str] | None = None) -> None:
    """``recsim-suite``: run the standard benchmark and write its leaderboard and curves."""
    p = argparse.ArgumentParser(prog="recsim-suite", description=main.__doc__.split(": ", 1)[1])
    p.add_argument("--agents", default=",".join(AGENTS), help=f"comma-separated (default: {','.join(AGENTS)})")
    p.add_argument("--add", action="append", default=[], metavar="AGENT",
                   help="your policy: a name in --config-dir's agent/ group, or a _target_ (my_pkg.MyPolicy)")
    p.add_argument("--config-dir", default=None, help="your Hydra config folder (agent/<name>.yaml)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=50_000, help="decisions per run")
    p.add_argument("--ppo-timesteps", type=int, default=100_000, help="PPO training env steps before its run")
    p.add_argument("--jobs", type=int, default=2, help="parallel processes (joblib)")
    p.add_argument("--out", type=Path, default=None, help="suite directory (default: multirun/suite/<date>_<time>)")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run (e.g. wandb.mode=disabled)")
    args = p.parse_args(argv)
    for name in ("seeds", "steps", "ppo_timesteps", "jobs"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}: expected an integer >= 1, got {getattr(args, name)}")
    agents = [a for a in args.agents.split(",") if a]
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out = args.out or Path("multirun") / "suite" / stamp
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    cmds = suite_commands(out, agents=agents, added=args.add, seeds=args.seeds, steps=args.steps,
                          ppo_timesteps=args.ppo_timesteps, jobs=args.jobs, config_dir=args.config_dir,
                          extra=args.overrides, group=f"suite-{stamp}")
    for cmd in cmds:
        print("+ " + " ".join(cmd[1:] if cmd[0].endswith("recsim-run") else cmd), flush=True)
        subprocess.run(cmd)  # a failed job fails its sweep at the end; the others' results stay
    from recsim_causal.experiment.report import build_report

    try:
        table, written = build_report(out, force=True)
    except ValueError as e:
        print(f"error: suite: {e}", file=sys.stderr)
        sys.exit(1)
    print(table)
    expected, done = expected_runs(cmds), len(list(out.glob("*/*/summary.json")))
    if done < expected:  # a failed job stops its sweep: later jobs may not have started
        failed = failed_jobs(out)
        print(f"WARNING: {expected - done} of {expected} runs are missing from the tables (failed: "
              f"{', '.join(failed) or 'none recorded'}; the rest did not start after a failure)")
    print(f"suite: {time.perf_counter() - start:.0f} s; written into {out}: {', '.join(p.name for p in written)}")
