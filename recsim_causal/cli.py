"""Console commands: ``recsim-run`` (the Hydra app) and ``recsim-report`` (a sweep's leaderboard).

``recsim-run agent=linucb [env=session] [scm=confounded] [seed=3]``; sweeps with ``-m``
(``hydra/launcher=joblib_local`` in parallel processes, ``hydra/launcher=ray_local`` on Ray).
The configs ship inside the package (``pkg://recsim_causal.conf``); ``--config-dir DIR`` adds
your own groups (``agent=my_policy``). ``scripts/run.py`` and ``scripts/report.py`` call these.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from recsim_causal.errors import failure, one_line
from recsim_causal.rundir import unlock_run_dir


os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Ray folds repeated log lines of its workers into one ("[repeated 3x across cluster]"): a sweep's
# job summaries look alike, so all but one vanished. Every job's lines are kept.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def run_guarded(job) -> Any:
    """Run ``job()`` the way the console commands report failures (see :func:`failure`):
    one ``error:`` line on stderr and exit 2 for a mistake, exit 1 for an error in user code."""
    try:
        return job()
    except Exception as e:
        code, line = failure(e)
        print(line, file=sys.stderr)
        sys.exit(code)


#: Under ``-m``, a failed job writes its ``error:`` line (and exit code) here in its directory.
JOB_ERROR_FILE = "error.log"


class JobFailed(Exception):
    """A sweep job that failed (its ``error:`` line already printed): the launcher records it and
    runs the other jobs; the sweep ends with exit ``code`` naming every failed job."""

    def __init__(self, code: int, line: str, sweep_dir: str) -> None:
        super().__init__(code, line, sweep_dir)
        self.code, self.line, self.sweep_dir = code, line, sweep_dir

    def __str__(self) -> str:
        return self.line


def _run_sweep_job(job, out_dir: Path, hc: Any) -> Any:
    """A sweep job: a failure prints its ``error:`` line (naming the job), leaves it in the
    job's ``error.log`` and raises :class:`JobFailed` for the launcher to record, so the other
    jobs run on."""
    try:
        return job()
    except Exception as e:
        code, line = failure(e)
        line = f"error: job {hc.job.num} ({hc.job.override_dirname or 'no overrides'}): {line[len('error: '):]}"
        print(line, file=sys.stderr, flush=True)
        from recsim_causal.io import atomic_write

        with contextlib.suppress(OSError), atomic_write(out_dir / JOB_ERROR_FILE) as fh:
            fh.write(f"{line}\nexit code: {code}\n")
        raise JobFailed(code, line, str(hc.sweep.dir)) from None


def sweep_failures(sweep_dir: Path) -> tuple[int, str]:
    """(exit code, the ``error:`` line) that ends a sweep whose jobs failed: the failed jobs'
    directories, named from their ``error.log`` files; exit 2 when every failure was a mistake
    in config or data, else 1."""
    failed = sorted(sweep_dir.rglob(JOB_ERROR_FILE))
    jobs = [p for p in sweep_dir.rglob(".hydra") if p.is_dir()]
    codes = {2}
    for path in failed:
        with contextlib.suppress(OSError, ValueError):
            codes.add(int(path.read_text().rsplit("exit code:", 1)[1]))
    names = ", ".join(str(p.parent.relative_to(sweep_dir)) for p in failed)
    return max(codes), (f"error: sweep {sweep_dir}: {len(failed)} of {len(jobs)} jobs failed ({names}); "
                        "the other jobs ran to the end")


def check_config(cfg: DictConfig, hc: Any) -> None:
    """What Hydra accepts but no run means: a group whose file is not a mapping (``scm=x``
    where x.yaml is a list), and, for the packaged ``config``, top-level and ``wandb`` keys
    it does not have (``+seeds=3``, ``+wandb.modee=x``)."""
    from omegaconf import OmegaConf

    from recsim_causal.config import check_keys

    choices = dict(hc.runtime.choices)
    for group in ("agent", "env", "scm", "experiment"):
        node = cfg.get(group)
        if group in cfg and not isinstance(node, DictConfig):
            kind = "a list" if OmegaConf.is_list(node) else type(node).__name__
            raise ValueError(f"{group}: the config {group}={choices.get(group)} is {kind}, expected a mapping of settings")
    if hc.job.config_name != "config":
        return
    packaged = OmegaConf.load(Path(importlib.util.find_spec("recsim_causal.conf").submodule_search_locations[0])
                              / "config.yaml")
    groups = {str(d) for d in choices if "/" not in str(d) and not str(d).startswith("hydra")}
    check_keys(cfg, {*packaged.keys(), *groups} - {"defaults"}, "config")
    check_keys(cfg.get("wandb") or {}, packaged.wandb.keys(), "wandb")


@hydra.main(version_base="1.3", config_path="pkg://recsim_causal.conf", config_name="config")
def _run_app(cfg: DictConfig) -> dict | None:
    from recsim_causal.experiment.runner import run_job

    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)

    def job() -> dict:
        check_config(cfg, hc)
        return run_job(cfg, out_dir, hc)

    try:
        if str(hc.mode) == "RunMode.MULTIRUN":
            summary = _run_sweep_job(job, out_dir, hc)
            # a job with an objective (experiment=tune) answers it: what an optimizing sweeper reads
            return summary["objective"] if isinstance(summary, dict) and "objective" in summary else summary
        return run_guarded(job)
    finally:  # the lock RunDirGuard took, also when the job ends before it claims the directory
        unlock_run_dir(out_dir)


@contextlib.contextmanager
def _hydra_errors_raised(argv: list[str] | None) -> Iterator[None]:
    """Hydra reports its own errors (a 50-line traceback, exit 1) unless ``HYDRA_FULL_ERROR=1``
    lets them through: set it while the app runs so that they reach :func:`run` (a user who set
    it gets the full traceback). ``argv`` replaces ``sys.argv[1:]`` meanwhile."""
    old_env, old_argv = os.environ.get("HYDRA_FULL_ERROR"), sys.argv
    os.environ["HYDRA_FULL_ERROR"] = "1"
    if argv is not None:
        sys.argv = [sys.argv[0] if sys.argv else "recsim-run", *argv]
    try:
        yield
    finally:
        sys.argv = old_argv
        if old_env is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = old_env


def run(argv: list[str] | None = None) -> None:
    """``recsim-run``: the Hydra app (same arguments as ``python scripts/run.py``; ``argv``
    instead of the command line when given).

    A mistake in the command line, the config, the data or the file system ends the run with
    one ``error:`` line and exit 2 (Hydra's own errors included); an error in user code with
    its traceback and exit 1. A sweep runs every job; it ends with exit 2 (1 if a failure was in
    user code) and one line naming the failed jobs, whose results are absent and whose
    ``error.log`` says why."""
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    try:
        with _hydra_errors_raised(argv):
            _run_app()
    except JobFailed as e:
        code, line = sweep_failures(Path(e.sweep_dir))
    except Exception as e:
        if full_error:
            raise
        code, line = failure(e)
    else:
        return
    print(line, file=sys.stderr)
    sys.exit(code)


def report(argv: list[str] | None = None) -> None:
    """``recsim-report SWEEP_DIR [--metric M] [--kind KIND] [--force]``: a sweep's leaderboard."""
    from recsim_causal.experiment.report import ROW_BUILDERS, build_report

    parser = argparse.ArgumentParser(
        prog="recsim-report", description=report.__doc__.splitlines()[0],
        epilog="Rows are keyed by the config values that differ across runs; seeds are averaged; one table "
               "per env x scm x slate size. Writes leaderboard.md/.json/.png (leaderboard_<metric>.* for a "
               "non-default metric) and, for online sweeps, curves.png/.json into the sweep directory.")
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--metric", default=None,
                        help="ranking metric (default: cumulative_regret online, rmse for OPE, coverage and "
                             "ope_shift, true_value offline, regret@1 for ops)")
    parser.add_argument("--kind", choices=tuple(ROW_BUILDERS), default=None,
                        help="which runs to tabulate when a sweep holds several kinds")
    parser.add_argument("--force", action="store_true", help="overwrite an earlier report of the same metric")
    args = parser.parse_args(argv)
    try:
        table, written = build_report(args.sweep_dir, args.metric, force=args.force, kind=args.kind)
    except ValueError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    print(table)
    print(f"written into {args.sweep_dir}: {', '.join(p.name for p in written)}")
