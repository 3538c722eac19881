"""Off-policy learning: policies trained from logs, each one a Policy.

``fit(log, learner="ipw" | "snipw" | "dr" | "dm", policy="linear" | "mlp") -> Policy``; see
:mod:`recsim_causal.learn.bandit`.
"""

from .bandit import LEARNERS, POLICIES, Objective, as_feedback, fit, register_learner
from .policies import NetworkPolicy, RewardModelPolicy

__all__ = ["LEARNERS", "POLICIES", "NetworkPolicy", "Objective", "RewardModelPolicy", "as_feedback", "fit",
           "register_learner"]
