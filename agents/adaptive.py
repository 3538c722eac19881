"""Agents for a world that changes: discounted and sliding-window LinUCB, discounted linear
Thompson sampling, and a change-detecting restart wrapper around any agent.

:class:`ForgettingRidge` is their per-arm ridge state. Time t counts the feedback rows the
agent has learned from (one per decision), and every arm forgets with the same clock, so an arm
that is not played regains its uncertainty and is explored again after a change:

* discount ``gamma`` (Russac, Vernade & Cappé, "Weighted linear bandits for non-stationary
  environments", NeurIPS 2019): ``V_t = sum_s gamma^(t-s) x_s x_s^T + lambda I``,
  ``Vt_t = sum_s gamma^(2(t-s)) x_s x_s^T + lambda I``, ``b_t = sum_s gamma^(t-s) r_s x_s``,
  ``theta_t = V_t^-1 b_t``, width ``||x||_{V^-1 Vt V^-1}``;
* sliding ``window`` (Cheung, Simchi-Levi & Zhu, AISTATS 2019): the last ``window`` rows only,
  width ``||x||_{V^-1}``.

Both are exact at any t without touching the arms that were not played: arm a keeps its
statistics M_a = sum gamma^(u-s) x x^T (M2_a with gamma^2, b_a) as of its last update u, and
their eigendecomposition M_a = Q diag(mu) Q^T; at t, V^-1 = Q diag(1 / (gamma^(t-u) mu +
lambda)) Q^T. A decision costs O(K d^2) like LinUCB's; an update one d x d eigendecomposition
per arm played. One decision at a time (the online hot path) runs fused code paths: the decay
vector gamma^(t - last) is kept up to date (times gamma per row) rather than recomputed, the
scores reuse scratch arrays, and the eigendecomposition calls LAPACK's dsyev directly (numpy's
``eigh`` wrapper costs more than the factorization of a 10 x 10 matrix).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from recsim_causal.agents.base import BasePolicy, check_float, check_int, greedy_act, greedy_probs
from recsim_causal.agents.linear import LinearThompsonSampling, LinUCB, Scratch


_DSYEV: Any = None


def _dsyev() -> Any:
    """LAPACK's dsyev (symmetric eigendecomposition), imported on first use (scipy is heavy)."""
    global _DSYEV
    if _DSYEV is None:
        from scipy.linalg.lapack import dsyev

        _DSYEV = dsyev
    return _DSYEV


