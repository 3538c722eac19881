"""One Hydra job: pick the experiment, open the W&B run, run, print the summary table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from recsim_causal.experiment.tracking import tracker_from_config
from recsim_causal.threads import single_threaded_blas

EXPERIMENTS = ("online", "ope", "ctr")


def run_job(cfg: Any, out_dir: Path, hydra_cfg: Any = None) -> dict:
    """Run ``cfg.experiment.name`` with a W&B run for this job (grouped by sweep under -m)."""
    name = cfg.experiment.get("name")
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment.name: expected one of {', '.join(EXPERIMENTS)}, got {name!r}")
    resolved = OmegaConf.to_container(cfg, resolve=True)
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
        rows = [(k, f"{v:,.4f}" if isinstance(v, float) else str(v)) for k, v in summary.items()]
        width = max(len(k) for k, _ in rows)
        print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    print(f"outputs: {out_dir}")
