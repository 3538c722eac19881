"""``OffPolicyEvaluation``: Open Bandit Pipeline's meta class, with OBP's method and argument
names, over this package's estimators. An OBP script ports by changing its imports::

    from recsim_causal.ope import DM, DR, IPS, OffPolicyEvaluation, simulate_log

    bandit_feedback = simulate_log("default", "linucb", 10_000, epsilon=0.2).to_obp()
    ope = OffPolicyEvaluation(bandit_feedback=bandit_feedback, ope_estimators=[IPS(), DM(), DR()])
    ope.estimate_policy_values(action_dist=action_dist, estimated_rewards_by_reg_model=q_hat)

(OBP 0.5.7: ``obp/ope/meta.py``; Saito et al., "Open Bandit Dataset and Pipeline", NeurIPS
Datasets and Benchmarks 2021.)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .estimators import BaseOffPolicyEstimator, estimate_all, estimate_all_intervals

__all__ = ["OffPolicyEvaluation"]

METRICS = ("relative-ee", "se")


@dataclass
class OffPolicyEvaluation:
    """Run several estimators on one ``bandit_feedback`` dict (OBP's keys: reward, action,
    pscore, position, pi_b, ...).

    Every method takes OBP's arrays: ``action_dist`` (n, K, L) or (n, K) of the evaluation
    policy, ``estimated_rewards_by_reg_model`` (for DM/DR), ``estimated_pscore``,
    ``action_embed``, ``pi_b``, ``p_e_a`` (MIPS)."""

    bandit_feedback: dict
    ope_estimators: Sequence[BaseOffPolicyEstimator]

    def __post_init__(self) -> None:
        for key in ("reward", "action", "pscore"):
            if key not in self.bandit_feedback:
                raise ValueError(f"bandit_feedback: missing key '{key}' (OBP's keys: reward, action, pscore, ...)")
        self.ope_estimators_ = {e.estimator_name: e for e in self.ope_estimators}
        if len(self.ope_estimators_) < len(self.ope_estimators):
            raise ValueError("ope_estimators: two estimators share an estimator_name")

    def _inputs(self, action_dist: np.ndarray, **given: Any) -> dict[str, Any]:
        bf = self.bandit_feedback
        arrays = {"reward": bf["reward"], "action": bf["action"], "pscore": bf["pscore"], "action_dist": action_dist}
        if bf.get("position") is not None:
            arrays["position"] = bf["position"]
        if given.get("pi_b") is None and bf.get("pi_b") is not None and any(
                "Marginalized" in type(e).__name__ for e in self.ope_estimators):
            given["pi_b"] = bf["pi_b"]
        arrays.update({k: v for k, v in given.items() if v is not None})
        return arrays

    def estimate_policy_values(self, action_dist: np.ndarray, estimated_rewards_by_reg_model: Any = None,
                               estimated_pscore: Any = None, action_embed: Any = None, pi_b: Any = None,
                               p_e_a: Any = None) -> dict[str, float]:
        """{estimator_name: estimated policy value}."""
        arrays = self._inputs(action_dist, estimated_rewards_by_reg_model=estimated_rewards_by_reg_model,
                              estimated_pscore=estimated_pscore, action_embed=action_embed, pi_b=pi_b, p_e_a=p_e_a)
        return estimate_all(list(self.ope_estimators), **arrays)

    def estimate_intervals(self, action_dist: np.ndarray, estimated_rewards_by_reg_model: Any = None,
                           estimated_pscore: Any = None, action_embed: Any = None, pi_b: Any = None,
                           p_e_a: Any = None, alpha: float = 0.05, n_bootstrap_samples: int = 100,
                           random_state: int | None = None) -> dict[str, dict[str, float]]:
        """{estimator_name: {"mean", "95.0% CI (lower)", "95.0% CI (upper)"}} by the bootstrap."""
        arrays = self._inputs(action_dist, estimated_rewards_by_reg_model=estimated_rewards_by_reg_model,
                              estimated_pscore=estimated_pscore, action_embed=action_embed, pi_b=pi_b, p_e_a=p_e_a)
        return estimate_all_intervals(list(self.ope_estimators), alpha=alpha, n_bootstrap_samples=n_bootstrap_samples,
                                      random_state=random_state, method="bootstrap", **arrays)

    def summarize_off_policy_estimates(self, action_dist: np.ndarray, estimated_rewards_by_reg_model: Any = None,
                                       estimated_pscore: Any = None, action_embed: Any = None, pi_b: Any = None,
                                       p_e_a: Any = None, alpha: float = 0.05, n_bootstrap_samples: int = 100,
                                       random_state: int | None = None):
        """(policy_value_df, policy_value_interval_df), as OBP: the estimates (and relative to
        the logged mean reward) and their bootstrap intervals, one row per estimator."""
        import pandas as pd

        kw = dict(estimated_rewards_by_reg_model=estimated_rewards_by_reg_model, estimated_pscore=estimated_pscore,
                  action_embed=action_embed, pi_b=pi_b, p_e_a=p_e_a)
        values = pd.DataFrame(self.estimate_policy_values(action_dist, **kw), index=["estimated_policy_value"]).T
        intervals = pd.DataFrame(self.estimate_intervals(action_dist, **kw, alpha=alpha,
                                                         n_bootstrap_samples=n_bootstrap_samples,
                                                         random_state=random_state)).T
        logged = float(np.mean(self.bandit_feedback["reward"]))
        if logged <= 0:
            warnings.warn("the logged mean reward is not positive: relative_estimated_policy_value is meaningless",
                          stacklevel=2)
        values["relative_estimated_policy_value"] = values.estimated_policy_value / logged
        return values, intervals

    def visualize_off_policy_estimates(self, action_dist: np.ndarray, estimated_rewards_by_reg_model: Any = None,
                                       estimated_pscore: Any = None, action_embed: Any = None, pi_b: Any = None,
                                       p_e_a: Any = None, alpha: float = 0.05, is_relative: bool = False,
                                       n_bootstrap_samples: int = 100, random_state: int | None = None,
                                       fig_dir: Path | None = None, fig_name: str = "estimated_policy_value.png"):
        """The estimates with their bootstrap intervals (relative to the logged mean reward if
        ``is_relative``), saved to ``fig_dir / fig_name`` when ``fig_dir`` is given. Returns the path or None."""
        from recsim_causal.plots import errorbar_plot

        kw = dict(estimated_rewards_by_reg_model=estimated_rewards_by_reg_model, estimated_pscore=estimated_pscore,
                  action_embed=action_embed, pi_b=pi_b, p_e_a=p_e_a)
        values = self.estimate_policy_values(action_dist, **kw)
        intervals = self.estimate_intervals(action_dist, **kw, alpha=alpha, n_bootstrap_samples=n_bootstrap_samples,
                                            random_state=random_state)
        scale = float(np.mean(self.bandit_feedback["reward"])) if is_relative else 1.0
        lo_key, hi_key = (k for k in next(iter(intervals.values())) if k != "mean")
        names = list(values)
        if fig_dir is None:
            return None
        return errorbar_plot([n.upper() for n in names], [values[n] / scale for n in names],
                             [intervals[n][lo_key] / scale for n in names], [intervals[n][hi_key] / scale for n in names],
                             Path(fig_dir) / fig_name,
                             xlabel=("relative " if is_relative else "") + f"estimated policy value ({lo_key[:-8]})",
                             title="off-policy estimates")

    def evaluate_performance_of_estimators(self, ground_truth_policy_value: float, action_dist: np.ndarray,
                                           estimated_rewards_by_reg_model: Any = None, estimated_pscore: Any = None,
                                           action_embed: Any = None, pi_b: Any = None, p_e_a: Any = None,
                                           metric: str = "se") -> dict[str, float]:
        """{estimator_name: error}: ``se`` (estimate - truth)^2 or ``relative-ee``
        |estimate - truth| / |truth|."""
        if metric not in METRICS:
            raise ValueError(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
        truth = float(ground_truth_policy_value)
        if metric == "relative-ee" and truth == 0:
            raise ValueError("ground_truth_policy_value: must not be 0 with metric='relative-ee'")
        values = self.estimate_policy_values(action_dist, estimated_rewards_by_reg_model=estimated_rewards_by_reg_model,
                                             estimated_pscore=estimated_pscore, action_embed=action_embed, pi_b=pi_b,
                                             p_e_a=p_e_a)
        if metric == "se":
            return {k: (v - truth) ** 2 for k, v in values.items()}
        return {k: abs((v - truth) / truth) for k, v in values.items()}

    def summarize_estimators_comparison(self, ground_truth_policy_value: float, action_dist: np.ndarray,
                                        estimated_rewards_by_reg_model: Any = None, estimated_pscore: Any = None,
                                        action_embed: Any = None, pi_b: Any = None, p_e_a: Any = None,
                                        metric: str = "se"):
        """:meth:`evaluate_performance_of_estimators` as a DataFrame (one column, ``metric``)."""
        import pandas as pd

        errors = self.evaluate_performance_of_estimators(
            ground_truth_policy_value, action_dist, estimated_rewards_by_reg_model=estimated_rewards_by_reg_model,
            estimated_pscore=estimated_pscore, action_embed=action_embed, pi_b=pi_b, p_e_a=p_e_a, metric=metric)
        return pd.DataFrame(errors, index=[metric]).T
