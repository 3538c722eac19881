"""Weights & Biases tracking that never fails a run.

One W&B run per job: the config the experiment used, its curves, the final summary (with one
scalar per estimator and number: ``ope/<target>/<estimator>/estimate`` ...), the plots under
``images/<name>`` and the tables under ``tables/<name>``. Each curve has its own x axis
(``<curve>/step``, declared with ``define_metric``): PPO's training curves run over its env
steps (``ppo/step``), the online loop's over decisions (``online/step``), and neither drops the
other's points (W&B's own step only ever grows, and a log at a smaller step is discarded). ``mode`` is ``offline`` by default (no account, no network: the run is written under
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
        self._curves: set[str] = set()
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

    def log(self, metrics: Mapping[str, Any]) -> None:
        """Values at W&B's own next step (for curves over a quantity of their own: :meth:`curve`)."""
        if self.run is not None:
            self.run.log(dict(metrics))

    def curve(self, name: str, step: float, values: Mapping[str, Any]) -> None:
        """One point of the curves ``<name>/<key>`` against their own x axis ``<name>/step``."""
        if self.run is None:
            return
        if name not in self._curves:
            self.run.define_metric(f"{name}/step")
            self.run.define_metric(f"{name}/*", step_metric=f"{name}/step")
            self._curves.add(name)
        self.run.log({f"{name}/step": step, **{f"{name}/{k}": v for k, v in values.items()}})

    def summary(self, values: Mapping[str, Any]) -> None:
        if self.run is not None:
            for k, v in values.items():
                self.run.summary[k] = v

    def image(self, name: str, path: str | Path) -> None:
        """A plot, as ``images/<name>``."""
        if self.run is not None:
            import wandb

            self.run.log({f"images/{name}": wandb.Image(str(path))})

    def table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        """A table, as ``tables/<name>``."""
        if self.run is not None:
            import wandb

            self.run.log({f"tables/{name}": wandb.Table(columns=columns, data=rows)})

    def estimates(self, prefix: str, records: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
        """Per-estimator scalars into the summary, ``<prefix>/<target>/<estimator>/<number>``:
        ``records[target][estimator]`` maps names to numbers (estimate, error, covers, width,
        valid, ...); booleans become 0/1 so W&B can chart them; None, NaN and text are left out."""
        flat: dict[str, float] = {}
        for target, by_estimator in records.items():
            for estimator, numbers in by_estimator.items():
                for key, value in numbers.items():
                    if isinstance(value, bool):
                        value = int(value)
                    if isinstance(value, (int, float)) and value == value:
                        flat[f"{prefix}/{target}/{estimator}/{key}"] = value
        self.summary(flat)

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(0 if exc_type is None else 1)


#: Config groups an experiment does not read: they stay out of its W&B config (an OPE run's
#: policies are ``experiment.logger`` and ``experiment.targets``, not the ``agent`` default).
UNUSED_GROUPS = {"ope": ("agent",), "ope_coverage": ("agent",), "compare": ("agent",), "ctr": ("agent",)}


def used_config(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config without the groups its experiment does not use, nor ``wandb``."""
    name = (resolved.get("experiment") or {}).get("name")
    drop = {"wandb", *UNUSED_GROUPS.get(name, ())}
    return {k: v for k, v in resolved.items() if k not in drop}


def tracker_from_config(cfg: Any, run_dir: Path, *, default_group: str, name: str) -> Tracker:
    """The Tracker for a Hydra run: ``cfg.wandb`` settings, the whole resolved config."""
    from omegaconf import OmegaConf

    w = cfg.wandb
    # W&B turned off in the environment wins over the config (no run on record that was refused)
    off = os.environ.get("WANDB_MODE") == "disabled" or os.environ.get("WANDB_DISABLED", "").lower() in ("true", "1")
    return Tracker(mode="disabled" if off and w.mode in MODES else w.mode, project=w.project, entity=w.entity, group=w.group or default_group, name=name,
                   tags=list(w.tags or []), config=used_config(OmegaConf.to_container(cfg, resolve=True)), run_dir=run_dir,
                   init_timeout=w.get("init_timeout", 30))


# ------------------------------------------------------------ per-estimator scalars for W&B
# Each maps a result file's records to {group: {name: {number: value}}} for Tracker.estimates.


def ope_scalars(targets: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """``ope.json``'s targets: per target and estimator its estimate, truth, error, whether the
    interval covers the truth, the interval's width and whether it is valid."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for target, t in targets.items():
        for est, e in (t.get("estimators") or {}).items():
            lo, hi = e.get("ci_low"), e.get("ci_high")
            width = e.get("ci_width", hi - lo if lo is not None and hi is not None else None)
            out.setdefault(target, {})[est] = {"estimate": e.get("estimate"), "truth": e.get("truth", t.get("truth")),
                                               "error": e.get("error"), "covers": e.get("covers"), "width": width,
                                               "valid": e.get("interval_valid")}
    return out


def coverage_scalars(targets: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """``coverage.json``'s targets: per target and ``<estimator>/<interval method>`` the bias,
    RMSE, coverage, mean width and the share of valid intervals."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for target, t in targets.items():
        for est, e in (t.get("estimators") or {}).items():
            for method, m in (e.get("intervals") or {}).items():
                out.setdefault(target, {})[f"{est}/{method}"] = {
                    "bias": e.get("bias"), "error": e.get("bias"), "rmse": e.get("rmse"), "covers": m.get("coverage"),
                    "width": m.get("mean_width"), "valid": m.get("valid_share")}
    return out


def compare_scalars(pairs: list[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``compare.json``'s pairs: per ``<a>-<b>`` and compared quantity the difference, its paired
    interval's width and the unpaired one's, and for the A/B test the share of intervals that
    covered the exact difference."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for p in pairs:
        pair = f"{p['a']}-{p['b']}"
        for key, v in p.items():
            if not isinstance(v, Mapping) or key == "ab_test":
                continue
            out.setdefault(pair, {})[key] = {"estimate": v.get("difference"), "width": v.get("ci_width"),
                                             "unpaired_width": (v.get("unpaired") or {}).get("ci_width"),
                                             "width_ratio": v.get("width_ratio")}
        if p.get("ab_test"):
            ab = p["ab_test"]
            out.setdefault(pair, {})["ab_test"] = {"covers": ab.get("coverage"), "width": ab.get("mean_ci_width"),
                                                   "unpaired_width": ab.get("mean_unpaired_ci_width"),
                                                   "width_ratio": ab.get("width_ratio")}
    return out
