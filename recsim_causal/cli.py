"""Console commands: ``recsim-run`` (the Hydra app) and ``recsim-report`` (a sweep's leaderboard).

``recsim-run agent=linucb [env=session] [scm=confounded] [seed=3]``; sweeps with ``-m``
(``hydra/launcher=joblib_local`` in parallel processes, ``hydra/launcher=ray_local`` on Ray).
The configs ship inside the package (``pkg://recsim_causal.conf``); ``--config-dir DIR`` adds
your own groups (``agent=my_policy``). ``scripts/run.py`` and ``scripts/report.py`` call these.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _one_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


@hydra.main(version_base="1.3", config_path="pkg://recsim_causal.conf", config_name="config")
def _run_app(cfg: DictConfig) -> dict | None:
    from recsim_causal.experiment.runner import run_job

    hc = HydraConfig.get()
    try:
        return run_job(cfg, Path(hc.runtime.output_dir), hc)
    except (ValueError, TypeError, KeyError) as e:  # config and input errors: one line, no traceback
        print(f"error: {_one_line(e)}", file=sys.stderr)
        sys.exit(2)


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
