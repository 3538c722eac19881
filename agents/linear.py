"""Linear contextual bandits on a shared per-arm ridge-regression state: LinUCB and linear Thompson sampling.

:class:`RidgeState` is the one ridge implementation in the package; the linear variants of
:class:`recsim_causal.agents.EpsilonGreedy` and :class:`recsim_causal.agents.Softmax` use it too.
"""

from __future__ import annotations

import math

import numpy as np

from recsim_causal.agents.base import (
    BasePolicy,
    ScorePolicy,
    argmax_frequencies,
    check_float,
    check_int,
    greedy_act,
    greedy_probs,
)

# Row blocks keep the temporaries of batched scoring under ~32 MB of float64.
_BLOCK_ELEMENTS = 1 << 22
# Scratch arrays up to this many float64 (8 MB) are kept between calls rather than reallocated.
_SCRATCH_ELEMENTS = 1 << 20
# ... and below this many, allocating is as cheap as reusing.
_SCRATCH_MIN_ELEMENTS = 1 << 13


class Scratch:
    """Named arrays reused from call to call: a fresh large array costs page faults each time.

    ``get(name, shape)`` returns an uninitialized float64 array that the next ``get`` of the same
    name overwrites; arrays above ``_SCRATCH_ELEMENTS`` are allocated afresh and not kept.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        size = math.prod(shape)
        if size > _SCRATCH_ELEMENTS:
            return np.empty(shape)
        buf = self._arrays.get(name)
        if buf is None or buf.size < size:
            buf = self._arrays[name] = np.empty(size)
        return buf[:size].reshape(shape)


class RidgeState:
    """Disjoint per-arm ridge regression: one linear model per action (Li et al. 2010, "disjoint").

    For arm ``a`` with observations ``(x_i, r_i)``:

    - ``A[a] = lambda_ * I + sum_i x_i x_i^T``   ``(K, d, d)``
    - ``b[a] = sum_i r_i x_i``                    ``(K, d)``
    - ``A_inv[a] = A[a]^{-1}``                    ``(K, d, d)``, kept up to date
    - ``theta[a] = A_inv[a] @ b[a]``              ``(K, d)``, the ridge estimate, cached

    Updates are exact: a single observation is a Sherman-Morrison rank-1 update of ``A_inv``
    (``O(d^2)``); a batch is grouped by arm, and each arm's block of ``k`` rows is either a
    Woodbury rank-``k`` update (``k <= woodbury_max_rank``, vectorized across arms by zero-padding
    to the largest such ``k``) or a fresh inverse of the accumulated ``A[a]`` (larger ``k``, which
    also resets any rounding drift of earlier rank-1 updates).

    Batched quadratic forms ``x^T A_inv[a] x`` and the batched ``X^T X`` use the ``d (d + 1) / 2``
    products ``x_i x_j``, ``i <= j``, only (``A_inv`` is symmetric), and reuse scratch arrays
    (:class:`Scratch`), so a state is not safe to share between threads.
    """

    def __init__(self, n_actions: int, dim: int, lambda_: float) -> None:
        self.n_actions = n_actions
        self.dim = dim
        self.lambda_ = lambda_
        eye = np.eye(dim)
        self.A = np.repeat((lambda_ * eye)[None], n_actions, axis=0)
        self.A_inv = np.repeat((eye / lambda_)[None], n_actions, axis=0)
        self.b = np.zeros((n_actions, dim))
        self.theta = np.zeros((n_actions, dim))
        self.woodbury_max_rank = max(1, dim // 2)
        self._a_inv_flat = self.A_inv.reshape(n_actions, dim * dim)  # a view: A_inv is only written in place
        self._triu = np.triu_indices(dim)
        self._triu_weight = np.where(self._triu[0] == self._triu[1], 1.0, 2.0)
        self._triu_offsets = np.concatenate(([0], np.cumsum(np.arange(dim, 0, -1))))
        tri_index = np.empty((dim, dim), dtype=np.intp)  # (i, j) -> position of (min, max) in _triu
        tri_index[self._triu] = np.arange(len(self._triu[0]))
        tri_index.T[self._triu] = np.arange(len(self._triu[0]))
        self._tri_of_full = tri_index.ravel()
        self.scratch = Scratch()

    # ---- prediction -----------------------------------------------------------------------

    def mean(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Ridge predictions ``x @ theta_a`` for every arm: ``(B, d) -> (B, K)``."""
        return np.matmul(x, self.theta.T, out=out)

    def quad_form(self, x: np.ndarray, scale: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
        """``scale * x^T A_inv[a] x`` for every row and arm: ``(B, d) -> (B, K)``, clipped at 0."""
        n_rows, dim = x.shape
        if n_rows == 1:  # one user: the (d*d,) outer product against A_inv as (K, d*d)
            out = np.matmul((x[0, :, None] * x[0]).reshape(1, dim * dim), self._a_inv_flat.T, out=out)
            if scale != 1.0:
                out *= scale
            return np.maximum(out, 0.0, out=out)
        # a batch: products x_i x_j for i <= j only, against A_inv[a, i, j] doubled off the
        # diagonal; half the work of the full form, as one matrix product per block of rows
        iu, ju = self._triu
        a_tri = self.A_inv[:, iu, ju] * (self._triu_weight * scale)  # (K, T)
        xt = np.ascontiguousarray(x.T)
        if out is None:
            out = np.empty((n_rows, self.n_actions))
        block = max(1, _BLOCK_ELEMENTS // len(iu))
        for start in range(0, n_rows, block):
            products = self._pair_products(xt[:, start : start + block])
            np.matmul(products.T, a_tri.T, out=out[start : start + block])
        return np.maximum(out, 0.0, out=out)

    def mean_and_width(
        self, x: np.ndarray, scale: float, reuse: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """``x @ theta_a`` and ``scale * sqrt(x^T A_inv[a] x)``, both ``(B, K)``.

        The confidence width of LinUCB (``scale = alpha``) and the posterior standard deviation
        of linear Thompson sampling (``scale = v``). With ``reuse``, the results live in scratch
        arrays that the next call overwrites: for callers that only read them on the spot.
        """
        shape = (x.shape[0], self.n_actions)
        reuse = reuse and shape[0] * shape[1] >= _SCRATCH_MIN_ELEMENTS
        mean = self.mean(x, out=self.scratch.get("mean", shape) if reuse else None)
        width = self.quad_form(x, scale * scale, out=self.scratch.get("width", shape) if reuse else None)
        return mean, np.sqrt(width, out=width)

    def mean_width_and_slope(self, x: np.ndarray, scale: float, column: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``mean_and_width(x, scale)`` and the derivative of ``mean + width`` in ``x[:, column]``,
        ``theta_a[column] + scale * (A_inv[a] x)[column] / sqrt(x^T A_inv[a] x)``, all ``(B, K)``."""
        mean, width = self.mean_and_width(x, scale)
        slope = np.broadcast_to(self.theta[:, column], mean.shape).copy()
        if scale:
            lever = x @ self.A_inv[:, :, column].T  # (A_inv[a] x)[column]
            slope += scale * scale * lever / np.maximum(width, 1e-300)
        return mean, width, slope

    def _pair_products(self, xt: np.ndarray) -> np.ndarray:
        """``x_i x_j`` for ``i <= j`` (``np.triu_indices`` order) of each column of ``xt (d, B)``: ``(T, B)``.

        One product per row ``i`` (rows ``i..d-1`` at once) into a scratch array: much faster
        than gathering ``xt[iu] * xt[ju]``.
        """
        dim, n_rows = xt.shape
        out = self.scratch.get("pairs", (len(self._triu[0]), n_rows))
        offsets = self._triu_offsets
        for i in range(dim):
            np.multiply(xt[i], xt[i:], out=out[offsets[i] : offsets[i + 1]])
        return out

    # ---- learning -------------------------------------------------------------------------

    def update(self, x: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Add a batch ``x (B, d)``, ``actions (B,)``, ``rewards (B,)``; exact for any ``B``."""
        n_rows = len(actions)
        if n_rows == 1:
            self.update_one(x[0], int(actions[0]), float(rewards[0]))
            return
        block = max(2, _BLOCK_ELEMENTS // len(self._triu[0]))  # bounds the (T, rows) products
        for start in range(0, n_rows, block):
            stop = start + block
            self._update_batch(x[start:stop], actions[start:stop], rewards[start:stop])

    def update_one(self, x: np.ndarray, action: int, reward: float) -> None:
        """Sherman-Morrison: ``A^{-1} <- A^{-1} - (A^{-1} x)(A^{-1} x)^T / (1 + x^T A^{-1} x)``, ``O(d^2)``."""
        a_inv = self.A_inv[action]
        ax = a_inv @ x
        w = ax * (1.0 / math.sqrt(1.0 + float(x @ ax)))  # w w^T is exactly symmetric
        a_inv -= w[:, None] * w
        self.A[action] += x[:, None] * x
        b = self.b[action]
        b += reward * x
        np.dot(a_inv, b, out=self.theta[action])

    def _update_batch(self, x: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        n_rows, dim = x.shape
        if n_rows == 1:  # the last row of a chunked batch
            self.update_one(x[0], int(actions[0]), float(rewards[0]))
            return
        order = np.argsort(actions, kind="stable")
        sorted_actions = actions[order]
        xs = x[order]
        starts = np.flatnonzero(np.concatenate(([True], sorted_actions[1:] != sorted_actions[:-1])))
        arms = sorted_actions[starts]
        counts = np.diff(np.append(starts, n_rows))

        # per-arm sums of x_i x_j (i <= j), (T, m), mirrored into (m, d, d) by one row gather
        tri = np.add.reduceat(self._pair_products(np.ascontiguousarray(xs.T)), starts, axis=1)
        self.A[arms] += tri[self._tri_of_full].T.reshape(len(arms), dim, dim)
        self.b[arms] += np.add.reduceat(xs * rewards[order][:, None], starts, axis=0)

        small = counts <= self.woodbury_max_rank
        if not small.all():
            self.A_inv[arms[~small]] = _spd_inverse(self.A[arms[~small]])
        if small.any():
            self._woodbury(xs, starts[small], counts[small], arms[small])
        self.theta[arms] = np.matmul(self.A_inv[arms], self.b[arms][:, :, None])[:, :, 0]

    def _woodbury(self, xs: np.ndarray, starts: np.ndarray, counts: np.ndarray, arms: np.ndarray) -> None:
        """Rank-k updates ``A^{-1} <- A^{-1} - U (I + X U)^{-1} U^T``, ``U = A^{-1} X^T``, for groups of rows.

        Group ``g`` is rows ``xs[starts[g] : starts[g] + counts[g]]`` of arm ``arms[g]``. Each group
        is padded with zero rows to the largest ``k``: a zero row adds nothing to ``X^T X`` and
        its block of ``I + X U`` is the identity, so the update stays exact.
        """
        k_max = int(counts.max())
        within = np.arange(k_max)
        valid = within[None, :] < counts[:, None]  # (m, k)
        rows = np.where(valid, starts[:, None] + within[None, :], 0)
        xp = np.where(valid[:, :, None], xs[rows], 0.0)  # (m, k, d)
        a_inv = self.A_inv[arms]
        u = np.matmul(a_inv, xp.transpose(0, 2, 1))  # (m, d, k)
        s = np.matmul(xp, u)  # (m, k, k)
        s[:, within, within] += 1.0
        new = a_inv - np.matmul(u, np.linalg.solve(s, u.transpose(0, 2, 1)))
        self.A_inv[arms] = 0.5 * (new + new.transpose(0, 2, 1))

    def reset_arms(self, arms) -> None:
        """Forget everything about ``arms`` (new items in those slots): back to the prior."""
        arms = np.asarray(arms, dtype=np.int64)
        eye = np.eye(self.dim)
        self.A[arms] = self.lambda_ * eye
        self.A_inv[arms] = eye / self.lambda_
        self.b[arms] = 0.0
        self.theta[arms] = 0.0

    # ---- persistence ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"A": self.A, "A_inv": self.A_inv, "b": self.b, "theta": self.theta}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for key in ("A", "A_inv", "b", "theta"):
            getattr(self, key)[...] = state[key]


def _spd_inverse(a: np.ndarray) -> np.ndarray:
    """Inverse of a stack of symmetric positive-definite matrices ``(m, d, d)``, symmetrized."""
    inv = np.linalg.inv(a)
    return 0.5 * (inv + inv.transpose(0, 2, 1))


class _RidgePolicy(BasePolicy):
    """Shared by :class:`LinUCB` and :class:`LinearThompsonSampling`: learning and persistence
    on the per-arm ridge state ``self.ridge`` (a :class:`RidgeState`) that subclasses create."""

    ridge: RidgeState
    #: One model for all actions on per-action features (the context holds K blocks of dim / K
    #: features, one per action: a linear bandit, Abbasi-Yadkori et al. 2011) instead of one per arm.
    shared: bool = False

    def _set_shared(self, shared: bool) -> None:
        if not isinstance(shared, bool):
            raise ValueError(f"{self.name}: shared must be true or false, got {shared!r}")
        if shared and self.dim % self.n_actions:
            raise ValueError(f"{self.name}: shared needs dim = n_actions x features per action, got dim={self.dim} "
                             f"and n_actions={self.n_actions}")
        self.shared = shared
        self._params["shared"] = shared

    def _ridge_dims(self) -> tuple[int, int]:
        """(number of models, their dimension)."""
        return (1, self.dim // self.n_actions) if self.shared else (self.n_actions, self.dim)

    def _scoring_rows(self, x: np.ndarray) -> np.ndarray:
        """What the ridge scores: the contexts, or every action's features (B K, dim / K) when shared."""
        return x.reshape(-1, self.dim // self.n_actions) if self.shared else x

    def _per_action(self, scores: np.ndarray, n_rows: int) -> np.ndarray:
        return scores.reshape(n_rows, self.n_actions) if self.shared else scores

    def update(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Add the batch to the ridge state (exact for any batch size, see :class:`RidgeState`)."""
        x, a, r = self._feedback(contexts, actions, rewards)
        if self.shared:  # the chosen action's features, to the one model
            x = x.reshape(len(a), self.n_actions, -1)[np.arange(len(a)), a]
            a = np.zeros(len(a), dtype=np.int64)
        self.ridge.update(x, a, r)

    def new_items(self, slots, texts=None) -> None:
        """New items took the places of ``slots`` (a changing catalogue): their arms start
        afresh. An id-only model knows nothing of a new item; ``texts`` are not used here."""
        self.ridge.reset_arms(slots)

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.ridge.state_dict()

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.ridge.load_state_dict(state)


class LinUCB(_RidgePolicy, ScorePolicy):
    """LinUCB with disjoint linear models (Li, Chu, Langford & Schapire 2010, Algorithm 1).

    Scores each arm by its upper confidence bound
    ``ucb_a(x) = x . theta_a + alpha * sqrt(x^T A_a^{-1} x)`` on the ridge state
    (:class:`RidgeState`, regularization ``lambda_``) and plays the argmax. The policy is
    deterministic: :meth:`action_probs` is one-hot on the argmax, ties split evenly, and
    :meth:`act` breaks ties uniformly with the ``rng`` it is given.

    Args:
        n_actions: number of arms ``K >= 1``.
        dim: context dimension ``d >= 1``.
        alpha: width of the confidence bonus, ``>= 0`` (0: greedy ridge regression).
        lambda_: ridge regularization, ``> 0``.
        seed: seeds :attr:`rng`, used by :meth:`act` when no ``rng`` is passed.
        shared: one model for all actions on per-action features (the context is K blocks of
            dim / K features); default: one model per arm on the user's context.
    """

    slate_rule = "greedy"

    def __init__(
        self, n_actions: int, dim: int, alpha: float = 1.0, lambda_: float = 1.0, seed: int | None = 0,
        shared: bool = False,
    ) -> None:
        super().__init__(n_actions, check_int(type(self).__name__, "dim", dim, 1), seed)
        self.alpha = check_float(self.name, "alpha", alpha, low=0.0)
        self.lambda_ = check_float(self.name, "lambda_", lambda_, low=0.0, low_open=True)
        self._set_shared(shared)
        self.ridge = RidgeState(*self._ridge_dims(), self.lambda_)
        self._params.update(alpha=self.alpha, lambda_=self.lambda_)

    def scores(self, contexts: np.ndarray) -> np.ndarray:
        """Upper confidence bounds ``(B, d) -> (B, K)``."""
        return self._ucb(contexts, reuse=False)

    def _ucb(self, contexts: np.ndarray, reuse: bool) -> np.ndarray:
        x = self._contexts(contexts)
        rows = self._scoring_rows(x)
        if not self.alpha:
            return self._per_action(self.ridge.mean(rows), len(x))
        ucb, width = self.ridge.mean_and_width(rows, self.alpha, reuse=reuse and not self.shared)
        ucb += width
        return self._per_action(ucb, len(x))

    def probs_from_scores(self, scores: np.ndarray) -> np.ndarray:
        return greedy_probs(scores)

    def scores_with_slope(self, contexts: np.ndarray, column: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`scores` and their derivatives in ``contexts[:, column]``, both ``(B, K)``. Each
        score is convex in that column (linear plus a norm), and the distribution depends on
        the scores only through their argmax: the contract with which
        :func:`recsim_causal.ope.propensity.marginal_action_probs` certifies its cells."""
        x = self._contexts(contexts)
        if not self.shared:
            mean, width, slope = self.ridge.mean_width_and_slope(x, self.alpha, column)
            return mean + width, slope
        # shared: the column is feature column % p of action column // p, and moves only its score
        p = self.dim // self.n_actions
        mean, width, slope = self.ridge.mean_width_and_slope(self._scoring_rows(x), self.alpha, column % p)
        slope = self._per_action(slope, len(x)) * (np.arange(self.n_actions) == column // p)
        return self._per_action(mean + width, len(x)), slope

    def action_probs(self, contexts: np.ndarray) -> np.ndarray:
        """One-hot on the UCB argmax, ties split: ``(B, d) -> (B, K)``."""
        return greedy_probs(self._ucb(contexts, reuse=True))

    def act(
        self, contexts: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The UCB argmax per context (ties broken by ``rng``); pscore ``1 / n_ties``."""
        return greedy_act(self._ucb(contexts, reuse=True), self.rng if rng is None else rng)


class LinearThompsonSampling(_RidgePolicy):
    """Linear Thompson sampling (Agrawal & Goyal 2013) on disjoint per-arm Gaussian posteriors.

    Arm ``a``'s posterior is ``N(theta_a, v^2 A_a^{-1})`` on the ridge state (:class:`RidgeState`).
    For one context ``x`` the sampled score ``x . theta~_a`` is exactly
    ``N(x . theta_a, v^2 x^T A_a^{-1} x)``, independently across arms, so a posterior draw per
    decision costs what a LinUCB score does (:meth:`posterior`, :meth:`sample_scores`); no
    ``O(d^3)`` factorization is needed.

    The distribution this policy plays, and reports, is the Monte-Carlo estimate of the Thompson
    probabilities ``P(a = argmax_k x . theta~_k)`` from :attr:`n_mc_draws` common score draws
    ``mean + sd * z``, ``z`` a fixed ``(n_mc_draws, K)`` standard-normal table (antithetic rows,
    drawn once from the policy's seed): :meth:`action_probs` is a deterministic function of the
    state and the context, and :meth:`act` samples from exactly that distribution, so its pscores
    equal ``action_probs`` bit for bit and logged propensities are exact for the policy that
    acted. The approximation is of Thompson sampling itself: each probability is off by at most
    about ``sqrt(p (1 - p) / n_mc_draws)`` (``<= 0.031`` at the default 256 draws), and an arm
    that wins none of the draws is not played. Every decision costs ``O(n_mc_draws * K)``: the
    default of 256 keeps one-user decisions above ten thousand a second on two CPU cores at
    ``K = 50``; raise it (e.g. to 1000) for a closer approximation at a proportional cost. Arms
    that cannot win any draw are skipped, so a concentrated posterior is cheaper.

    Args:
        n_actions: number of arms ``K >= 1``.
        dim: context dimension ``d >= 1``.
        v: posterior scale, ``> 0``.
        lambda_: ridge regularization (prior precision), ``> 0``.
        seed: seeds :attr:`rng` and, independently, the Monte-Carlo table.
        n_mc_draws: overrides the class attribute :attr:`n_mc_draws` (256).
    """

    n_mc_draws: int = 256

    def __init__(
        self,
        n_actions: int,
        dim: int,
        v: float = 1.0,
        lambda_: float = 1.0,
        seed: int | None = 0,
        n_mc_draws: int | None = None,
    ) -> None:
        super().__init__(n_actions, check_int(type(self).__name__, "dim", dim, 1), seed)
        self.v = check_float(self.name, "v", v, low=0.0, low_open=True)
        self.lambda_ = check_float(self.name, "lambda_", lambda_, low=0.0, low_open=True)
        if n_mc_draws is not None:
            self.n_mc_draws = check_int(self.name, "n_mc_draws", n_mc_draws, 1)
        self.ridge = RidgeState(self.n_actions, self.dim, self.lambda_)
        self._z: np.ndarray | None = None  # the (n_mc_draws, K) standard-normal table, drawn on first use
        self._params.update(v=self.v, lambda_=self.lambda_, n_mc_draws=self.n_mc_draws)

    def posterior(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of each arm's sampled score: ``(B, d) -> (B, K), (B, K)``."""
        return self.ridge.mean_and_width(self._contexts(contexts), self.v)

    def sample_scores(self, contexts: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """One exact posterior draw of every arm's score per context, ``(B, K)``; its argmax is a
        textbook Thompson decision (whose propensity is not available in closed form)."""
        mean, sd = self.posterior(contexts)
        rng = self.rng if rng is None else rng
        return mean + sd * rng.standard_normal(mean.shape)

    def action_probs(self, contexts: np.ndarray) -> np.ndarray:
        """Monte-Carlo Thompson probabilities ``(B, d) -> (B, K)`` (see the class docstring)."""
        mean, sd = self.ridge.mean_and_width(self._contexts(contexts), self.v, reuse=True)
        return self._mc_probs(mean, sd)

    def _mc_probs(self, mean: np.ndarray, sd: np.ndarray, prune: bool = True) -> np.ndarray:
        """Win frequencies of ``mean + sd * z`` over the table ``z``; ``(B, K), (B, K) -> (B, K)``.

        Arms that cannot win any draw are skipped: arm ``k``'s best draw
        ``mean_k + sd_k * max(z[:, k])`` below some arm's worst draw ``mean_j + sd_j * min(z[:, j])``
        loses every row of the table. The result is identical with ``prune=False``, only cheaper
        when at most half the arms remain.
        """
        if self._z is None:
            # antithetic rows (z, -z): never a worse estimate for a coordinate-wise monotone
            # indicator such as "arm a wins", and often a better one
            half = self._derived_rng(0).standard_normal(((self.n_mc_draws + 1) // 2, self.n_actions))
            self._z = np.concatenate([half, -half])[: self.n_mc_draws]
            self._z_max = self._z.max(axis=0)
            self._z_min = self._z.min(axis=0)
        z = self._z
        n_rows, n_actions = mean.shape
        if n_rows == 1:  # one user: the same arithmetic without pruning and blocks (fewer calls)
            draws = np.multiply(sd[:, None, :], z, out=self.ridge.scratch.get("draws", (1, *z.shape)))
            draws += mean[:, None, :]
            return argmax_frequencies(draws)
        out = np.zeros_like(mean)
        block = max(1, _BLOCK_ELEMENTS // z.size)
        for start in range(0, n_rows, block):
            stop = min(start + block, n_rows)
            m, s = mean[start:stop], sd[start:stop]
            if prune:
                floor = (m + s * self._z_min).max(axis=1, keepdims=True)
                arms = np.flatnonzero(((m + s * self._z_max) >= floor).any(axis=0))
            else:
                arms = np.arange(n_actions)
            if 2 * len(arms) > n_actions:  # gathering columns costs more than it saves
                draws = np.multiply(s[:, None, :], z, out=self.ridge.scratch.get("draws", (stop - start, *z.shape)))
                draws += m[:, None, :]
                out[start:stop] = argmax_frequencies(draws)
            elif len(arms) == 1:
                out[start:stop, arms[0]] = 1.0
            else:
                draws = s[:, None, arms] * z[:, arms]
                draws += m[:, None, arms]
                out[start:stop, arms] = argmax_frequencies(draws)
        return out
