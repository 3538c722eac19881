"""Agents: the Policy contract and its bandit implementations.

Every agent maps contexts ``(B, d)`` to a distribution over ``n_actions`` actions
(``action_probs``), draws actions with their propensities (``act``) and learns from batches
(``update``); see :mod:`recsim_causal.agents.base`. Runners validate any policy's outputs, built-in or not,
with :func:`validate_policy_output` / :func:`check_policy`.
"""

from recsim_causal.agents.bandits import EmpiricalMeans, EpsilonGreedy, RandomPolicy, Softmax, ThompsonSampling
from recsim_causal.agents.base import (
    BasePolicy,
    Policy,
    ScorePolicy,
    check_action_probs,
    check_actions,
    check_policy,
    greedy_act,
    greedy_probs,
    sample_categorical,
    validate_policy_output,
)
from recsim_causal.agents.linear import LinearThompsonSampling, LinUCB, RidgeState
from recsim_causal.agents.adaptive import ChangeRestart, DLinThompson, DLinUCB, ForgettingRidge, SWLinUCB
from recsim_causal.agents.text_linear import LinUCBText

__all__ = [
    "BasePolicy",
    "ChangeRestart",
    "DLinThompson",
    "DLinUCB",
    "ForgettingRidge",
    "LinUCBText",
    "SWLinUCB",
    "EmpiricalMeans",
    "EpsilonGreedy",
    "LinUCB",
    "LinearThompsonSampling",
    "Policy",
    "RandomPolicy",
    "RidgeState",
    "ScorePolicy",
    "Softmax",
    "ThompsonSampling",
    "check_action_probs",
    "check_actions",
    "check_policy",
    "greedy_act",
    "greedy_probs",
    "sample_categorical",
    "validate_policy_output",
]


def __getattr__(name: str):
    """``recsim_causal.agents.PPOBert`` on first use: it imports torch and stable-baselines3, which the bandit
    agents do not need."""
    if name == "PPOBert":
        from recsim_causal.agents.ppo_bert import PPOBert

        return PPOBert
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
