"""Console commands: ``recsim-run`` (the Hydra app) and ``recsim-report`` (a sweep's leaderboard).

``recsim-run agent=linucb [env=session] [scm=confounded] [seed=3]``; sweeps with ``-m``
(``hydra/launcher=joblib_local`` in parallel processes, ``hydra/launcher=ray_local`` on Ray).
The configs ship inside the package (``pkg://recsim_causal.conf``); ``--config-dir DIR`` adds
your own groups (``agent=my_policy``). ``scripts/run.py`` and ``scripts/report.py`` call these.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import sysconfig
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _one_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


# recsim_causal's own source folders (agents/ and envs/ install under it from folders of their
# own), found without importing the subpackages (gymnasium is not needed for a report).
_OURS = tuple(str(Path(p).resolve()) for name in ("recsim_causal", "recsim_causal.agents", "recsim_causal.envs")
              for p in importlib.util.find_spec(name).submodule_search_locations)


_LIBRARIES = tuple(str(Path(sysconfig.get_paths()[k]).resolve()) for k in ("stdlib", "purelib", "platlib"))


def _raised_in_user_code(e: BaseException) -> str | None:
    """Where ``e`` was raised (``Class.method at file:line``) when the innermost frame that is
    neither recsim_causal's nor an installed library's is user code (a policy, a mechanism,
    a callback); None when it is recsim_causal's own (a config or input check)."""
    tb, last = e.__traceback__, None
    while tb is not None:
        filename = str(Path(tb.tb_frame.f_code.co_filename).resolve())
        if filename.startswith(_OURS):
            last = None
        elif not filename.startswith(_LIBRARIES):
            last = tb
        tb = tb.tb_next
    if last is None:
        return None
    code, owner = last.tb_frame.f_code, last.tb_frame.f_locals.get("self")
    name = f"{type(owner).__name__}.{code.co_name}" if owner is not None else code.co_name
    return f"{name} at {code.co_filename}:{last.tb_lineno}"


def run_guarded(job) -> Any:
    """Run ``job()`` the way the console commands report failures.

    Config and input errors (ValueError, TypeError, KeyError raised by recsim_causal's own
    checks), a missing file and a size that cannot fit in memory: one ``error:`` line, exit 2.
    An exception raised inside user code (a policy, a mechanism, a callback) keeps its
    traceback, followed by one line naming where it came from, exit 1.
    """
    try:
        return job()
    except FileNotFoundError as e:
        print(f"error: file not found: {e.filename}" if e.filename else f"error: {_one_line(e)}", file=sys.stderr)
    except MemoryError as e:
        print(f"error: out of memory: {_one_line(e)}", file=sys.stderr)
    except Exception as e:
        where = _raised_in_user_code(e)
        if where is not None:
            traceback.print_exc()
            print(f"error: {type(e).__name__} raised in user code ({where})", file=sys.stderr)
            sys.exit(1)
        if not isinstance(e, (ValueError, TypeError, KeyError)):
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
    sys.exit(2)


@hydra.main(version_base="1.3", config_path="pkg://recsim_causal.conf", config_name="config")
def _run_app(cfg: DictConfig) -> dict | None:
    from recsim_causal.experiment.runner import run_job

    hc = HydraConfig.get()
    return run_guarded(lambda: run_job(cfg, Path(hc.runtime.output_dir), hc))


def run() -> None:
    """``recsim-run``: the Hydra app (same arguments as ``python scripts/run.py``)."""
    _run_app()


def report(argv: list[str] | None = None) -> None:
    """``recsim-report SWEEP_DIR [--metric M] [--kind online|ope|coverage] [--force]``: a sweep's leaderboard."""
    from recsim_causal.experiment.report import build_report

    parser = argparse.ArgumentParser(
        prog="recsim-report", description=report.__doc__.splitlines()[0],
        epilog="Rows are keyed by the config values that differ across runs; seeds are averaged; one table "
               "per env x scm x slate size. Writes leaderboard.md/.json/.png (leaderboard_<metric>.* for a "
               "non-default metric) and, for online sweeps, curves.png/.json into the sweep directory.")
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--metric", default=None,
                        help="ranking metric (default: cumulative_regret online, rmse for OPE and coverage)")
    parser.add_argument("--kind", choices=("online", "ope", "coverage"), default=None,
                        help="which runs to tabulate when a sweep holds several kinds")
    parser.add_argument("--force", action="store_true", help="overwrite an earlier report of the same metric")
    args = parser.parse_args(argv)
    try:
        table, written = build_report(args.sweep_dir, args.metric, force=args.force, kind=args.kind)
    except ValueError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        sys.exit(2)
    print(table)
    print(f"written into {args.sweep_dir}: {', '.join(p.name for p in written)}")
