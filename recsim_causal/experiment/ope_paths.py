"""What the OPE settings' config checks share. Each setting has its own straight path, picked
by the experiment registry (:mod:`recsim_causal.experiment.registry`):

one item (Bandit-v0, slate_size 1): :mod:`recsim_causal.experiment.ope`
slates   (Bandit-v0, slate_size > 1): :mod:`recsim_causal.experiment.ope_slate`
sessions (Session-v0):                :mod:`recsim_causal.experiment.ope_session`
"""

from __future__ import annotations

from collections.abc import Iterable

from recsim_causal.config import check_integer


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

