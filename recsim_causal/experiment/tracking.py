"""Weights & Biases tracking that never fails a run.

One W&B run per job: the resolved config, the learning curve, the final summary and the
plots. ``mode`` is ``offline`` by default (no account, no network: the run is written under
``<run dir>/wandb`` and can be synced later with ``wandb sync``), ``online`` uses the user's
key, ``disabled`` turns tracking off. If W&B cannot start (no key, no network, a broken
install), the run goes on untracked and says so in one warning line.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping

MODES = ("offline", "online", "disabled")


class Tracker:
    """A W&B run, or nothing when tracking is disabled or unavailable.

    Args:
        mode: offline | online | disabled.
        project, entity, group, name, tags: as in ``wandb.init``.
        config: the resolved run config (a plain dict).
        run_dir: where the offline run directory ``wandb/`` is written.
        init_timeout: seconds W&B may take to start before the run goes on without it.
    """

    def __init__(self, *, mode: str = "offline", project: str = "recsim-causal", entity: str | None = None,
                 group: str | None = None, name: str | None = None, tags: list[str] | None = None,
                 config: Mapping[str, Any] | None = None, run_dir: str | Path = ".", init_timeout: float = 30):
        if mode not in MODES:
            raise ValueError(f"wandb.mode: expected one of {', '.join(MODES)}, got {mode!r}")
        self.run = None
        self.mode = mode
        if mode == "disabled":
            return
        try:
            import wandb

            Path(run_dir).mkdir(parents=True, exist_ok=True)
            os.environ.setdefault("WANDB_SILENT", "true")
            self.run = wandb.init(
                mode=mode, project=project, entity=entity, group=group, name=name, tags=list(tags or []),
                config=dict(config or {}), dir=str(run_dir), reinit="finish_previous",
                settings=wandb.Settings(init_timeout=init_timeout, console="off", x_disable_stats=True),
            )
        except Exception as e:  # a run never fails because W&B is unreachable
            warnings.warn(f"wandb: tracking disabled for this run ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
                          stacklevel=2)
            self.run = None

    @property
    def run_dir(self) -> Path | None:
        """The W&B run's local directory (offline: ``.../wandb/offline-run-*``)."""
        return Path(self.run.dir).parent if self.run is not None else None

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(dict(metrics), step=step)

    def summary(self, values: Mapping[str, Any]) -> None:
        if self.run is not None:
            for k, v in values.items():
                self.run.summary[k] = v

    def image(self, key: str, path: str | Path) -> None:
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Image(str(path))})

    def table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Table(columns=columns, data=rows)})

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(0 if exc_type is None else 1)


def tracker_from_config(cfg: Any, run_dir: Path, *, default_group: str, name: str) -> Tracker:
    """The Tracker for a Hydra run: ``cfg.wandb`` settings, the whole resolved config."""
    from omegaconf import OmegaConf

    w = cfg.wandb
    # W&B turned off in the environment wins over the config (no run on record that was refused)
    off = os.environ.get("WANDB_MODE") == "disabled" or os.environ.get("WANDB_DISABLED", "").lower() in ("true", "1")
    return Tracker(mode="disabled" if off else w.mode, project=w.project, entity=w.entity, group=w.group or default_group, name=name,
                   tags=list(w.tags or []), config=OmegaConf.to_container(cfg, resolve=True), run_dir=run_dir,
                   init_timeout=w.get("init_timeout", 30))
