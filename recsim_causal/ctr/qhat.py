"""The text-aware click model as q-hat(x, a) for DM, DR and their variants, cross-fitted.

``fit_predict_ctr`` has the shape of :func:`recsim_causal.ope.fit_predict`: with
``n_folds`` > 1 each round's q-hat comes from a model trained on the other folds (the folds
of ``KFold(n_folds, shuffle=True, random_state)``, as the other reward models), and the
output is (n_rounds, n_actions, 1), the ``estimated_rewards_by_reg_model`` of the estimators.
Reference: Y. Narita, S. Yasui, K. Yata. "Off-policy Bandit and Reinforcement Learning.",
2020 (cross-fitting).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from recsim_causal.ctr.model import CTRConfig, CTRModel
from recsim_causal.ope.reward_models import kfold_indices

__all__ = ["fit_predict_ctr"]


def fit_predict_ctr(context: Any, action: Any, reward: Any, n_actions: int, *, item_texts: Sequence[str] | None = None,
                    item_features: np.ndarray | None = None, n_folds: int = 2, random_state: Any = 0,
                    config: CTRConfig | dict | None = None) -> np.ndarray:
    """Cross-fitted click probabilities of every item for every logged round: (n, K, 1).

    ``config``: a :class:`CTRConfig` or a mapping of its fields (default: the ``bert`` model
    with its defaults). Rewards must be clicks (0 / 1).
    """
    cfg = config if isinstance(config, CTRConfig) else CTRConfig.from_dict(config)
    x = np.asarray(context, np.float64)
    a = np.asarray(action)
    y = np.asarray(reward, np.float64)
    if x.ndim != 2:
        raise ValueError(f"context: expected shape (n_rounds, dim_context), got {x.shape}")
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 1:
        raise ValueError(f"n_folds: expected an int >= 1, got {n_folds!r}")

    def model() -> CTRModel:
        return CTRModel(cfg, n_actions, x.shape[1], item_texts=item_texts, item_features=item_features)

    if n_folds == 1:
        return model().fit(x, a, y).predict_all(x)[:, :, None]
    out = np.empty((x.shape[0], n_actions, 1))
    for train, test in kfold_indices(x.shape[0], int(n_folds), random_state):
        out[test, :, 0] = model().fit(x[train], a[train], y[train]).predict_all(x[test])
    return out

