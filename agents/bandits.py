"""Classic bandit policies: uniform random, epsilon-greedy, softmax (Boltzmann), Beta-Bernoulli Thompson sampling.

Epsilon-greedy and softmax act on estimated mean rewards: context-free empirical means
(:class:`EmpiricalMeans`) or, with ``linear=True``, per-arm ridge regression on the contexts
(:class:`recsim_causal.agents.linear.RidgeState`, the state LinUCB uses). Reference for all four:
Sutton & Barto, *Reinforcement Learning: An Introduction* (2nd ed., 2018), ch. 2; for Thompson
sampling, Chapelle & Li, "An Empirical Evaluation of Thompson Sampling" (NeurIPS 2011).
"""

from __future__ import annotations

import json

import numpy as np

from recsim_causal.agents.base import (
    BasePolicy,
    ScorePolicy,
    argmax_frequencies,
    check_float,
    check_int,
    greedy_probs,
    sample_categorical_shared,
)
from recsim_causal.agents.linear import RidgeState


class EmpiricalMeans:
    """Context-free mean reward per arm: ``counts (K,)``, ``sums (K,)``, ``means = sums / counts``.

    An arm never played has mean 0.
    """

    def __init__(self, n_actions: int) -> None:
        self.n_actions = n_actions
        self.counts = np.zeros(n_actions)
        self.sums = np.zeros(n_actions)
        self.means = np.zeros(n_actions)

    def scores(self, n_rows: int) -> np.ndarray:
        """The means for ``n_rows`` contexts, ``(n_rows, K)`` (a read-only broadcast view)."""
        return np.broadcast_to(self.means, (n_rows, self.n_actions))

    def update(self, x: np.ndarray | None, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Add a batch ``actions (B,)``, ``rewards (B,)``; ``x`` is ignored."""
        self.counts += np.bincount(actions, minlength=self.n_actions)
        self.sums += np.bincount(actions, weights=rewards, minlength=self.n_actions)
        np.divide(self.sums, np.maximum(self.counts, 1.0), out=self.means)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts, "sums": self.sums, "means": self.means}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for key in ("counts", "sums", "means"):
            getattr(self, key)[...] = state[key]


class _ValuePolicy(ScorePolicy):
    """A score policy whose scores are estimated mean rewards: empirical means, or per-arm ridge
    predictions ``x . theta_a`` when ``linear`` (then ``dim`` is required)."""

    def __init__(
        self, n_actions: int, dim: int | None, seed: int | None, linear: bool, lambda_: float
    ) -> None:
        if linear:
            dim = check_int(type(self).__name__, "dim", dim, 1)
        super().__init__(n_actions, dim, seed)
        self.linear = bool(linear)
        self.lambda_ = check_float(self.name, "lambda_", lambda_, low=0.0, low_open=True)
        self.model: RidgeState | EmpiricalMeans
        if self.linear:
            self.model = RidgeState(self.n_actions, self.dim, self.lambda_)
        else:
            self.model = EmpiricalMeans(self.n_actions)
        self._params.update(linear=self.linear, lambda_=self.lambda_)

    def scores(self, contexts: np.ndarray) -> np.ndarray:
        """Estimated mean reward of every arm, ``(B, d) -> (B, K)``."""
        if self.linear:
            return self.model.mean(self._contexts(contexts))
        return self.model.scores(self._n_rows(contexts))

    def update(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Add the batch to the value estimates."""
        x, a, r = self._feedback(contexts, actions, rewards, need_contexts=self.linear)
        self.model.update(x, a, r)

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.model.load_state_dict(state)


class RandomPolicy(BasePolicy):
    """Uniformly random actions: ``action_probs`` is ``1 / K`` everywhere; ``update`` learns nothing."""

    def action_probs(self, contexts: np.ndarray) -> np.ndarray:
        """``(B, d) -> (B, K)`` filled with ``1 / K``."""
        return np.full((self._n_rows(contexts), self.n_actions), 1.0 / self.n_actions)

    def act(
        self, contexts: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        n_rows = self._n_rows(contexts)
        rng = self.rng if rng is None else rng
        return rng.integers(self.n_actions, size=n_rows), np.full(n_rows, 1.0 / self.n_actions)

    def update(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Check the feedback's shapes and ranges; nothing is learned."""
        self._feedback(contexts, actions, rewards, need_contexts=False)


class EpsilonGreedy(_ValuePolicy):
    """Epsilon-greedy: the greedy arm with probability ``1 - epsilon``, a uniform arm otherwise.

    ``action_probs = (1 - epsilon) * greedy + epsilon / K``, greedy being one-hot on the highest
    estimated mean with ties split evenly. Estimates are empirical means (context-free) or, with
    ``linear=True``, per-arm ridge regression on the contexts (:class:`recsim_causal.agents.linear.RidgeState`).
    In a slate, the uniform part spreads over the actions not yet placed.

    Args:
        n_actions: number of arms ``K >= 1``.
        dim: context dimension (required when ``linear``).
        epsilon: exploration probability in ``[0, 1]``.
        seed: seeds :attr:`rng`, used by :meth:`act` when no ``rng`` is passed.
        linear: per-arm ridge estimates instead of empirical means.
        lambda_: ridge regularization ``> 0`` (linear only).
    """

    slate_rule = "epsilon_greedy"

    def __init__(
        self,
        n_actions: int,
        dim: int | None = None,
        epsilon: float = 0.1,
        seed: int | None = 0,
        linear: bool = False,
        lambda_: float = 1.0,
    ) -> None:
        super().__init__(n_actions, dim, seed, linear, lambda_)
        self.epsilon = check_float(self.name, "epsilon", epsilon, low=0.0, high=1.0)
        self._params.update(epsilon=self.epsilon)

    def scores_with_slope(self, contexts: np.ndarray, column: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`scores` and their derivatives in ``contexts[:, column]`` (linear, so convex),
        both ``(B, K)``; the distribution depends on the scores only through their argmax (see
        :meth:`recsim_causal.agents.LinUCB.scores_with_slope`)."""
        scores = self.scores(contexts)
        if self.linear:
            return scores, np.broadcast_to(self.model.theta[:, column], scores.shape).copy()
        return scores, np.zeros_like(scores)

    def probs_from_scores(self, scores: np.ndarray) -> np.ndarray:
        available = scores > -np.inf
        probs = greedy_probs(scores)
        probs *= 1.0 - self.epsilon
        probs += self.epsilon * (available / available.sum(axis=1, keepdims=True))
        return probs


class Softmax(_ValuePolicy):
    """Softmax (Boltzmann) exploration: ``action_probs = softmax(estimated means / tau)``.

    Estimates as in :class:`EpsilonGreedy`. Slates are exactly Plackett-Luce over ``exp(score / tau)``.

    Args:
        n_actions: number of arms ``K >= 1``.
        dim: context dimension (required when ``linear``).
        tau: temperature ``> 0`` (small: near greedy; large: near uniform).
        seed: seeds :attr:`rng`, used by :meth:`act` when no ``rng`` is passed.
        linear: per-arm ridge estimates instead of empirical means.
        lambda_: ridge regularization ``> 0`` (linear only).
    """

    slate_rule = "plackett_luce"

    def __init__(
        self,
        n_actions: int,
        dim: int | None = None,
        tau: float = 0.1,
        seed: int | None = 0,
        linear: bool = False,
        lambda_: float = 1.0,
    ) -> None:
        super().__init__(n_actions, dim, seed, linear, lambda_)
        self.tau = check_float(self.name, "tau", tau, low=0.0, low_open=True)
        self._params.update(tau=self.tau)

    def probs_from_scores(self, scores: np.ndarray) -> np.ndarray:
        z = scores / self.tau
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z


class ThompsonSampling(BasePolicy):
    """Beta-Bernoulli Thompson sampling, context-free (Chapelle & Li 2011).

    Arm ``a`` has posterior ``Beta(alpha0 + S_a, beta0 + F_a)``, with ``S_a = sum r`` and
    ``F_a = sum (1 - r)`` over its rewards ``r in [0, 1]`` (a fractional reward is a fractional
    success). Thompson probabilities ``P(a = argmax_k theta_k)`` have no closed form, so the
    distribution this policy plays, and reports, is their Monte-Carlo estimate from a table of
    :attr:`n_mc_draws` posterior draws per arm: :meth:`action_probs` is the frequency with which
    each arm wins a row of the table, and :meth:`act` samples from exactly that distribution (its
    pscores equal ``action_probs`` bit for bit). Each probability is off the exact Thompson
    probability by about ``sqrt(p (1 - p) / n_mc_draws)``; an arm that never wins in the table is
    not played. An update redraws only the columns of the arms it touched, from a private
    generator seeded by ``seed``, so the estimate is reproducible for a given seed and sequence
    of updates, and a one-row update costs ``n_mc_draws`` Beta draws, not ``n_mc_draws * K``.

    Args:
        n_actions: number of arms ``K >= 1``.
        dim: accepted for a uniform constructor; contexts are ignored.
        alpha0, beta0: Beta prior, both ``> 0``.
        seed: seeds :attr:`rng` and, independently, the Monte-Carlo draws.
        n_mc_draws: overrides the class attribute :attr:`n_mc_draws` (1000).
    """

    n_mc_draws: int = 1000

    def __init__(
        self,
        n_actions: int,
        dim: int | None = None,
        alpha0: float = 1.0,
        beta0: float = 1.0,
        seed: int | None = 0,
        n_mc_draws: int | None = None,
    ) -> None:
        super().__init__(n_actions, dim, seed)
        self.alpha0 = check_float(self.name, "alpha0", alpha0, low=0.0, low_open=True)
        self.beta0 = check_float(self.name, "beta0", beta0, low=0.0, low_open=True)
        if n_mc_draws is not None:
            self.n_mc_draws = check_int(self.name, "n_mc_draws", n_mc_draws, 1)
        self.alpha = np.full(self.n_actions, self.alpha0)
        self.beta = np.full(self.n_actions, self.beta0)
        self._mc_rng = self._derived_rng(0)
        self._draws = np.empty((self.n_mc_draws, self.n_actions))  # posterior draws, one column per arm
        self._stale = np.ones(self.n_actions, dtype=bool)  # columns to redraw before the next use
        self._probs: np.ndarray | None = None
        self._params.update(alpha0=self.alpha0, beta0=self.beta0, n_mc_draws=self.n_mc_draws)

    def thompson_probs(self) -> np.ndarray:
        """The Monte-Carlo Thompson probabilities ``(K,)`` for the current posterior."""
        if self._probs is None:
            cols = np.flatnonzero(self._stale)
            self._draws[:, cols] = self._mc_rng.beta(
                self.alpha[cols], self.beta[cols], size=(self.n_mc_draws, len(cols))
            )
            self._stale[:] = False
            self._probs = argmax_frequencies(self._draws[None])[0]
        return self._probs

    def action_probs(self, contexts: np.ndarray) -> np.ndarray:
        """``(B, d) -> (B, K)``: :meth:`thompson_probs` on every row."""
        return np.repeat(self.thompson_probs()[None], self._n_rows(contexts), axis=0)

    def act(
        self, contexts: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One draw per row from :meth:`thompson_probs`, with ``rng``; pscores exact for it."""
        return sample_categorical_shared(
            self.thompson_probs(), self._n_rows(contexts), self.rng if rng is None else rng
        )

    def update(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Add rewards in ``[0, 1]``: ``alpha_a += r``, ``beta_a += 1 - r``."""
        _, a, r = self._feedback(contexts, actions, rewards, need_contexts=False)
        if not len(r):
            return
        if r.min() < 0.0 or r.max() > 1.0:
            raise ValueError(f"{self.name}.update: rewards must be in [0, 1], got {r.min()}..{r.max()}")
        self.alpha += np.bincount(a, weights=r, minlength=self.n_actions)
        self.beta += np.bincount(a, weights=1.0 - r, minlength=self.n_actions)
        self._stale[a] = True
        self._probs = None

    def state_dict(self) -> dict[str, np.ndarray]:
        self.thompson_probs()  # no stale columns in a saved table
        rng_state = json.dumps(self._mc_rng.bit_generator.state)
        return {"alpha": self.alpha, "beta": self.beta, "draws": self._draws, "mc_rng": np.array(rng_state)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.alpha[...] = state["alpha"]
        self.beta[...] = state["beta"]
        self._draws[...] = state["draws"]
        self._mc_rng.bit_generator.state = json.loads(str(state["mc_rng"]))
        self._stale[:] = False
        self._probs = None
