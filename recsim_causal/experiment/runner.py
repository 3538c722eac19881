"""One Hydra job: check the config, pick the experiment, open the W&B run, run, print the summary table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from recsim_causal.config import check_integer, check_keys

from recsim_causal.experiment.tracking import tracker_from_config
from recsim_causal.threads import single_threaded_blas

EXPERIMENTS = ("online", "ope", "ctr")


def run_job(cfg: Any, out_dir: Path, hydra_cfg: Any = None) -> dict:
    """Run ``cfg.experiment.name`` with a W&B run for this job (grouped by sweep under -m)."""
    name = cfg.experiment.get("name")
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment.name: expected one of {', '.join(EXPERIMENTS)}, got {name!r}")
    resolved = OmegaConf.to_container(cfg, resolve=True)
    check_integer(resolved.get("seed"), "seed", minimum=0)
    check_experiment_keys(resolved["experiment"])
    check_run_dir(out_dir, bool(resolved.get("overwrite", False)))
    group, job = _names(cfg, out_dir, hydra_cfg)
    # The hot products (users x features x items, per-arm ridge updates) are small: one BLAS
    # thread does them fastest, and two threads on a busy 2-core machine spin 10x slower.
    with single_threaded_blas(), \
            tracker_from_config(cfg, out_dir, default_group=group, name=job) as tracker:
        if name == "online":
            from recsim_causal.experiment.online import run_online

            summary = run_online(cfg, out_dir, tracker, resolved=resolved)
        elif name == "ctr":
            from recsim_causal.experiment.ctr import run_ctr

            summary = run_ctr(cfg, out_dir, tracker, resolved=resolved)
        else:
            from recsim_causal.experiment.ope import run_ope

            summary = run_ope(cfg, out_dir, tracker, resolved=resolved)
    print_summary(summary, out_dir)
    return summary


def _names(cfg: Any, out_dir: Path, hydra_cfg: Any) -> tuple[str, str]:
    """W&B group (the sweep directory under -m, else the run directory) and job name."""
    choices = dict(hydra_cfg.runtime.choices) if hydra_cfg is not None else {}
    job = f"{choices.get('agent', cfg.agent.get('_target_', 'agent'))}-{choices.get('env', '')}-seed{cfg.seed}"
    multirun = hydra_cfg is not None and str(hydra_cfg.mode) == "RunMode.MULTIRUN"
    group = Path(hydra_cfg.sweep.dir).name if multirun else out_dir.name
    return group, job


def print_summary(summary: dict, out_dir: Path) -> None:
    if "table" in summary:  # OPE: the table is already formatted
        print(summary["table"])
    else:
        rows = [(k, f"{v:,.4f}" if isinstance(v, float) else str(v)) for k, v in summary.items()
                if not isinstance(v, (dict, list))]
        width = max(len(k) for k, _ in rows)
        print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    print(f"outputs: {out_dir}")


def _experiment_defaults() -> dict[str, dict]:
    """The packaged experiment configs (conf/experiment/*.yaml), by their ``name``."""
    from recsim_causal.scm.world import CONF_DIR

    out = {}
    for path in sorted((CONF_DIR / "experiment").glob("*.yaml")):
        default = OmegaConf.to_container(OmegaConf.load(path))
        out.setdefault(default.get("name", path.stem), default)
    return out


def check_experiment_keys(exp: dict, defaults: dict | None = None, where: str = "experiment") -> None:
    """Every key of an experiment config must be one its packaged default has (recursively; a
    mapping of mappings, like ``estimators``, is a table of free names and is not checked)."""
    if defaults is None:
        defaults = _experiment_defaults().get(exp.get("name"))
        if defaults is None:
            return
    check_keys(exp, defaults, where)
    for key, value in exp.items():
        default = defaults.get(key)
        if isinstance(value, dict) and isinstance(default, dict) and default \
                and not all(isinstance(v, dict) for v in default.values()):
            check_experiment_keys(value, default, f"{where}.{key}")


def check_run_dir(out_dir: Path, overwrite: bool = False) -> None:
    """Refuse a run directory that already holds another run's results (anything but Hydra's
    ``.hydra/`` and log files), unless ``overwrite=true``."""
    if overwrite or not out_dir.is_dir():
        return
    taken = sorted(p.name for p in out_dir.iterdir() if p.name != ".hydra" and p.suffix != ".log")
    if taken:
        raise ValueError(f"hydra.run.dir: {out_dir} already holds another run's results ({', '.join(taken[:3])}); "
                         "choose another directory or pass overwrite=true")


class RunDirGuard(Callback):
    """Hydra callback: check the run directory before Hydra writes its ``.hydra/`` files into it,
    so a refused run leaves the earlier run's config untouched."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        try:
            check_run_dir(Path(str(config.hydra.run.dir)), bool(config.get("overwrite", False)))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