class ForgettingRidge:
    """Per-arm ridge regression that forgets: discount ``gamma`` and/or a sliding ``window``.

    Same interface as :class:`recsim_causal.agents.linear.RidgeState` where the agents use it
    (``mean_and_width``, ``update``, ``reset_arms``, ``state_dict``); ``t`` is the number of rows
    learned from. ``mean_and_width(x, scale)`` gives ``x . theta_a`` and ``scale *
    sqrt(x^T V^-1 Vt V^-1 x)`` (Vt = V without a discount), both (B, K).
    """

    def __init__(self, n_actions: int, dim: int, lambda_: float, gamma: float = 1.0, window: int | None = None):
        self.n_actions, self.dim, self.lambda_, self.gamma, self.window = n_actions, dim, lambda_, gamma, window
        self._log_gamma = math.log(gamma)
        self.t = 0
        self.M = np.zeros((n_actions, dim, dim))
        self.M2 = np.zeros((n_actions, dim, dim))
        self.b = np.zeros((n_actions, dim))
        self.last = np.zeros(n_actions, dtype=np.int64)  # time of each arm's statistics
        self._g = np.ones(n_actions)  # gamma^(t - last), kept up to date
        self._Qf = np.repeat(np.eye(dim)[:, None, :], n_actions, axis=1)  # (d, K, d): Qf[:, a] is arm a's Q
        self.mu = np.zeros((n_actions, dim))
        self.N = np.zeros((n_actions, dim, dim))  # Q^T M2 Q
        self.c = np.zeros((n_actions, dim))       # Q^T b
        if window is not None:  # the rows inside the window: a ring buffer, oldest at _head
            self._rows_x = np.zeros((window, dim))
            self._rows_a = np.zeros(window, dtype=np.int64)
            self._rows_r = np.zeros(window)
            self._head = self._n_rows = 0
        self.scratch = Scratch()
        self._Qf2d = self._Qf.reshape(dim, n_actions * dim)  # a view: _Qf is only written in place
        self._ones = np.ones(dim)
        # the one-context path's buffers, allocated once (K and d never change)
        self._inv, self._z, self._zc = np.empty((n_actions, dim)), np.empty((n_actions, 1, dim)), np.empty((n_actions, dim))
        self._y = np.empty(n_actions * dim)
        self._zN = np.empty((n_actions, 1, dim))

    # ---- prediction ---------------------------------------------------------------------

    def mean(self, x: np.ndarray) -> np.ndarray:
        return self.mean_and_width(x, 1.0)[0]

    def _decay(self) -> np.ndarray:
        """gamma^(t - last) per arm, (K,) (the kept vector: read, don't write)."""
        return self._g

    def _recompute_decay(self) -> None:
        """gamma^(t - last) afresh (after a batch, a reset or a load)."""
        self._g = np.ones(self.n_actions) if self.gamma == 1.0 else np.exp(self._log_gamma * (self.t - self.last))

    def _one_row(self, x: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`mean_and_width` of one context (d,): the same arithmetic in fewer, cheaper calls
        on buffers allocated once (row-wise dot products as ``@ ones``, the K forms z_k^T N_k z_k
        as one batched (K, 1, d) @ (K, d, d) product: einsum costs more at this size)."""
        K, d, g, ones = self.n_actions, self.dim, self._g, self._ones
        inv = np.multiply(g[:, None], self.mu, out=self._inv)
        inv += self.lambda_
        np.reciprocal(inv, out=inv)                                  # V^-1 in the eigenbasis
        y = np.dot(x, self._Qf2d, out=self._y).reshape(K, d)         # Q_k^T x for every arm
        z3 = self._z
        z = np.multiply(y, inv, out=z3.reshape(K, d))                # V^-1 x in the eigenbasis
        if self.gamma == 1.0:  # g = 1: mean z.c, width^2 x^T V^-1 x
            mean = np.dot(np.multiply(z, self.c, out=self._zc), ones)
            width2 = np.dot(np.multiply(y, z, out=y), ones)
        else:  # z <- g z: mean z.c, width^2 g^2 z^T N z + lambda z^T z
            width2 = np.dot(np.multiply(z, z, out=y), ones)
            width2 *= self.lambda_
            z *= g[:, None]
            mean = np.dot(np.multiply(z, self.c, out=self._zc), ones)
            zn = np.matmul(z3, self.N, out=self._zN).reshape(K, d)
            zn *= z
            width2 += np.dot(zn, ones)
        np.maximum(width2, 0.0, out=width2)
        np.sqrt(width2, out=width2)
        if scale != 1.0:
            width2 *= scale
        return mean[None], width2[None]

    def mean_and_width(self, x: np.ndarray, scale: float, reuse: bool = False) -> tuple[np.ndarray, np.ndarray]:
        if x.shape[0] == 1:
            return self._one_row(x[0], scale)
        g = self._decay()
        inv = 1.0 / (g[:, None] * self.mu + self.lambda_)           # (K, d): V^-1 in the eigenbasis
        n, d, K = x.shape[0], self.dim, self.n_actions
        # Q^T x for every arm as one product: Q laid out as (d, K d)
        y = (x @ self._Qf.reshape(d, K * d)).reshape(n, K, d)
        z = y * inv                                                   # V^-1 x in the eigenbasis
        mean = np.einsum("bkj,kj->bk", z, self.c)
        mean *= g
        if self.gamma == 1.0:  # no discount: Vt = V, so the form is x^T V^-1 x
            width2 = np.einsum("bkj,bkj->bk", y, z)
        else:
            if n == 1:  # z_k^T N_k z_k as one (K, d^2) product
                width2 = np.einsum("ki,ki->k", (z[0][:, :, None] * z[0][:, None, :]).reshape(K, d * d),
                                   self.N.reshape(K, d * d))[None]
            else:
                    width2 = np.einsum("bkj,bkj->bk", np.einsum("bki,kij->bkj", z, self.N), z)
            width2 *= g * g
            width2 += self.lambda_ * np.einsum("bkj,bkj->bk", z, z)
        np.maximum(width2, 0.0, out=width2)
        np.sqrt(width2, out=width2)
        if scale != 1.0:
            width2 *= scale
        return mean, width2

    # ---- learning -----------------------------------------------------------------------

    def update(self, x: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Add rows at times t, t+1, ... (one per decision); forget what the window drops."""
        n = len(actions)
        if n == 0:
            return
        if n == 1:
            self._update_one(x[0], int(actions[0]), float(rewards[0]))
            return
        end = self.t + n
        gone = np.zeros(0, dtype=np.int64)
        if self.window is not None:  # only the rows still inside the window at the end count
            gone = self._evict(max(0, self._n_rows + min(n, self.window) - self.window))
            keep = min(n, self.window)
            self._push(x[n - keep:], actions[n - keep:], rewards[n - keep:])
            x, actions, rewards, n = x[n - keep:], actions[n - keep:], rewards[n - keep:], keep
        arms = np.unique(actions)
        if self.gamma != 1.0:
            shrink = np.exp(self._log_gamma * (end - self.last[arms]))
            self.M[arms] *= shrink[:, None, None]
            self.M2[arms] *= (shrink * shrink)[:, None, None]
            self.b[arms] *= shrink[:, None]
            w = np.exp(self._log_gamma * np.arange(n - 1, -1, -1))  # the last row is 0 decisions old at the end
        else:
            w = np.ones(n)
        outer = x[:, :, None] * x[:, None, :]
        np.add.at(self.M, actions, w[:, None, None] * outer)
        np.add.at(self.M2, actions, (w * w)[:, None, None] * outer)
        np.add.at(self.b, actions, (w * rewards)[:, None] * x)
        arms = np.union1d(arms, gone)
        self.last[arms] = end
        self.t = end
        self._recompute_decay()
        self._refresh(arms)

    def _update_one(self, x: np.ndarray, a: int, r: float) -> None:
        """One row (the one-user hot path): the same arithmetic, no grouping."""
        self.t += 1
        if self.window is not None:
            if self._n_rows == self.window:  # the oldest row leaves
                h = self._head
                old, gx = int(self._rows_a[h]), self._rows_x[h]
                gouter = np.multiply.outer(gx, gx)
                self.M[old] -= gouter
                self.M2[old] -= gouter
                self.b[old] -= self._rows_r[h] * gx
                self._head = (h + 1) % self.window
                self._n_rows -= 1
                if old != a:
                    self._refresh_one(old)
            pos = (self._head + self._n_rows) % self.window
            self._rows_x[pos], self._rows_a[pos], self._rows_r[pos] = x, a, r
            self._n_rows += 1
        outer = np.multiply.outer(x, x)
        m, m2, b = self.M[a], self.M2[a], self.b[a]
        if self.gamma != 1.0:
            shrink = float(self._g[a]) * self.gamma  # gamma^(t - last[a]) at the new t
            m *= shrink
            m2 *= shrink * shrink
            b *= shrink
            self._g *= self.gamma
            self._g[a] = 1.0
        m += outer
        m2 += outer
        b += r * x
        self.last[a] = self.t
        self._refresh_one(a)

    def _refresh_one(self, a: int) -> None:
        """:meth:`_refresh` of one arm (``M[a]`` is exactly symmetric: a sum of outer products)."""
        mu, q, info = _dsyev()(self.M[a])
        if info != 0:  # pragma: no cover - LAPACK did not converge: numpy's path
            self._refresh(np.array([a]))
            return
        np.maximum(mu, 0.0, out=self.mu[a])
        self._Qf[:, a] = q
        if self.gamma != 1.0:  # N is read by the discounted width only
            np.dot(np.dot(q.T, self.M2[a]), q, out=self.N[a])
        np.dot(self.b[a], q, out=self.c[a])

    def _evict(self, drop: int) -> np.ndarray:
        """Subtract the ``drop`` oldest rows of the window; returns their arms."""
        if drop <= 0:
            return np.zeros(0, dtype=np.int64)
        idx = (self._head + np.arange(drop)) % self.window
        gx, ga, gr = self._rows_x[idx], self._rows_a[idx], self._rows_r[idx]
        outer = gx[:, :, None] * gx[:, None, :]
        np.subtract.at(self.M, ga, outer)
        np.subtract.at(self.M2, ga, outer)
        np.subtract.at(self.b, ga, gr[:, None] * gx)
        self._head = (self._head + drop) % self.window
        self._n_rows -= drop
        return np.unique(ga)

    def _push(self, x: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        idx = (self._head + self._n_rows + np.arange(len(actions))) % self.window
        self._rows_x[idx], self._rows_a[idx], self._rows_r[idx] = x, actions, rewards
        self._n_rows += len(actions)

    def _refresh(self, arms: np.ndarray) -> None:
        """Eigendecompose the statistics of ``arms`` (symmetrized; rounding negatives clipped)."""
        m = self.M[arms]
        mu, q = np.linalg.eigh(0.5 * (m + m.transpose(0, 2, 1)))
        self.mu[arms] = np.maximum(mu, 0.0)
        self._Qf[:, arms] = q.transpose(1, 0, 2)
        qt = q.transpose(0, 2, 1)
        self.N[arms] = qt @ self.M2[arms] @ q
        self.c[arms] = (qt @ self.b[arms][:, :, None])[:, :, 0]

    def reset_arms(self, arms: Any) -> None:
        """Forget everything about ``arms`` (new items in those slots)."""
        arms = np.asarray(arms, dtype=np.int64)
        for a in (self.M, self.M2, self.b, self.N, self.c, self.mu):
            a[arms] = 0.0
        self._Qf[:, arms] = np.eye(self.dim)[:, None, :]
        self.last[arms] = self.t
        self._g[arms] = 1.0
        if self.window is not None and self._n_rows:  # their rows in the window count no more
            idx = (self._head + np.arange(self._n_rows)) % self.window
            self._rows_x[idx[np.isin(self._rows_a[idx], arms)]] = 0.0

    def theta(self) -> np.ndarray:
        """The current estimates theta_a = V_a^-1 b_a, (K, d)."""
        g = self._decay()
        inv = 1.0 / (g[:, None] * self.mu + self.lambda_)
        return np.einsum("ikj,kj->ki", self._Qf, inv * self.c * g[:, None])

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"M": self.M, "M2": self.M2, "b": self.b, "last": self.last, "t": np.asarray(self.t)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for key in ("M", "M2", "b", "last"):
            getattr(self, key)[...] = state[key]
        self.t = int(state["t"])
        self._recompute_decay()
        self._refresh(np.arange(self.n_actions))


def russac_beta(t: int, *, dim: int, gamma: float, lambda_: float, sigma: float, S: float, L: float,
                delta: float) -> float:
    """D-LinUCB's confidence radius beta_t (Russac et al. 2019, Theorem 1 with x in a ball of radius L):
    sqrt(lambda) S + sigma sqrt(2 log(1/delta) + d log(1 + L^2 (1 - gamma^(2t)) / (lambda d (1 - gamma^2))))."""
    if gamma == 1.0:
        growth = L * L * t / (lambda_ * dim)
    else:
        growth = L * L * (1.0 - gamma ** (2 * t)) / (lambda_ * dim * (1.0 - gamma * gamma))
    return math.sqrt(lambda_) * S + sigma * math.sqrt(2.0 * math.log(1.0 / delta) + dim * math.log1p(growth))


class DLinUCB(LinUCB):
    """Discounted LinUCB (D-LinUCB; Russac, Vernade & Cappé, NeurIPS 2019, Algorithm 1), one
    model per arm on a common clock (:class:`ForgettingRidge`).

    Scores ``x . theta_a + alpha beta_t ||x||_{V_a^-1 Vt_a V_a^-1}``, with beta_t from
    :func:`russac_beta` (their radius: noise ``sigma``, ``||theta|| <= S``, ``||x|| <= L``,
    confidence ``1 - delta``), or ``beta`` fixed when given. Greedy, ties split (as LinUCB).

    Args:
        gamma: discount in (0, 1]; Russac et al. take 1 - (B_T / (d T))^(2/3) for T decisions
            and a variation budget B_T.
    """

    def __init__(self, n_actions: int, dim: int, gamma: float = 0.9999, alpha: float = 1.0, lambda_: float = 1.0,
                 beta: float | None = None, sigma: float = 0.5, S: float = 1.0, L: float = 1.0, delta: float = 0.01,
                 seed: int | None = 0, shared: bool = False) -> None:
        super().__init__(n_actions, dim, alpha=alpha, lambda_=lambda_, seed=seed, shared=shared)
        self.gamma = check_float(self.name, "gamma", gamma, low=0.0, high=1.0, low_open=True)
        self.beta = None if beta is None else check_float(self.name, "beta", beta, low=0.0)
        self.sigma = check_float(self.name, "sigma", sigma, low=0.0)
        self.S = check_float(self.name, "S", S, low=0.0)
        self.L = check_float(self.name, "L", L, low=0.0, low_open=True)
        self.delta = check_float(self.name, "delta", delta, low=0.0, high=1.0, low_open=True)
        self.ridge = self._make_ridge()
        self._params.update(gamma=self.gamma, beta=self.beta, sigma=self.sigma, S=self.S, L=self.L, delta=self.delta)

    #: LinUCB's certified score slopes hold for its own ridge only (a discounted width is not the
    #: convex norm that contract needs): propensity bounds treat this agent as any other policy.
    scores_with_slope = None

    def _make_ridge(self) -> ForgettingRidge:
        return ForgettingRidge(*self._ridge_dims(), self.lambda_, gamma=self.gamma)

    def width_scale(self) -> float:
        """alpha beta_t at the current time."""
        if self.beta is not None:
            return self.alpha * self.beta
        return self.alpha * russac_beta(self.ridge.t, dim=self.ridge.dim, gamma=self.gamma, lambda_=self.lambda_,
                                        sigma=self.sigma, S=self.S, L=self.L, delta=self.delta)

    def _ucb(self, contexts: np.ndarray, reuse: bool) -> np.ndarray:
        x = self._contexts(contexts)
        mean, width = self.ridge.mean_and_width(self._scoring_rows(x), self.width_scale())
        mean += width
        return self._per_action(mean, len(x))


class SWLinUCB(DLinUCB):
    """Sliding-window LinUCB (SW-LinUCB; Cheung, Simchi-Levi & Zhu, AISTATS 2019): LinUCB on the
    last ``window`` decisions only (one model per arm, a common window), width
    ``alpha beta ||x||_{V_a^-1}``; ``beta=None`` takes the radius of :func:`russac_beta` with no
    discount over the rows in the window (as in Russac et al.'s comparison)."""

    def __init__(self, n_actions: int, dim: int, window: int = 20_000, alpha: float = 1.0, lambda_: float = 1.0,
                 beta: float | None = None, sigma: float = 0.5, S: float = 1.0, L: float = 1.0, delta: float = 0.01,
                 seed: int | None = 0, shared: bool = False) -> None:
        self.window = check_int(type(self).__name__, "window", window, 1)
        super().__init__(n_actions, dim, gamma=1.0, alpha=alpha, lambda_=lambda_, beta=beta, sigma=sigma, S=S, L=L,
                         delta=delta, seed=seed, shared=shared)
        self._params.pop("gamma")
        self._params.update(window=self.window)

    def _make_ridge(self) -> ForgettingRidge:
        return ForgettingRidge(*self._ridge_dims(), self.lambda_, window=self.window)

    def width_scale(self) -> float:
        if self.beta is not None:
            return self.alpha * self.beta
        return self.alpha * russac_beta(min(self.ridge.t, self.window), dim=self.ridge.dim, gamma=1.0,
                                        lambda_=self.lambda_, sigma=self.sigma, S=self.S, L=self.L, delta=self.delta)


class DLinThompson(LinearThompsonSampling):
    """Discounted linear Thompson sampling (D-LinTS; Kim & Tewari, UAI 2020): each arm's score
    drawn from N(x . theta_a, v^2 ||x||^2_{V_a^-1 Vt_a V_a^-1}) on the discounted statistics of
    :class:`ForgettingRidge`; the distribution played and reported is LinearThompsonSampling's
    (Monte-Carlo win frequencies, exact pscores)."""

    def __init__(self, n_actions: int, dim: int, gamma: float = 0.9999, v: float = 0.5, lambda_: float = 1.0,
                 seed: int | None = 0, n_mc_draws: int | None = None) -> None:
        super().__init__(n_actions, dim, v=v, lambda_=lambda_, seed=seed, n_mc_draws=n_mc_draws)
        self.gamma = check_float(self.name, "gamma", gamma, low=0.0, high=1.0, low_open=True)
        self.ridge = ForgettingRidge(self.n_actions, self.dim, self.lambda_, gamma=self.gamma)
        self._params.update(gamma=self.gamma)


class ChangeRestart(BasePolicy):
    """Any agent, restarted when a change detector fires on the reward stream.

    A one-sided CUSUM (Page 1954) watches the rewards of the decisions made: after each
    (re)start the first ``warmup`` rewards set the reference mean m; then
    g <- max(0, g + (m - r) - drift) and an alarm at g > threshold (a drop of the reward the
    agent earns: the world changed under it; a rise is the agent learning). On an alarm the
    inner agent is built afresh from its config and the detector starts over. ``restarts``
    lists the times (rows learned from) of the alarms.

    Args:
        agent: the inner agent's config: ``_target_`` and its parameters (``n_actions``,
            ``dim`` and ``seed`` are supplied).
        threshold, drift, warmup: the CUSUM's h, k and reference window.
        direction: "down" (drops only) or "both" (two-sided).
    """

    def __init__(self, n_actions: int, dim: int, agent: Mapping, threshold: float = 100.0, drift: float = 0.02,
                 warmup: int = 2000, direction: str = "down", seed: int | None = 0) -> None:
        super().__init__(n_actions, dim, seed)
        if not isinstance(agent, Mapping) or "_target_" not in agent:
            raise ValueError(f"{self.name}: agent must be a config with a _target_, got {agent!r}")
        self.agent_config = dict(agent)
        self.threshold = check_float(self.name, "threshold", threshold, low=0.0, low_open=True)
        self.drift = check_float(self.name, "drift", drift, low=0.0)
        self.warmup = check_int(self.name, "warmup", warmup, 1)
        if direction not in ("down", "both"):
            raise ValueError(f"{self.name}: direction must be 'down' or 'both', got {direction!r}")
        self.direction = direction
        self.t = 0
        self.restarts: list[int] = []
        self._start()
        self._params.update(agent=self.agent_config, threshold=self.threshold, drift=self.drift, warmup=self.warmup,
                            direction=direction)

    def _start(self) -> None:
        from hydra.utils import instantiate

        seed = None if self.seed is None else self.seed + len(self.restarts)
        self.inner = instantiate(self.agent_config, n_actions=self.n_actions, dim=self.dim, seed=seed)
        self._ref: list[float] = []
        self._mean = None
        self._g = np.zeros(2)

    def action_probs(self, contexts: np.ndarray) -> np.ndarray:
        return self.inner.action_probs(contexts)

    def act(self, contexts: np.ndarray, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.inner.act(contexts, self.rng if rng is None else rng)

    def new_items(self, slots: Any, texts: Any = None) -> None:
        if hasattr(self.inner, "new_items"):
            self.inner.new_items(slots, texts)

    def update(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        x = np.asarray(contexts)
        a, r = np.asarray(actions), np.asarray(rewards, dtype=np.float64)
        start = 0
        while start < len(r):
            alarm = self._watch(r[start:])
            stop = len(r) if alarm is None else start + alarm + 1
            self.inner.update(x[start:stop], a[start:stop], r[start:stop])
            self.t += stop - start
            if alarm is not None:
                self.restarts.append(self.t)
                self._start()
            start = stop

    def _watch(self, r: np.ndarray) -> int | None:
        """Feed rewards to the detector; the index of the first alarm, or None."""
        i = 0
        if self._mean is None:  # the reference window after a (re)start
            take = min(len(r), self.warmup - len(self._ref))
            self._ref.extend(r[:take].tolist())
            i = take
            if len(self._ref) < self.warmup:
                return None
            self._mean = float(np.mean(self._ref))
        rest = r[i:]
        if not len(rest):
            return None
        sides = 1 if self.direction == "down" else 2
        first, last = len(rest), np.zeros(2)
        for side, inc in enumerate(((self._mean - rest) - self.drift, (rest - self._mean) - self.drift)[:sides]):
            s = self._g[side] + np.cumsum(inc)
            g = s - np.minimum(np.minimum.accumulate(s), 0.0)  # Page's recursion g <- max(0, g + inc), closed form
            hit = np.flatnonzero(g > self.threshold)
            first = min(first, int(hit[0])) if hit.size else first
            last[side] = g[-1]
        if first < len(rest):
            return i + first
        self._g = last
        return None
