"""One Hydra job: check the config, pick the experiment, open the W&B run, run, print the summary table.

Naming: the W&B run is ``<agent or experiment>-<env>-<scm>[-<swept key=value>...]-seed<seed>``
(``linucb-bandit-default-alpha=0.1-seed0``; an OPE run is ``ope-bandit-default-...``: its
``agent`` default is unused), grouped by the sweep's (or the run's) date and time
(``2026-11-28_00-50-00``). Under ``-m`` every console line of the job (progress lines and the
summary) starts with the job's name, so parallel jobs (joblib, Ray) cannot be confused.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from recsim_causal.config import check_bool, check_keys, check_seed
from recsim_causal.experiment.registry import runner_for, setting_of
from recsim_causal.experiment.tracking import tracker_from_config
from recsim_causal.progress import PREFIX_ENV
from recsim_causal.rundir import check_run_dir, claim_run_dir, lock_run_dir, unlock_run_dir
from recsim_causal.threads import single_threaded_blas

_NAMED_KEYS = ("agent", "env", "scm", "seed", "experiment", "setting")  # group choices already in the name


def run_job(cfg: Any, out_dir: Path, hydra_cfg: Any = None) -> dict:
    """Run ``cfg.experiment.name`` with a W&B run for this job (grouped by sweep under -m)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    run = runner_for(cfg.experiment.get("name"), setting_of(resolved))
    check_seed(resolved.get("seed"))
    check_experiment_keys(resolved["experiment"])
    overwrite = check_bool(resolved.get("overwrite", False), "overwrite")
    group, job = run_names(cfg, out_dir, hydra_cfg)
    prefix = f"[{job}] " if _is_multirun(hydra_cfg) else ""
    # The hot products (users x features x items, per-arm ridge updates) are small: one BLAS
    # thread does them fastest, and two threads on a busy 2-core machine spin 10x slower.
    with claim_run_dir(out_dir, overwrite), _job_prefix(prefix), single_threaded_blas(), \
            tracker_from_config(cfg, out_dir, default_group=group, name=job) as tracker:
        summary = run(resolved, out_dir, tracker)
    print_summary(summary, out_dir, prefix)
    return summary


@contextlib.contextmanager
def _job_prefix(prefix: str) -> Iterator[None]:
    """Set the progress lines' prefix (``RECSIM_JOB_PREFIX``) for this job, restored after."""
    old = os.environ.get(PREFIX_ENV)
    if prefix:
        os.environ[PREFIX_ENV] = prefix
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(PREFIX_ENV, None)
        else:
            os.environ[PREFIX_ENV] = old


def _is_multirun(hydra_cfg: Any) -> bool:
    return hydra_cfg is not None and str(hydra_cfg.mode) == "RunMode.MULTIRUN"


def run_names(cfg: Any, out_dir: Path, hydra_cfg: Any = None) -> tuple[str, str]:
    """(W&B group, run name) of a job: the group is the sweep's (else the run's) date and time;
    the name says what the run is: agent (online) or experiment, env, scm, swept values, seed."""
    choices = dict(hydra_cfg.runtime.choices) if hydra_cfg is not None else {}
    exp = cfg.experiment.get("name")
    task = [str(o) for o in hydra_cfg.overrides.task] if hydra_cfg is not None else []
    if exp == "online":
        head = choices.get("agent")
        if not head or any(o.startswith("agent._target_=") for o in task):  # a policy given by its _target_
            head = str(cfg.agent.get("_target_", "agent")).rsplit(".", 1)[-1]
    else:
        head = exp
    env = choices.get("env") or str(cfg.env.get("id", "env")).rsplit("/", 1)[-1]
    scm = cfg.scm.get("name") or choices.get("scm") or "scm"
    swept = [f"{k.rsplit('.', 1)[-1]}={v}" for k, v in swept_overrides(hydra_cfg).items()
             if k not in _NAMED_KEYS and not k.startswith("hydra")]
    job = "-".join([str(head), str(env), str(scm), *swept, f"seed{cfg.seed}"])
    if _is_multirun(hydra_cfg):
        sweep_dir = Path(str(hydra_cfg.sweep.dir))
        group = date_time_name(sweep_dir, sweep_dir / "multirun.yaml")
    else:
        group = date_time_name(Path(out_dir))
    return group, job


