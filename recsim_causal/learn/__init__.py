"""Off-policy learning: policies trained from logs, each one a Policy.

``fit(log, learner="ipw" | "snipw" | "dr" | "dm", policy="linear" | "mlp") -> Policy`` for
one-item logs (:mod:`recsim_causal.learn.bandit`) and slate logs (a Plackett-Luce policy,
:mod:`recsim_causal.learn.slate`); ``fit_sessions(log, algorithm="cql" | "iql" |
"dqn") -> Policy`` for logged sessions, through TorchRL (:mod:`recsim_causal.learn.sessions`,
the ``offline-rl`` extra).
"""

from .agent import LearnedPolicy, LogLearner, load_policy
from .bandit import LEARNERS, POLICIES, Objective, as_feedback, fit, register_learner
from .judge import Behaviour, JudgeResult, judge
from .policies import NetworkPolicy, RewardModelPolicy
from .sessions import ALGORITHMS, QPolicy, fit_sessions
from .slate import SLATE_LEARNERS, slate_data, slate_value

__all__ = ["ALGORITHMS", "LEARNERS", "LearnedPolicy", "LogLearner", "SLATE_LEARNERS", "load_policy", "slate_data",
           "slate_value", "POLICIES", "NetworkPolicy", "Objective", "QPolicy", "RewardModelPolicy",
           "as_feedback", "fit", "fit_sessions", "register_learner", "judge", "JudgeResult", "Behaviour"]
