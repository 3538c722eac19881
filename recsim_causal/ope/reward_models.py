"""Reward models qhat(x, a) for DM / DR: OBP's ``RegressionModel``.

``RegressionModel(base_model, n_actions, len_list=1, action_context=None,
fitting_method="normal")`` mirrors OBP 0.5.7: one model per position, ``fit_predict`` with
k-fold cross-fitting (folds identical to ``sklearn.model_selection.KFold(n_folds,
shuffle=True, random_state)``), and the output shape (n_rounds, n_actions, len_list) that the estimators
take as ``estimated_rewards_by_reg_model``.

Base learners (``base_model``): a name from :data:`REWARD_MODELS` (add one with
:func:`register_reward_model`), or any scikit-learn classifier or regressor (OBP's contract:
``fit(X, y[, sample_weight])`` and ``predict_proba`` (classifiers: column 1 is qhat) or
``predict``; cloned for every fold and position), e.g. ``RandomForestClassifier()`` or
``lightgbm.LGBMClassifier()``; it sees OBP's "concat" features [x, action_context[a]].

- "ridge": least squares, sum_i w_i (y_i - f_i)^2 / 2 + alpha/2 ||coef||^2, intercept not
  penalized (= ``sklearn.linear_model.Ridge(alpha)``), solved exactly from the Gram matrix
  without building the design matrix.
- "logistic": sum_i w_i CE(y_i, sigmoid(f_i)) + alpha/2 ||coef||^2 (=
  ``LogisticRegression(C=1/alpha)``). With "interaction" features: our per-action Newton
  (IRLS) fits in numpy (much faster than K scikit-learn fits, see scripts/bench.py); with
  "concat": scikit-learn's ``LogisticRegression`` (faster than a hand-written Newton on the
  (d + K)-column design). Rewards must lie in [0, 1].
- "mlp": a small torch MLP (ReLU hidden layers), Adam on minibatches, cross-entropy for
  rewards in {0, 1}, squared error otherwise.

Features (``features``):

- "concat" (OBP's default): f(x, a) = g([x, action_context[a]]), with action_context the
  one-hot identity when not given; for the linear learners
  f = x.w_x + action_context[a].w_a + b (a shared slope on x, an action effect).
- "interaction": a separate function of x per action, f(x, a) = b0 + b_a + x.w_a
  (linear: the features x (x) onehot(a); b0 the unpenalized global level, fitted first,
  so an action without data falls back to it); for the MLP, K output heads.

``fitting_method``: "normal", "iw" (sample weights pi_e(a_i|x_i) / pi_b(a_i|x_i)) or
"mrdr" (pi_e (1 - pi_b) / pi_b^2), as OBP.

References: Y. Narita, S. Yasui, K. Yata. "Off-policy Bandit and Reinforcement Learning.",
2020 (cross-fitting). M. Farajtabar, Y. Chow, M. Ghavamzadeh. "More Robust Doubly Robust
Off-policy Evaluation.", 2018 (mrdr).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsim_causal.threads import torch_threads

from ..data.checks import as_float_array, as_int_array, check_finite, check_rows

__all__ = ["RegressionModel", "fit_predict", "kfold_indices", "REWARD_MODELS", "register_reward_model",
           "reward_model_features"]
FEATURES = ("concat", "interaction", "cross")
FITTING_METHODS = ("normal", "iw", "mrdr")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * z) + 0.5


def kfold_indices(n: int, n_folds: int, random_state: Any = None,
                  groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs exactly as ``KFold(n_folds, shuffle=True, random_state).split``.

    ``groups`` (n,): rows with the same label share a fold (the folds split the distinct labels
    as KFold would split them). A bootstrap resample passes the original row indices, so a
    round drawn twice never sits on both sides of a cross-fit (its own reward would leak into
    its qhat).

    Kept by hand (12 lines): importing scikit-learn costs seconds, and the default reward
    models (logistic and ridge with interaction features) do not need it."""
    if groups is not None:
        labels, member = np.unique(np.asarray(groups), return_inverse=True)
        for train, test in kfold_indices(len(labels), n_folds, random_state):
            in_test = np.zeros(len(labels), dtype=bool)
            in_test[test] = True
            yield np.flatnonzero(~in_test[member]), np.flatnonzero(in_test[member])
        return
    if n_folds < 2 or n_folds > n:
        raise ValueError(f"n_folds: expected 2 <= n_folds <= n_rounds={n}, got {n_folds}")
    rng = random_state if isinstance(random_state, np.random.RandomState) else np.random.RandomState(random_state)
    order = np.arange(n)
    rng.shuffle(order)
    sizes = np.full(n_folds, n // n_folds, dtype=np.int64)
    sizes[: n % n_folds] += 1
    start = 0
    for size in sizes:
        mask = np.zeros(n, dtype=bool)
        mask[order[start : start + size]] = True
        yield np.flatnonzero(~mask), np.flatnonzero(mask)
        start += size


# ============================================================================ linear learners
class _RidgeConcat:
    """f(x, a) = x.wx + ac[a].wa + b by ridge regression, from the Gram matrix."""

    def __init__(self, alpha: float, ac: np.ndarray):
        self.alpha, self.ac = alpha, ac

    # X = [x, ac[a], 1]; the Gram matrix and X'v are built without materializing X
    def _xt(self, x: np.ndarray, a: np.ndarray, v: np.ndarray) -> np.ndarray:
        K = self.ac.shape[0]
        return np.concatenate([x.T @ v, self.ac.T @ np.bincount(a, weights=v, minlength=K), [v.sum()]])

    def _gram(self, x: np.ndarray, a: np.ndarray, w: np.ndarray) -> np.ndarray:
        ac, K = self.ac, self.ac.shape[0]
        d, da = x.shape[1], ac.shape[1]
        xw = x * w[:, None]
        S = np.stack([np.bincount(a, weights=xw[:, j], minlength=K) for j in range(d)], axis=1)
        cw = np.bincount(a, weights=w, minlength=K)
        p = d + da + 1
        G = np.empty((p, p))
        G[:d, :d] = x.T @ xw
        G[:d, d : d + da] = S.T @ ac
        G[d : d + da, d : d + da] = ac.T @ (ac * cw[:, None])
        G[:d, -1] = xw.sum(axis=0)
        G[d : d + da, -1] = ac.T @ cw
        G[-1, -1] = w.sum()
        G[d:, :d] = G[:d, d:].T
        G[-1, d : d + da] = G[d : d + da, -1]
        return G

    def _eta(self, x: np.ndarray, a: np.ndarray, beta: np.ndarray) -> np.ndarray:
        d = x.shape[1]
        return x @ beta[:d] + (self.ac @ beta[d:-1])[a] + beta[-1]

    def fit(self, x: np.ndarray, a: np.ndarray, y: np.ndarray, w: np.ndarray) -> _RidgeConcat:
        p = x.shape[1] + self.ac.shape[1] + 1
        G = self._gram(x, a, w)
        G[np.diag_indices(p)] += np.r_[np.full(p - 1, self.alpha), 0.0]  # intercept not penalized
        self.beta = _solve(G, self._xt(x, a, w * y))
        return self

    def predict_all(self, x: np.ndarray) -> np.ndarray:
        d = x.shape[1]
        return (x @ self.beta[:d])[:, None] + (self.ac @ self.beta[d:-1] + self.beta[-1])[None, :]

    def empty(self, d: int) -> _RidgeConcat:
        """Unfitted parameters of the fitted shapes for ``d`` context features (zeros), to load into."""
        self.beta = np.zeros(d + self.ac.shape[1] + 1)
        return self

    STATE = ("beta",)


class _SklearnConcat:
    """A scikit-learn model on OBP's concat features [x, ac[a]] (OBP's ``RegressionModel``)."""

    def __init__(self, model: Any, ac: np.ndarray):
        self.model, self.ac = model, ac

    def fit(self, x: np.ndarray, a: np.ndarray, y: np.ndarray, w: np.ndarray) -> _SklearnConcat:
        from sklearn.base import clone

        self.fitted = clone(self.model)
        X = np.concatenate([x, self.ac[a]], axis=1)
        if np.all(w == 1.0):
            self.fitted.fit(X, y)
        else:
            self.fitted.fit(X, y, sample_weight=w)
        return self

    def predict_all(self, x: np.ndarray) -> np.ndarray:
        n, K = x.shape[0], self.ac.shape[0]
        out = np.empty((n, K))
        proba = hasattr(self.fitted, "predict_proba")
        for k in range(K):
            X = np.concatenate([x, np.broadcast_to(self.ac[k], (n, self.ac.shape[1]))], axis=1)
            out[:, k] = self.fitted.predict_proba(X)[:, 1] if proba else self.fitted.predict(X)
        return out


class _LinearInteraction:
    """f(x, a) = b0 + b_a + x.w_a: per-action models around an unpenalized global level b0."""

    def __init__(self, loss: str, alpha: float, n_actions: int, max_iter: int = 100, tol: float = 1e-10):
        self.loss, self.alpha, self.K, self.max_iter, self.tol = loss, alpha, n_actions, max_iter, tol

    def fit(self, x: np.ndarray, a: np.ndarray, y: np.ndarray, w: np.ndarray) -> _LinearInteraction:
        n, d = x.shape
        wsum = w.sum()
        ybar = float(w @ y / wsum) if wsum > 0 else 0.5
        if self.loss == "squared":
            self.b0 = ybar
        else:
            ybar = min(max(ybar, 1e-6), 1 - 1e-6)
            self.b0 = math.log(ybar / (1 - ybar))
        self.coef = np.zeros((self.K, d + 1))  # [w_a, b_a]
        order = np.argsort(a, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(a, minlength=self.K))])
        penalty = np.full(d + 1, self.alpha)
        for k in range(self.K):
            rows = order[bounds[k] : bounds[k + 1]]
            if rows.size == 0:
                continue
            X = np.c_[x[rows], np.ones(rows.size)]
            self.coef[k] = self._fit_one(X, y[rows], w[rows], penalty)
        return self

    def _fit_one(self, X: np.ndarray, y: np.ndarray, w: np.ndarray, penalty: np.ndarray) -> np.ndarray:
        p = X.shape[1]
        if self.loss == "squared":
            G = X.T @ (X * w[:, None])
            G[np.diag_indices(p)] += penalty
            return _solve(G, X.T @ (w * (y - self.b0)))
        beta = np.zeros(p)

        def objective(b: np.ndarray) -> float:
            eta = self.b0 + X @ b
            return float(w @ (np.logaddexp(0.0, eta) - y * eta) + 0.5 * (penalty * b) @ b)

        def grad_hess(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            mu = _sigmoid(self.b0 + X @ b)
            return X.T @ (w * (mu - y)), X.T @ (X * (w * mu * (1 - mu))[:, None])

        return _newton(beta, objective, grad_hess, penalty, self.tol, self.max_iter)

    def predict_all(self, x: np.ndarray) -> np.ndarray:
        eta = self.b0 + x @ self.coef[:, :-1].T + self.coef[:, -1][None, :]
        return _sigmoid(eta) if self.loss == "logistic" else eta

    def empty(self, d: int) -> _LinearInteraction:
        self.b0, self.coef = np.zeros(()), np.zeros((self.K, d + 1))
        return self

    STATE = ("b0", "coef")


class _LinearCross:
    """f(x, a) = b + x.w + phi_a.v + x' M phi_a + u_a: shared across items through their features.

    phi_a = action_context[a] (item features, e.g. :meth:`recsim_causal.catalog.Catalog.item_features`).
    x and phi are standardized inside; w, v and M carry the L2 penalty ``alpha``, the per-item
    offsets u_a the stronger ``offset_alpha`` (a prior sd of 1/sqrt(offset_alpha) on the logit
    scale for what the features miss): an item logged rarely gets what its features predict,
    not a noisy offset fitted to a few dozen rows. With one-hot action_context this is the
    per-action interaction model.

    Logistic loss by damped Newton (a handful of steps), squared loss in one solve; the
    Hessian's shared block costs O(n p^2) with p = 1 + d + m + d m, the offsets' block O(n p)."""

    def __init__(self, loss: str, alpha: float, ac: np.ndarray, offset_alpha: float):
        self.loss, self.alpha, self.offset_alpha = loss, alpha, offset_alpha
        self.K = ac.shape[0]
        sd = ac.std(axis=0)
        self.phi = (ac - ac.mean(axis=0)) / np.where(sd > 0, sd, 1.0)

    def fit(self, x: np.ndarray, a: np.ndarray, y: np.ndarray, w: np.ndarray) -> _LinearCross:
        n, d = x.shape
        m, K = self.phi.shape[1], self.K
        self.mx = x.mean(axis=0) if n else np.zeros(d)
        sd = x.std(axis=0) if n else np.ones(d)
        self.sx = np.where(sd > 0, sd, 1.0)
        xs = (x - self.mx) / self.sx
        ph = self.phi[a]
        # the shared block [1, x, phi_a, x (x) phi_a]; the offsets u_a enter through a only
        Z = np.concatenate([np.ones((n, 1)), xs, ph, (xs[:, :, None] * ph[:, None, :]).reshape(n, d * m)], axis=1)
        p1 = Z.shape[1]
        penalty = np.r_[0.0, np.full(p1 - 1, self.alpha), np.full(K, self.offset_alpha)]
        order = np.argsort(a, kind="stable")
        starts = np.searchsorted(a[order], np.arange(K))

        def by_action(M: np.ndarray) -> np.ndarray:  # (n, c) -> (K, c): sums over each action's rows
            out = np.add.reduceat(M[order], starts, axis=0) if n else np.zeros((K, M.shape[1]))
            out[np.bincount(a, minlength=K) == 0] = 0.0  # reduceat copies a row for empty groups
            return out

        def eta_of(b: np.ndarray) -> np.ndarray:
            return Z @ b[:p1] + b[p1:][a]

        def grad_hess(b: np.ndarray, g_row: np.ndarray, s_row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            H = np.empty((p1 + K, p1 + K))
            H[:p1, :p1] = Z.T @ (Z * s_row[:, None])
            cross = by_action(Z * s_row[:, None])  # (K, p1)
            H[p1:, :p1], H[:p1, p1:] = cross, cross.T
            H[p1:, p1:] = np.diag(np.bincount(a, weights=s_row, minlength=K))
            return np.r_[Z.T @ g_row, np.bincount(a, weights=g_row, minlength=K)], H

        b = np.zeros(p1 + K)
        wsum = float(w.sum())
        ybar = float(w @ y) / wsum if wsum > 0 else 0.5
        if self.loss == "squared":
            g, H = grad_hess(b, -w * y, w)
            H[np.diag_indices(p1 + K)] += penalty
            b = _solve(H, -g)
        else:
            ybar = min(max(ybar, 1e-6), 1 - 1e-6)
            b[0] = math.log(ybar / (1 - ybar))

            def objective(bb: np.ndarray) -> float:
                eta = eta_of(bb)
                return float(w @ (np.logaddexp(0.0, eta) - y * eta) + 0.5 * (penalty * bb) @ bb)

            def logistic_grad_hess(bb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                mu = _sigmoid(eta_of(bb))
                return grad_hess(bb, w * (mu - y), w * mu * (1 - mu))

            b = _newton(b, objective, logistic_grad_hess, penalty, 1e-8, 50)
        self.b0, self.wx, self.v = b[0], b[1 : 1 + d], b[1 + d : 1 + d + m]
        self.M, self.u = b[1 + d + m : p1].reshape(d, m), b[p1:]
        return self

    def predict_all(self, x: np.ndarray) -> np.ndarray:
        xs = (x - self.mx) / self.sx
        eta = (self.b0 + xs @ self.wx)[:, None] + (xs @ self.M + self.v) @ self.phi.T + self.u[None, :]
        return _sigmoid(eta) if self.loss == "logistic" else eta

    def empty(self, d: int) -> _LinearCross:
        m = self.phi.shape[1]
        self.mx, self.sx, self.wx = np.zeros(d), np.ones(d), np.zeros(d)
        self.b0, self.v, self.M, self.u = np.zeros(()), np.zeros(m), np.zeros((d, m)), np.zeros(self.K)
        return self

    STATE = ("mx", "sx", "b0", "wx", "v", "M", "u")

def _solve(G: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(G, b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(G, b, rcond=None)[0]


def _newton(
    beta: np.ndarray,
    objective: Callable[[np.ndarray], float],
    grad_hess: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    penalty: np.ndarray,
    tol: float,
    max_iter: int,
) -> np.ndarray:
    """Damped Newton minimization of ``objective(b)`` (a smooth loss plus
    ``0.5 * (penalty * b) @ b``) from ``beta``.

    ``grad_hess(b)`` returns the unpenalized loss's gradient and Hessian; the ridge
    terms ``penalty * b`` and ``diag(penalty)`` are added here. Each Newton step is
    halved until the objective does not increase (up to 1e-12 relative) or the step
    factor drops below 1e-8; stops when the step's max-norm is below ``tol``, the
    objective stalls (1e-14 relative), or after ``max_iter`` steps.
    """
    diag = np.diag_indices(beta.shape[0])
    f = objective(beta)
    for _ in range(max_iter):
        grad, H = grad_hess(beta)
        grad = grad + penalty * beta
        H[diag] += penalty
        step = _solve(H, grad)
        t = 1.0
        while True:
            cand = beta - t * step
            f_new = objective(cand)
            if f_new <= f + 1e-12 * abs(f) or t < 1e-8:
                break
            t *= 0.5
        beta, f_old, f = cand, f, f_new
        if np.max(np.abs(t * step)) < tol or abs(f_old - f) <= 1e-14 * max(1.0, abs(f)):
            break
    return beta


# ============================================================================ MLP
class _MLP:
    """A small torch MLP; "concat": g([x, ac[a]]) -> 1, "interaction": g(x) -> K heads."""

    def __init__(self, features: str, ac: np.ndarray, hidden_sizes: tuple[int, ...], n_epochs: int,
                 batch_size: int, learning_rate: float, alpha: float, seed: int | None):  # fmt: skip
        self.features, self.ac = features, ac
        self.hidden_sizes, self.n_epochs = hidden_sizes, n_epochs
        self.batch_size, self.learning_rate, self.alpha, self.seed = batch_size, learning_rate, alpha, seed

    def fit(self, x: np.ndarray, a: np.ndarray, y: np.ndarray, w: np.ndarray) -> _MLP:
        with torch_threads(1):  # tiny layers: intra-op threads only add barrier waits
            return self._fit(x, a, y, w)

    def _fit(self, x: np.ndarray, a: np.ndarray, y: np.ndarray, w: np.ndarray) -> _MLP:
        import torch

        self.binary = bool(np.isin(y, (0.0, 1.0)).all())
        self.mu, self.sd = x.mean(axis=0), x.std(axis=0) + 1e-8
        self._build(x.shape[1])
        seed = 0 if self.seed is None else int(self.seed)
        gen = torch.Generator().manual_seed(seed)
        X = torch.from_numpy((x - self.mu) / self.sd)
        A = torch.from_numpy(a)
        Y = torch.from_numpy(y.astype(np.float64))
        W = torch.from_numpy(w.astype(np.float64))
        AC = torch.from_numpy(self.ac)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.learning_rate, weight_decay=0.0)
        n = x.shape[0]
        wmean = float(W.mean()) if n else 1.0
        for _ in range(self.n_epochs):
            perm = torch.randperm(n, generator=gen)
            for s in range(0, n, self.batch_size):
                idx = perm[s : s + self.batch_size]
                out = self._forward(X[idx], A[idx], AC)
                if self.binary:
                    loss_i = torch.nn.functional.binary_cross_entropy_with_logits(out, Y[idx], reduction="none")
                else:
                    loss_i = 0.5 * (out - Y[idx]) ** 2
                loss = (W[idx] * loss_i).mean() / wmean
                if self.alpha:
                    loss = loss + 0.5 * self.alpha / n * sum((p**2).sum() for p in self.net.parameters())
                opt.zero_grad()
                loss.backward()
                opt.step()
        return self

    def _build(self, d: int) -> None:
        import torch

        in_dim = d + (self.ac.shape[1] if self.features == "concat" else 0)
        out_dim = 1 if self.features == "concat" else self.ac.shape[0]
        with torch.random.fork_rng(devices=[]):  # leave the global torch RNG untouched
            torch.manual_seed(0 if self.seed is None else int(self.seed))
            layers: list[torch.nn.Module] = []
            prev = in_dim
            for h in self.hidden_sizes:
                layers += [torch.nn.Linear(prev, h), torch.nn.ReLU()]
                prev = h
            layers.append(torch.nn.Linear(prev, out_dim))
            self.net = torch.nn.Sequential(*layers).double()

    def empty(self, d: int) -> _MLP:
        self._build(d)
        self.binary, self.mu, self.sd = True, np.zeros(d), np.ones(d)
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        net = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        return {**net, "mu": self.mu, "sd": self.sd, "binary": np.asarray(self.binary)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        import torch

        self.net.load_state_dict({k[4:]: torch.as_tensor(v) for k, v in state.items() if k.startswith("net.")})
        self.mu, self.sd, self.binary = np.asarray(state["mu"]), np.asarray(state["sd"]), bool(state["binary"])

    def _forward(self, X: Any, A: Any, AC: Any) -> Any:
        import torch

        if self.features == "concat":
            return self.net(torch.cat([X, AC[A]], dim=1)).squeeze(1)
        return self.net(X).gather(1, A[:, None]).squeeze(1)

    def predict_all(self, x: np.ndarray) -> np.ndarray:
        import torch

        n, K = x.shape[0], self.ac.shape[0]
        X = torch.from_numpy(np.ascontiguousarray((x - self.mu) / self.sd))
        AC = torch.from_numpy(self.ac)
        out = np.empty((n, K))
        with torch.no_grad():
            for s in range(0, n, 65536):
                Xb = X[s : s + 65536]
                if self.features == "interaction":
                    logits = self.net(Xb)
                else:
                    b = Xb.shape[0]
                    inp = torch.cat([Xb.repeat_interleave(K, 0), AC.repeat(b, 1)], dim=1)
                    logits = self.net(inp).reshape(b, K)
                out[s : s + Xb.shape[0]] = (torch.sigmoid(logits) if self.binary else logits).numpy()
        return out


# ============================================================================ the menu of learners
#: name -> builder(model: RegressionModel) -> a learner with ``fit(x, a, y, w)`` and
#: ``predict_all(x) -> (n, K)``. Extend with :func:`register_reward_model`.
REWARD_MODELS: dict[str, Callable[["RegressionModel"], Any]] = {}


def register_reward_model(name: str) -> Callable:
    """Decorator: ``@register_reward_model("bert")`` adds ``builder(model) -> learner``."""
    def deco(builder: Callable) -> Callable:
        REWARD_MODELS[name] = builder
        return builder
    return deco


@register_reward_model("ridge")
def _ridge(m: "RegressionModel") -> Any:
    if m.features == "concat":
        return _RidgeConcat(float(m.alpha), m.action_context)
    if m.features == "cross":
        return _LinearCross("squared", float(m.alpha), m.action_context, float(m.offset_alpha))
    return _LinearInteraction("squared", float(m.alpha), m.n_actions)


@register_reward_model("logistic")
def _logistic(m: "RegressionModel") -> Any:
    if m.features == "concat":
        from sklearn.linear_model import LogisticRegression

        C = 1.0 / m.alpha if m.alpha > 0 else np.inf
        return _SklearnConcat(LogisticRegression(C=C, tol=1e-8, max_iter=1000), m.action_context)
    if m.features == "cross":
        return _LinearCross("logistic", float(m.alpha), m.action_context, float(m.offset_alpha))
    return _LinearInteraction("logistic", float(m.alpha), m.n_actions)


@register_reward_model("mlp")
def _mlp(m: "RegressionModel") -> Any:
    # an MLP learns the interactions itself: "cross" feeds it [x, action_context[a]] as "concat" does
    return _MLP("concat" if m.features == "cross" else m.features, m.action_context, tuple(m.hidden_sizes), m.n_epochs, m.batch_size, m.learning_rate,
                m.alpha, m.random_state)


def _state_of(learner: Any) -> Any:
    """``learner`` if it can be saved as arrays (``empty`` and ``STATE`` or ``state_dict``), else a one-line error."""
    if not hasattr(learner, "empty"):
        raise ValueError(f"RegressionModel: its {type(learner).__name__} learner has no arrays to save (built-in "
                         f"reward models: {', '.join(REWARD_MODELS)})")
    return learner


def _is_sklearn_model(obj: Any) -> bool:
    return not isinstance(obj, str) and hasattr(obj, "fit") and (hasattr(obj, "predict_proba") or hasattr(obj, "predict"))


# ============================================================================ RegressionModel
@dataclass
class RegressionModel:
    """Cross-fitted reward model qhat(x, a) (OBP's ``RegressionModel``; see module doc).

    Parameters
    ----------
    base_model: a name in :data:`REWARD_MODELS` ("logistic" | "ridge" | "mlp") or a
        scikit-learn classifier / regressor (concat features; see the module doc).
    n_actions: number of actions K.
    len_list: number of positions L (one model per position).
    action_context: (K, dim_action_context) action features; one-hot when None.
    fitting_method: "normal" | "iw" | "mrdr".
    features: "concat" | "interaction".
    alpha: L2 penalty (ridge alpha; 1/C of logistic regression; MLP weight decay scale).
    offset_alpha: "cross" features: the L2 penalty of the per-item offsets.
    hidden_sizes, n_epochs, batch_size, learning_rate: MLP settings.
    random_state: seeds the MLP's initialization and minibatches.
    """

    base_model: Any
    n_actions: int
    len_list: int = 1
    action_context: np.ndarray | None = None
    fitting_method: str = "normal"
    features: str = "concat"
    alpha: float = 1.0
    offset_alpha: float = 10.0
    hidden_sizes: tuple[int, ...] = (64,)
    n_epochs: int = 20
    batch_size: int = 512
    learning_rate: float = 1e-2
    random_state: int | None = 0

    def __post_init__(self) -> None:
        p = "RegressionModel"
        if not (_is_sklearn_model(self.base_model) or (isinstance(self.base_model, str) and self.base_model in REWARD_MODELS)):
            raise ValueError(f"{p}.base_model: expected one of {tuple(REWARD_MODELS)} or a scikit-learn estimator "
                             f"(fit + predict_proba or predict), got {self.base_model!r}")
        if self.features not in FEATURES:
            raise ValueError(f"{p}.features: expected one of {FEATURES}, got {self.features!r}")
        if _is_sklearn_model(self.base_model) and self.features != "concat":
            raise ValueError(f"{p}.features: a scikit-learn base_model uses OBP's 'concat' features, got {self.features!r}")
        if self.fitting_method not in FITTING_METHODS:
            raise ValueError(f"{p}.fitting_method: expected one of {FITTING_METHODS}, got {self.fitting_method!r}")
        for name, low in (("n_actions", 1), ("len_list", 1), ("n_epochs", 1), ("batch_size", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"{p}.{name}: expected an int >= {low}, got {v!r}")
        for name in ("alpha", "offset_alpha"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)):
                raise ValueError(f"{p}.{name}: expected a finite number >= 0, got {v!r}")
        if self.action_context is None:
            self.action_context = np.eye(self.n_actions)
        else:
            self.action_context = as_float_array(self.action_context, f"{p}.action_context")
            if self.action_context.ndim != 2 or self.action_context.shape[0] != self.n_actions:
                raise ValueError(
                    f"{p}.action_context: expected shape ({self.n_actions}, dim), got {self.action_context.shape}"
                )
        self.models_: list[Any] = []

    def _new_learner(self) -> Any:
        if _is_sklearn_model(self.base_model):
            return _SklearnConcat(self.base_model, self.action_context)
        return REWARD_MODELS[self.base_model](self)

    def _check(self, context: Any, action: Any, reward: Any, pscore: Any, position: Any, action_dist: Any) -> tuple:
        x = as_float_array(context, "context")
        if x.ndim != 2:
            raise ValueError(f"context: expected shape (n_rounds, dim_context), got {x.shape}")
        n = x.shape[0]
        a = as_int_array(action, "action")
        y = as_float_array(reward, "reward")
        for name, arr in (("action", a), ("reward", y)):
            if arr.ndim != 1:
                raise ValueError(f"{name}: expected shape (n_rounds,), got {arr.shape}")
            check_rows(arr, name, n, "context")
        check_finite(x, "context")
        check_finite(y, "reward")
        if n and (a.min() < 0 or a.max() >= self.n_actions):
            raise ValueError(f"action: values must be in [0, {self.n_actions}) (n_actions)")
        if isinstance(self.base_model, str) and self.base_model == "logistic" and n and (y.min() < 0 or y.max() > 1):
            raise ValueError(
                f"RegressionModel(base_model='logistic'): rewards must lie in [0, 1], got "
                f"[{y.min():.6g}, {y.max():.6g}]; use base_model='ridge'"
            )
        ps = np.full(n, 1.0 / self.n_actions) if pscore is None else as_float_array(pscore, "pscore")
        check_rows(ps, "pscore", n, "context")
        if n and not ps.min() > 0:
            raise ValueError("pscore must be positive")
        if position is None or self.len_list == 1:
            pos = np.zeros(n, dtype=np.int64)
        else:
            pos = as_int_array(position, "position")
            check_rows(pos, "position", n, "context")
            if n and (pos.min() < 0 or pos.max() >= self.len_list):
                raise ValueError(f"position: values must be in [0, {self.len_list}) (len_list)")
        dist = None
        if self.fitting_method != "normal":
            if action_dist is None:
                raise ValueError(f"fitting_method={self.fitting_method!r} needs action_dist (the target policy)")
            dist = as_float_array(action_dist, "action_dist")
            if dist.ndim == 2:
                dist = dist[:, :, None]
            if dist.shape != (n, self.n_actions, self.len_list):
                raise ValueError(
                    f"action_dist: expected shape ({n}, {self.n_actions}, {self.len_list}), got {dist.shape}"
                )
        return x, a, y, ps, pos, dist

    def _weights(self, a: np.ndarray, ps: np.ndarray, pos: np.ndarray, dist: np.ndarray | None) -> np.ndarray:
        if self.fitting_method == "normal":
            return np.ones(a.shape[0])
        pi_e = dist[np.arange(a.shape[0]), a, pos]
        if self.fitting_method == "iw":
            return pi_e / ps
        return pi_e * (1.0 - ps) / ps**2

    def _fit(self, x: np.ndarray, a: np.ndarray, y: np.ndarray, w: np.ndarray, pos: np.ndarray) -> None:
        self.models_ = []
        for l in range(self.len_list):
            idx = pos == l
            if not idx.any():
                raise ValueError(f"RegressionModel: no training rounds at position {l}")
            self.models_.append(self._new_learner().fit(x[idx], a[idx], y[idx], w[idx]))

    def fit(self, context: Any, action: Any, reward: Any, pscore: Any = None, position: Any = None,
            action_dist: Any = None) -> RegressionModel:  # fmt: skip
        """Fit one model per position on the logged data."""
        x, a, y, ps, pos, dist = self._check(context, action, reward, pscore, position, action_dist)
        self._fit(x, a, y, self._weights(a, ps, pos, dist), pos)
        return self

    def predict(self, context: Any) -> np.ndarray:
        """qhat for every action and position: (n_rounds, n_actions, len_list)."""
        if not self.models_:
            raise RuntimeError("RegressionModel.predict: call fit first")
        x = as_float_array(context, "context")
        return np.stack([m.predict_all(x) for m in self.models_], axis=2)

    # ---- persistence (the built-in base models; a scikit-learn one is saved with its own tools)
    def config(self) -> dict[str, Any]:
        """The constructor arguments as JSON values: ``RegressionModel(**config())`` rebuilds it unfitted."""
        if not isinstance(self.base_model, str):
            raise ValueError(f"RegressionModel: a scikit-learn base_model ({type(self.base_model).__name__}) has no "
                             "arrays to save; save it with joblib, or use one of " + ", ".join(REWARD_MODELS))
        return {"base_model": self.base_model, "n_actions": self.n_actions, "len_list": self.len_list,
                "action_context": np.asarray(self.action_context).tolist(), "fitting_method": self.fitting_method,
                "features": self.features, "alpha": self.alpha, "offset_alpha": self.offset_alpha,
                "hidden_sizes": list(self.hidden_sizes), "n_epochs": self.n_epochs, "batch_size": self.batch_size,
                "learning_rate": self.learning_rate, "random_state": self.random_state}  # fmt: skip

    def empty(self, dim_context: int) -> RegressionModel:
        """Zero parameters of the fitted shapes for ``dim_context`` features, one model per
        position: the frame :meth:`load_state_dict` fills."""
        self.models_ = [_state_of(self._new_learner()).empty(int(dim_context)) for _ in range(self.len_list)]
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        """The fitted parameters as named arrays (``"<position>.<name>"``)."""
        if not self.models_:
            raise RuntimeError("RegressionModel.state_dict: call fit first")
        out = {}
        for pos, m in enumerate(self.models_):
            learner = _state_of(m)
            state = learner.state_dict() if hasattr(learner, "state_dict") else {k: np.asarray(getattr(learner, k))
                                                                                  for k in learner.STATE}
            out.update({f"{pos}.{k}": v for k, v in state.items()})
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict` into a model prepared by :meth:`empty`."""
        for pos, m in enumerate(self.models_):
            part = {k.split(".", 1)[1]: v for k, v in state.items() if k.split(".", 1)[0] == str(pos)}
            if hasattr(m, "load_state_dict"):
                m.load_state_dict(part)
            else:
                for k in m.STATE:
                    setattr(m, k, np.asarray(part[k], dtype=np.float64))

    def fit_predict(self, context: Any, action: Any, reward: Any, pscore: Any = None, position: Any = None,
                    action_dist: Any = None, n_folds: int = 1, random_state: Any = None,
                    groups: Any = None) -> np.ndarray:  # fmt: skip
        """Fit and predict on the same rounds; with n_folds > 1, by cross-fitting (each
        round's qhat comes from a model that did not see it; ``groups``: rows sharing a label
        share a fold, see ``kfold_indices``). Returns (n, K, len_list)."""
        x, a, y, ps, pos, dist = self._check(context, action, reward, pscore, position, action_dist)
        w = self._weights(a, ps, pos, dist)
        if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 1:
            raise ValueError(f"n_folds: expected an int >= 1, got {n_folds!r}")
        if n_folds == 1:
            self._fit(x, a, y, w, pos)
            return self.predict(x)
        out = np.empty((x.shape[0], self.n_actions, self.len_list))
        for train, test in kfold_indices(x.shape[0], int(n_folds), random_state, groups):
            self._fit(x[train], a[train], y[train], w[train], pos[train])
            out[test] = self.predict(x[test])
        return out


def fit_predict(
    context: Any,
    action: Any,
    reward: Any,
    n_actions: int,
    *,
    action_context: Any = None,
    base_model: Any = "logistic",
    features: str = "concat",
    n_folds: int = 2,
    random_state: Any = 0,
    position: Any = None,
    len_list: int | None = None,
    pscore: Any = None,
    action_dist: Any = None,
    fitting_method: str = "normal",
    groups: Any = None,
    **model_kw: Any,
) -> np.ndarray:
    """Cross-fitted qhat(x_i, a) for every logged round and action: (n, K, len_list).

    A one-call front to :class:`RegressionModel` with cross-fitting on by default
    (``n_folds=2``). ``len_list`` defaults to max(position) + 1.
    """
    if len_list is None:
        len_list = 1 if position is None else int(np.max(position)) + 1
    model = RegressionModel(
        base_model=base_model,
        n_actions=n_actions,
        len_list=len_list,
        action_context=action_context,
        fitting_method=fitting_method,
        features=features,
        **model_kw,
    )
    return model.fit_predict(
        context, action, reward, pscore=pscore, position=position, action_dist=action_dist,
        n_folds=n_folds, random_state=random_state, groups=groups,
    )  # fmt: skip


def reward_model_features(features: str, world: Any) -> tuple[str, np.ndarray | None]:
    """The reward model's ``features`` and the action context they read: "cross" shares across
    items through the ``world``'s item features (``Catalog.item_features``); without a world
    (external data: no item features) it falls back to the per-action "interaction" model."""
    if features != "cross":
        return features, None
    if world is None:
        return "interaction", None
    return "cross", world.catalog.item_features()