def swept_overrides(hydra_cfg: Any) -> dict[str, str]:
    """This job's values of the keys that the sweep varies (``agent.alpha=0.1,1.0`` -> alpha),
    read from the sweep's ``multirun.yaml`` (the command line as given). Empty outside -m."""
    if not _is_multirun(hydra_cfg):
        return {}
    from hydra.core.override_parser.overrides_parser import OverridesParser

    path = Path(str(hydra_cfg.sweep.dir)) / "multirun.yaml"
    try:
        given = list(OmegaConf.load(path).hydra.overrides.task)
    except Exception:  # no multirun.yaml (a launcher that writes none): no swept values in the name
        return {}
    parser = OverridesParser.create()
    swept = {o.key_or_group for o in parser.parse_overrides(given) if o.is_sweep_override()}
    mine = parser.parse_overrides(list(hydra_cfg.overrides.task))
    return {o.key_or_group: o.value() if not isinstance(o.value(), (list, dict)) else str(o.value())
            for o in mine if o.key_or_group in swept}


def date_time_name(path: Path, stamp_file: Path | None = None) -> str:
    """``YYYY-MM-DD_HH-MM-SS`` from a Hydra directory (``multirun/<date>/<time>``,
    ``outputs/<date>/<time>_<agent>``); elsewhere the directory's name plus the date and time of
    ``stamp_file`` (shared by a sweep's jobs) or of now."""
    date = path.parent.name
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", date) and re.match(r"\d{2}-\d{2}-\d{2}", path.name):
        return f"{date}_{path.name}"
    try:
        when = datetime.fromtimestamp(stamp_file.stat().st_mtime) if stamp_file is not None else datetime.now()
    except OSError:
        when = datetime.now()
    return f"{path.name}-{when:%Y-%m-%d_%H-%M-%S}"


def print_summary(summary: dict, out_dir: Path, prefix: str = "") -> None:
    """The job's result on stdout, every line starting with ``prefix`` (the job's name under -m)."""
    if "table" in summary:  # OPE and compare: the table is already formatted
        lines = str(summary["table"]).splitlines()
    else:
        rows = [(k, f"{v:,.4f}" if isinstance(v, float) else str(v)) for k, v in summary.items()
                if not isinstance(v, (dict, list))]
        width = max(len(k) for k, _ in rows)
        lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines.append(f"outputs: {out_dir}")
    print("\n".join(prefix + line for line in lines), flush=True)


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
    mapping of mappings, like ``estimators``, is a table of free names and is not checked), and
    a key whose default is true or false takes true or false only."""
    if defaults is None:
        defaults = _experiment_defaults().get(exp.get("name"))
        if defaults is None:
            return
    check_keys(exp, defaults, where)
    for key, value in exp.items():
        default = defaults.get(key)
        if isinstance(default, bool):  # a switch is true or false, never a truthy string ('no')
            check_bool(value, f"{where}.{key}")
        if isinstance(value, dict) and isinstance(default, dict) and default \
                and not all(isinstance(v, dict) for v in default.values()):
            check_experiment_keys(value, default, f"{where}.{key}")


def short_dirname(name: str, limit: int = 200) -> str:
    """A sweep job's directory name (Hydra's ``override_dirname``) within ``limit`` bytes: past
    it, its head and a hash of the whole (file systems refuse names over 255 bytes, which a
    sweep with a dozen overrides reaches). The config's ``hydra.sweep.subdir`` uses it as
    ``${recsim_short:${hydra.job.override_dirname}}``; the full overrides stay in ``.hydra/``."""
    raw = str(name).encode()
    if len(raw) <= limit:
        return str(name)
    return f"{raw[: limit - 11].decode(errors='ignore')}_{hashlib.sha1(raw).hexdigest()[:10]}"


def run_dir_name(experiment: str, agent: str) -> str:
    """What a run's default directory is named after: its agent for an online run, else its
    experiment (an OPE run does not use the ``agent`` group)."""
    return agent if experiment == "online" else experiment


# Registered on import: Hydra imports this module for the RunDirGuard callback before it
# resolves a run's or a sweep job's directory (in the launcher's process or a worker's).
OmegaConf.register_new_resolver("recsim_short", short_dirname, replace=True)
OmegaConf.register_new_resolver("recsim_run_name", run_dir_name, replace=True)


class RunDirGuard(Callback):
    """Hydra callback: take the run directory's lock and check it before Hydra writes its
    ``.hydra/`` files into it, so a refused run (the directory holds another run's results, or
    another run is writing into it) leaves the earlier run's config untouched. The lock is held
    until the run ends (see :mod:`recsim_causal.rundir`)."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        from recsim_causal.errors import failure

        HydraConfig.instance().set_config(config)  # the default run dir interpolates ${hydra:...}
        try:
            out_dir = Path(str(config.hydra.run.dir))
            overwrite = check_bool(config.get("overwrite", False), "overwrite")
            lock_run_dir(out_dir)
            check_run_dir(out_dir, overwrite)
        except Exception as e:  # Hydra turns a callback's exception into a warning: end the run here
            unlock_run_dir(Path(str(config.hydra.run.dir)))
            code, line = failure(e)
            print(line, file=sys.stderr)
            sys.exit(code)
