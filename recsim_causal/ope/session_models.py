"""Models that session estimators learn from the log: state features, fitted-Q evaluation on
features shared across items, and state-marginal importance weights.

A session's observation (the user's features, the step, the last reward, the satisfaction)
leaves out what the history did to the user: in Session-v0 the fatigue is a decayed sum of
the topics recommended, and the interest drifts toward the styles clicked. Both are functions
of the logged history and the items' features, so :func:`session_state_features` appends

    shown_t   = decay shown_{t-1}   + psi(a_{t-1})               (what was recommended)
    clicked_t = decay clicked_{t-1} + r_{t-1} psi(a_{t-1})       (what was consumed)

(psi the item features, ``decay`` the fatigue's; 0 at the first step) to the observation.

:class:`FeatureFQE` is fitted-Q evaluation (Le et al. 2019) with Q(s, a) = phi(s)^T Theta psi(a):
one bilinear model over state features phi and item features psi = [item features, 1], so a
rarely logged item borrows from the items like it. The target's value of a state needs no sum
over items: V(s) = phi(s)^T Theta (sum_a pi_e(a|s) psi(a)).

:class:`StateMarginalWeights` learns w_t(s) = d^e_t(s) / d^b_t(s), the ratio of the target's and
the logger's state distributions at step t, from the log alone. For a finite horizon the flow
of states gives w_0 = 1 and

    w_{t+1}(s') = E_b[ w_t(s_t) rho_t | s_{t+1} = s' ],      rho_t = pi_e(a_t | s_t) / pi_b(a_t | s_t),

a regression of the previous step's weight times its action ratio on the next state (minimax
weight learning with a linear class of test functions: Uehara, Huang, Jiang 2020, whose
moment condition E_b[(w_{t+1}(s') - w_t rho_t) f(s')] = 0 for f in the span of phi is exactly
this least-squares fit; Xie, Ma, Wang 2019 for the time-indexed marginal ratios). The
estimators that use it, MIS and MDR, are in :mod:`recsim_causal.ope.sequential`.

H. Le, C. Voloshin, Y. Yue. "Batch Policy Learning under Constraints.", ICML 2019.
M. Uehara, J. Huang, N. Jiang. "Minimax Weight and Q-Function Learning for Off-Policy Evaluation.", ICML 2020.
T. Xie, Y. Ma, Y.-X. Wang. "Towards Optimal Off-Policy Evaluation for Reinforcement Learning with
Marginalized Importance Sampling.", NeurIPS 2019.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.checks import as_float_array, as_int_array

__all__ = ["session_steps", "session_state_features", "FeatureFQE", "StateMarginalWeights"]


def session_steps(trajectory_id: Any) -> tuple[np.ndarray, np.ndarray]:
    """(step index (n,), has_next (n,)) of rows grouped by trajectory in time order."""
    tid = as_int_array(trajectory_id, "trajectory_id")
    new = np.ones(len(tid), bool)
    new[1:] = tid[1:] != tid[:-1]
    start = np.flatnonzero(new)
    lengths = np.diff(np.append(start, len(tid)))
    step = np.arange(len(tid)) - np.repeat(start, lengths)
    has_next = np.zeros(len(tid), bool)
    has_next[:-1] = ~new[1:]
    return step, has_next


def session_state_features(context: Any, action: Any, reward: Any, trajectory_id: Any,
                           item_features: Any = None, *, decay: float = 0.8) -> np.ndarray:
    """phi(s_t) = [context, shown_t, clicked_t, 1] (module doc); [context, 1] without item features.

    Args:
        context: (n, d) the logged observations; action, reward, trajectory_id: (n,), rows
            grouped by trajectory in time order.
        item_features: (K, p) or None.
    Returns:
        (n, d + 2p + 1).
    """
    x = as_float_array(context, "context")
    n = x.shape[0]
    parts = [x]
    if item_features is not None:
        psi = as_float_array(item_features, "item_features")
        a = as_int_array(action, "action")
        r = as_float_array(reward, "reward")
        step, _ = session_steps(trajectory_id)
        shown, clicked = np.zeros((n, psi.shape[1])), np.zeros((n, psi.shape[1]))
        for t in range(1, int(step.max(initial=0)) + 1):
            rows = np.flatnonzero(step == t)
            prev = rows - 1
            shown[rows] = decay * shown[prev] + psi[a[prev]]
            clicked[rows] = decay * clicked[prev] + r[prev, None] * psi[a[prev]]
        parts += [shown, clicked]
    return np.concatenate(parts + [np.ones((n, 1))], axis=1)


def _standardize(phi: np.ndarray) -> np.ndarray:
    """Columns scaled to unit spread (the constant column kept), so one ridge fits all."""
    sd = phi.std(axis=0)
    return phi / np.where(sd > 1e-12, sd, 1.0)


class FeatureFQE:
    """Fitted-Q evaluation with Q(s, a) = phi(s)^T Theta psi(a) (module doc).

    Args:
        item_features: (K, p) psi's features (a constant is appended).
        ridge: L2 penalty on Theta (features are standardized first).
        n_iterations: Bellman backups; default the longest trajectory (exact for a finite
            horizon once the fit is).
    """

    def __init__(self, item_features: Any, *, ridge: float = 1.0, n_iterations: int | None = None) -> None:
        psi = as_float_array(item_features, "item_features")
        if psi.ndim != 2:
            raise ValueError(f"item_features: expected shape (n_actions, p), got {psi.shape}")
        if not ridge > 0:
            raise ValueError(f"FeatureFQE: ridge must be > 0, got {ridge!r}")
        if n_iterations is not None and (not isinstance(n_iterations, (int, np.integer)) or n_iterations < 1):
            raise ValueError(f"FeatureFQE: n_iterations must be an integer >= 1 or None, got {n_iterations!r}")
        psi = _standardize(psi)
        self.psi = np.concatenate([psi, np.ones((psi.shape[0], 1))], axis=1)
        self.n_actions, self.ridge, self.n_iterations = psi.shape[0], float(ridge), n_iterations
        self._factor: tuple | None = None

    def fit_predict(self, *, state_features: Any, action: Any, reward: Any, trajectory_id: Any,
                    evaluation_policy_action_dist: Any, gamma: float = 1.0,
                    sample_weight: Any = None) -> np.ndarray:
        """Qhat(s_t, a) for every logged step and action, (n_steps, K).

        ``state_features`` (n, m): phi(s_t) (:func:`session_state_features`). ``sample_weight``
        (n,): row weights (a bootstrap's counts). Called again on the same ``state_features`` and
        ``action`` objects (another target), the factored Gram matrix is reused."""
        phi = _standardize(as_float_array(state_features, "state_features"))
        a = as_int_array(action, "action")
        r = as_float_array(reward, "reward")
        pi = as_float_array(evaluation_policy_action_dist, "evaluation_policy_action_dist")
        n, K = len(a), self.n_actions
        if phi.shape[0] != n or r.shape != (n,) or pi.shape != (n, K):
            raise ValueError(f"FeatureFQE: expected state_features (n, m), action/reward (n,), "
                             f"evaluation_policy_action_dist (n, {K}) with n = {n}")
        step, has_next = session_steps(trajectory_id)
        c = np.ones(n) if sample_weight is None else as_float_array(sample_weight, "sample_weight")
        m, q = phi.shape[1], self.psi.shape[1]

        # the design row of step i is phi_i (x) psi_{a_i} (index j q + k); its Gram matrix is
        # sum over actions of (Phi_a^T C Phi_a) (x) (psi_a psi_a^T), and Z^T v = Phi^T diag(v) Psi_{a_i}:
        # neither needs the (n, m q) design
        # one factorization serves every target of a log (the same arrays: held, so compared by identity)
        if sample_weight is None and self._factor is not None and self._factor[0] is state_features \
                and self._factor[1] is action:
            chol = self._factor[2]
        else:
            gram = np.zeros((m * q, m * q))
            order = np.argsort(a, kind="stable")
            bounds = np.searchsorted(a[order], np.arange(K + 1))
            for k in range(K):
                rows = order[bounds[k]:bounds[k + 1]]
                if len(rows):
                    gram += np.kron((phi[rows] * c[rows, None]).T @ phi[rows], np.outer(self.psi[k], self.psi[k]))
            gram[np.diag_indices_from(gram)] += self.ridge
            chol = np.linalg.cholesky(gram)
            if sample_weight is None:
                self._factor = (state_features, action, chol)
        psi_a = self.psi[a]  # (n, q)
        psi_bar = pi @ self.psi  # (n, q): the target's expected item features at each state
        theta = np.zeros((m, q))
        for _ in range(self.n_iterations or int(step.max(initial=0)) + 1):
            v = np.einsum("im,mq,iq->i", phi, theta, psi_bar)
            y = r.copy()
            y[has_next] += gamma * v[1:][has_next[:-1]]
            rhs = ((phi * (c * y)[:, None]).T @ psi_a).reshape(m * q)
            theta = np.linalg.solve(chol.T, np.linalg.solve(chol, rhs)).reshape(m, q)
        return (phi @ theta) @ self.psi.T


class StateMarginalWeights:
    """w_t(s_t) for every logged step by the recursive regression of the module doc.

    Args:
        ridge: L2 penalty of each step's regression (features standardized, the constant not
            penalized).
    """

    def __init__(self, *, ridge: float = 1.0) -> None:
        if not ridge > 0:
            raise ValueError(f"StateMarginalWeights: ridge must be > 0, got {ridge!r}")
        self.ridge = float(ridge)

    def fit_predict(self, *, state_features: Any, ratio: Any, trajectory_id: Any, sample_weight: Any = None) -> np.ndarray:
        """(n,) w_t(s_t), >= 0, 1 at each trajectory's first step.

        Args:
            state_features: (n, m) phi(s_t).
            ratio: (n,) rho_t = pi_e(a_t | s_t) / pi_b(a_t | s_t).
            sample_weight: (n,) row weights (a bootstrap's counts).
        """
        phi = _standardize(as_float_array(state_features, "state_features"))
        rho = as_float_array(ratio, "ratio")
        n = len(rho)
        c = np.ones(n) if sample_weight is None else as_float_array(sample_weight, "sample_weight")
        step, _ = session_steps(trajectory_id)
        const = np.all(np.isclose(phi, phi[:1]), axis=0)  # the constant column: not penalized
        penalty = np.where(const, 0.0, self.ridge)
        w = np.ones(n)
        for t in range(1, int(step.max(initial=0)) + 1):
            rows = np.flatnonzero(step == t)
            x, y, cw = phi[rows], w[rows - 1] * rho[rows - 1], c[rows]
            gram = (x * cw[:, None]).T @ x + np.diag(penalty) + 1e-9 * np.eye(x.shape[1])
            beta = np.linalg.solve(gram, (x * cw[:, None]).T @ y)
            fit = np.maximum(x @ beta, 0.0)
            # the clip at 0 adds mass; rescale so the constant test function's moment holds again:
            # the weighted mean of w_{t+1} equals that of w_t rho_t (unclipped, least squares keeps it)
            target, mass = float(cw @ y), float(cw @ fit)
            w[rows] = fit * (target / mass) if mass > 0 else fit
        return w
