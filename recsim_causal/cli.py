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
    """``recsim-report SWEEP_DIR [--metric cumulative_regret]``: leaderboard.md and .png of a sweep."""
    from recsim_causal.experiment.report import write_report

    parser = argparse.ArgumentParser(prog="recsim-report", description=report.__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--metric", default="cumulative_regret")
    args = parser.parse_args(argv)
    try:
        print(write_report(args.sweep_dir, args.metric))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"\nwritten: {args.sweep_dir / 'leaderboard.md'}, {args.sweep_dir / 'leaderboard.png'}")
