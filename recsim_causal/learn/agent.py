"""Off-policy learning as agents: a learner that learns from logs, and a learned policy read from
its file, in any experiment that takes agents.

``LogLearner`` is the agent form of :func:`recsim_causal.learn.fit`: name it in ``conf/agent``
(``agent=offline_dr``) or as a mapping with ``_target_: recsim_causal.learn.LogLearner``, as a
target of ``experiment=ope`` or a policy of ``experiment=compare``. It starts from a Parquet log
(``log``) or from nothing (uniform), keeps every batch it is given through :meth:`update` as a
log of its own -- its pscores are its own probabilities when it acted, since it does not change
between two refits -- and refits on the whole log every ``refit_every`` new rounds, as a team
that retrains on last period's logs does. ``epsilon`` uniform exploration keeps every item in
the support of its next log.

``LearnedPolicy`` is a policy that :func:`~recsim_causal.learn.fit` (or ``fit_sessions``) learned
and ``save`` wrote, as a frozen agent: ``{_target_: recsim_causal.learn.LearnedPolicy, path:
policy.npz}`` -- a target of ``experiment=ope`` (one item or ``env=slate``, where it deals
Plackett-Luce slates over its distribution) or a policy of ``experiment=compare``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recsim_causal.agents.base import BasePolicy, check_float, check_int
from recsim_causal.data import LoggedFeedback, load_parquet

from .bandit import LEARNERS, fit
from .policies import NetworkPolicy, RewardModelPolicy
from .sessions import QPolicy

#: the classes of learned policies that ``save`` writes and :func:`load_policy` reads
LEARNED_POLICIES = {c.__name__: c for c in (NetworkPolicy, RewardModelPolicy, QPolicy)}


def load_policy(path: str) -> Any:
    """The learned policy a ``save`` wrote to ``path`` (whichever of :data:`LEARNED_POLICIES`)."""
    import json

    try:
        with np.load(path, allow_pickle=False) as data:
            kind = json.loads(str(data["__meta__"])).get("class")
    except (OSError, ValueError, KeyError, EOFError, AttributeError) as e:
        raise ValueError(f"load_policy: {path}: not a file written by a learned policy's save ({type(e).__name__})") from None
    if kind not in LEARNED_POLICIES:
        raise ValueError(f"load_policy: {path} holds a {kind}, not a learned policy ({', '.join(LEARNED_POLICIES)})")
    return LEARNED_POLICIES[kind].load(path)


class LearnedPolicy(BasePolicy):
    """A saved learned policy as a frozen agent (module doc): every call goes to the policy read
    from ``path``, whose n_actions and dim must be the world's."""

    def __init__(self, n_actions: int, dim: int, seed: int | None = 0, *, path: str) -> None:
        super().__init__(n_actions, dim, seed)
        self.policy = load_policy(str(path))
        if self.policy.n_actions != self.n_actions or self.policy.dim != self.dim:
            raise ValueError(f"{self.name}: {path} holds a policy of n_actions={self.policy.n_actions}, "
                             f"dim={self.policy.dim}; expected {self.n_actions}, {self.dim}")  # fmt: skip
        self._params.update(path=str(path))

    def action_probs(self, contexts: np.ndarray) -> np.ndarray:
        return self.policy.action_probs(contexts)

    def act(self, contexts: np.ndarray, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.policy.act(contexts, self.rng if rng is None else rng)

    def act_slate(self, contexts: np.ndarray, slate_size: int,
                  rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        return self.policy.act_slate(contexts, slate_size, self.rng if rng is None else rng)

    # the slates are the learned policy's own (agents.slate.OwnSlate asks for these)
    @property
    def slate_rule(self) -> str | None:
        return self.policy.slate_rule

    def probs_from_scores(self, scores: np.ndarray) -> np.ndarray:
        return self.policy.probs_from_scores(scores)

    def _slate_base(self, contexts: np.ndarray) -> np.ndarray:
        return self.policy._slate_base(contexts)

    def _position_probs(self, base: np.ndarray, taken: np.ndarray) -> np.ndarray:
        return self.policy._position_probs(base, taken)

    def update(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Checks the feedback and changes nothing: a learned policy is frozen."""
        self.policy.update(contexts, actions, rewards)

__all__ = ["LearnedPolicy", "LogLearner", "load_policy"]


class LogLearner(BasePolicy):
    """Learns by :func:`~recsim_causal.learn.fit` (``learner``, ``fit_kwargs``) on its log.

    Args:
        n_actions, dim, seed: as every agent.
        learner: ``"ipw" | "snipw" | "dr" | "dm"``.
        log: a Parquet log to learn from first (``None``: start uniform).
        refit_every: refit after this many new rounds (the first refit after the first batch).
        epsilon: uniform exploration mixed into the learned policy.
        item_features: (K, m) item features for the learned policy's scores (see ``fit``).
        fit_kwargs: other ``fit`` arguments as a mapping (``{policy: mlp, max_weight: 20}``).
    """

    def __init__(self, n_actions: int, dim: int, seed: int | None = 0, *, learner: str = "dr", log: str | None = None,
                 refit_every: int = 5000, epsilon: float = 0.1, item_features: Any = None,
                 fit_kwargs: dict[str, Any] | None = None) -> None:  # fmt: skip
        super().__init__(n_actions, dim, seed)
        if learner != "dm" and learner not in LEARNERS:
            raise ValueError(f"{self.name}: learner must be one of dm, {', '.join(LEARNERS)}; got {learner!r}")
        self.learner, self.fit_kwargs = learner, dict(fit_kwargs or {})
        self.refit_every = check_int(self.name, "refit_every", refit_every, 1)
        self.epsilon = check_float(self.name, "epsilon", epsilon, low=0.0, high=1.0)
        self.item_features = None if item_features is None else np.asarray(item_features, dtype=np.float64)
        self._params.update(learner=learner, log=log, refit_every=self.refit_every, epsilon=self.epsilon)
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._new = 0
        self.policy: Any = None
        if log is not None:
            fb = load_parquet(log)
            if fb.setting != "one_item":  # its rows would be pooled as one-item decisions: refused, not guessed
                raise ValueError(f"{self.name}: {log} is a {fb.setting} log and LogLearner refits on one-item rows; "
                                 "learn it with recsim_causal.learn.fit, save the policy and name it with LearnedPolicy")
            if fb.n_actions != self.n_actions or fb.dim_context != self.dim:
                raise ValueError(f"{self.name}: log {log} has n_actions={fb.n_actions}, dim={fb.dim_context}; "
                                 f"expected {self.n_actions}, {self.dim}")  # fmt: skip
            self._parts.append((fb.context, fb.action, fb.reward, fb.pscore))
            self._refit()

    def action_probs(self, contexts: np.ndarray) -> np.ndarray:
        x = self._contexts(contexts)
        if self.policy is None:
            return np.full((len(x), self.n_actions), 1.0 / self.n_actions)
        return (1 - self.epsilon) * self.policy.action_probs(x) + self.epsilon / self.n_actions

    def update(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Log the batch with the pscores this policy acted with; refit every ``refit_every`` rounds."""
        x, a, r = self._feedback(contexts, actions, rewards)
        if not len(a):
            return
        pscore = self.action_probs(x)[np.arange(len(a)), a]
        self._parts.append((x, a, r, pscore))
        self._new += len(a)
        if self.policy is None or self._new >= self.refit_every:
            self._refit()

    def _refit(self) -> None:
        x, a, r, p = (np.concatenate(c) for c in zip(*self._parts))
        self._parts = [(x, a, r, p)]
        log = LoggedFeedback(context=x, action=a, reward=r, pscore=p, n_actions=self.n_actions)
        self.policy = fit(log, self.learner, action_context=self.item_features, seed=self.seed, **self.fit_kwargs)
        self._new = 0
