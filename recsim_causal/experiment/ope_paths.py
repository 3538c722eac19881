"""experiment=ope for each setting: one straight path per setting, picked from the env config.

one item (Bandit-v0, slate_size 1): :mod:`recsim_causal.experiment.ope`
slates   (Bandit-v0, slate_size > 1): :mod:`recsim_causal.experiment.ope_slate`
sessions (Session-v0):                :mod:`recsim_causal.experiment.ope_session`
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from recsim_causal.config import check_integer
from recsim_causal.experiment.tracking import Tracker


def check_setting(exp: dict, key: str, counts: Iterable[str], estimators: Iterable[str]) -> None:
    """The checks every setting's ``experiment.<key>`` block shares: positive counts, the logger's
    epsilon, known estimator names, at least one target; one-line errors naming the field."""
    block = exp.get(key) or {}
    for name in counts:
        check_integer(block.get(name), f"experiment.{key}.{name}", minimum=1)
    check_integer(exp.get("train_rounds"), "experiment.train_rounds", minimum=1)
    eps = exp["logger"].get("epsilon", 0.0)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps <= 1:
        raise ValueError(f"experiment.logger.epsilon: expected a number in [0, 1], got {eps!r}")
    known = list(estimators)
    unknown = [e for e in block.get("estimators") or [] if e not in known]
    if unknown:
        raise ValueError(f"experiment.{key}.estimators: unknown estimator '{unknown[0]}' (known: {', '.join(known)})")
    if not block.get("targets"):
        raise ValueError(f"experiment.{key}.targets: expected a non-empty list of agents")


def run_setting(resolved: dict, out_dir: str | Path, tracker: Tracker) -> dict:
    """Run the slate or session OPE path for ``resolved["env"]``."""
    env_cfg = resolved["env"]
    if env_cfg["id"] == "RecSimCausal/Session-v0":
        from recsim_causal.experiment.ope_session import run_ope_session

        return run_ope_session(resolved, out_dir, tracker)
    if env_cfg["id"] == "RecSimCausal/Bandit-v0":
        from recsim_causal.experiment.ope_slate import run_ope_slate

        return run_ope_slate(resolved, out_dir, tracker)
    raise ValueError(f"env.id: experiment=ope knows RecSimCausal/Bandit-v0 and RecSimCausal/Session-v0, got {env_cfg['id']}")
