"""The experiments: one table (experiment, setting) -> runner, consulted once per job.

A runner is ``run(cfg, out_dir, tracker) -> summary`` (``cfg``: the resolved run config as a
dict). The setting of a run is decided here, once (:func:`setting_of`): ``one_item``
(Bandit-v0, one slot), ``slate`` (Bandit-v0 with ``slate_size`` > 1; with ``experiment.data``,
a slate log) or ``session`` (Session-v0). A runner registered for setting ``"*"`` serves every setting.

Add an experiment by adding an entry: either a ``"module:function"`` string to
:data:`RUNNERS` (imported when a job needs it), or the decorator in your module::

    @register("offline", "one_item")
    def run_offline(cfg, out_dir, tracker): ...

(then ``conf/experiment/offline.yaml`` with ``name: offline``, and the module imported by an
entry here, e.g. ``("offline", "*"): "recsim_causal.experiment.offline:run_offline"``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

SETTINGS = ("one_item", "slate", "session")
ANY = "*"

#: (experiment, setting) -> runner, or "module:function" imported on first use.
RUNNERS: dict[tuple[str, str], Callable[..., dict] | str] = {
    ("online", ANY): "recsim_causal.experiment.online:run_online",
    ("ope", "one_item"): "recsim_causal.experiment.ope:run_ope",
    ("ope", "slate"): "recsim_causal.experiment.ope_slate:run_ope_slate",
    ("ope", "session"): "recsim_causal.experiment.ope_session:run_ope_session",
    ("ope_shift", "one_item"): "recsim_causal.experiment.ope_shift:run_ope_shift",
    ("ope_coverage", ANY): "recsim_causal.experiment.coverage:run_coverage",
    ("ctr", ANY): "recsim_causal.experiment.ctr:run_ctr",
    ("compare", ANY): "recsim_causal.experiment.compare:run_compare",
    ("offline", "one_item"): "recsim_causal.experiment.offline:run_offline",
    ("offline", "session"): "recsim_causal.experiment.offline:run_offline_session",
    ("tune", ANY): "recsim_causal.experiment.tune:run_tune",
    ("ops", ANY): "recsim_causal.experiment.ops:run_ops",
}


def register(experiment: str, setting: str = ANY) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """Decorator: ``fn`` runs ``experiment`` in ``setting`` (one of SETTINGS, or ``"*"``)."""
    if setting != ANY and setting not in SETTINGS:
        raise ValueError(f"register: setting must be one of {', '.join(SETTINGS)} or '*', got {setting!r}")

    def deco(fn: Callable[..., dict]) -> Callable[..., dict]:
        RUNNERS[(experiment, setting)] = fn
        return fn

    return deco


def experiments() -> tuple[str, ...]:
    """The registered experiment names."""
    return tuple(dict.fromkeys(name for name, _ in RUNNERS))


def setting_of(cfg: Mapping[str, Any]) -> str:
    """The setting of a resolved run config: session, slate or one_item."""
    env = cfg.get("env") or {}
    if env.get("id") == "RecSimCausal/Session-v0":
        return "session"
    slate_size = int(env.get("slate_size", 1) or 1)
    if slate_size > 1:
        return "slate"
    return "one_item"


def runner_for(experiment: str, setting: str) -> Callable[..., dict]:
    """The runner of ``experiment`` in ``setting``; one-line errors naming the known ones."""
    known = experiments()
    if experiment not in known:
        raise ValueError(f"experiment.name: expected one of {', '.join(known)}, got {experiment!r}")
    entry = RUNNERS.get((experiment, setting)) or RUNNERS.get((experiment, ANY))
    if entry is None:
        have = [s for e, s in RUNNERS if e == experiment]
        raise ValueError(f"env: experiment={experiment} runs in the settings {', '.join(have)}, not {setting}")
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        entry = RUNNERS[(experiment, setting) if (experiment, setting) in RUNNERS else (experiment, ANY)] = \
            getattr(importlib.import_module(module), name)
    return entry
