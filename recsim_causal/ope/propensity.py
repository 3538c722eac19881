"""Exact propensities in confounded logs: P(a | x) = E_s[pi_b(a | x, s) | x].

A confounded logger acts on the logged context x *and* a privileged signal s that the log
does not keep. The best pscore a log without s allows is the integral of the logger's
distribution over the signal's distribution given x. Here s is one-dimensional and
independent of the logged context (the SCM says so, :func:`signal_quantile`), so

    P(a | x) = int_0^1 pi_b(a | x, Q(u)) du,        Q the signal's quantile function,

computed by the trapezoid rule on a grid in u, refined where the integrand jumps
(:func:`marginal_action_probs`): a deterministic logger (LinUCB's argmax) switches action at
a few values of s, and each switch is localized by ``levels`` rounds of ``refine``-fold
subdivision of the grid cell that holds it. The error of a jump of size d left in a cell of
width h is at most d h / 2; the sum over the jumps still unresolved is returned as the
error bound (the smooth part of the integrand converges as h^2 and is not in the bound).

Where the signal is a linear-Gaussian function of exogenous normal nodes Q is closed form;
otherwise it is the empirical quantile function of ``2**18`` draws of the signal.
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = ["signal_quantile", "marginal_action_probs"]

_U_EDGE = 1e-7  # the grid runs over [edge, 1 - edge]: the tails beyond carry 2e-7 of the mass


def _ancestors(mech: dict, names: list[str]) -> set[str]:
    out, todo = set(names), list(names)
    while todo:
        for p in mech[todo.pop()].parents:
            if p not in out:
                out.add(p)
                todo.append(p)
    return out


def _gaussian_form(mech: dict, name: str) -> tuple[float, dict[str, float]] | None:
    """(mean, {exogenous source: coefficient}) of a scalar linear-Gaussian node, else None."""
    from recsim_causal.scm.mechanisms import Linear, Normal

    m = mech[name]
    if getattr(m, "dim", 1) != 1:
        return None
    if isinstance(m, Normal):
        return m.loc, {name: m.scale}
    if isinstance(m, Linear) and all(isinstance(w, float) for w in m.W.values()):
        mean, coefs = m.bias, {f"{name}#noise": m.noise} if m.noise else {}
        for p, w in m.W.items():
            form = _gaussian_form(mech, p)
            if form is None:
                return None
            mean += w * form[0]
            for k, c in form[1].items():
                coefs[k] = coefs.get(k, 0.0) + w * c
        return mean, coefs
    return None


def signal_quantile(world: Any, rng: np.random.Generator | None = None) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """The quantile function of the world's privileged signal, and how it was obtained.

    Requires one privileged column whose causes are disjoint from the logged (observed)
    nodes' causes, so that the signal is independent of the logged context.
    Returns ``(Q, "closed form gaussian" | "empirical quantiles of 262144 draws")``.
    """
    names = list(world.privileged)
    dim = sum(world.mech[n].dim for n in names)
    if dim != 1:
        raise ValueError(f"scm.privileged: exact propensities integrate over a one-dimensional signal, got {dim} "
                         f"columns ({', '.join(names)})")
    shared = _ancestors(world.mech, names) & _ancestors(world.mech, list(world.observed))
    if shared:
        raise ValueError(f"scm.privileged: '{names[0]}' shares causes with the logged context ({', '.join(sorted(shared))}); "
                         "exact propensities need a signal independent of the logged context")
    form = _gaussian_form(world.mech, names[0])
    if form is not None:
        mean, coefs = form
        sd = float(np.sqrt(sum(c * c for c in coefs.values())))
        if sd == 0:
            return (lambda u: np.full(np.shape(u), mean)), "closed form (constant)"
        return (lambda u: mean + sd * _ndtri(u)), f"closed form gaussian (mean {mean:.4g}, sd {sd:.4g})"
    n_draws = 1 << 18
    users = world.sample_users(n_draws, rng if rng is not None else np.random.default_rng(0x5161))
    draws = np.sort(np.asarray(users.values[names[0]], np.float64).reshape(-1))
    return (lambda u: np.quantile(draws, u)), f"empirical quantiles of {n_draws} draws"


def _ndtri(u: Any) -> np.ndarray:
    """The standard normal quantile function, elementwise."""
    try:
        from scipy.special import ndtri
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        return np.vectorize(NormalDist().inv_cdf, otypes=[np.float64])(u)
    return ndtri(np.asarray(u, np.float64))


def _trapezoid(f_left: np.ndarray, f_right: np.ndarray, h: np.ndarray) -> np.ndarray:
    return 0.5 * (f_left + f_right) * h[..., None]


def marginal_action_probs(
    policy: Any,
    x: np.ndarray,
    quantile: Callable[[np.ndarray], np.ndarray],
    *,
    n_grid: int = 64,
    refine: int = 8,
    levels: int = 4,
    jump: float = 0.02,
    batch_rows: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """P(a | x) = E_s[pi(a | [x, s])] for a one-dimensional signal s appended as the last column.

    Args:
        policy: anything with ``action_probs(contexts (m, d + 1)) -> (m, K)``.
        x: (n, d) logged contexts.
        quantile: the signal's quantile function (:func:`signal_quantile`).
        n_grid: cells of the initial grid in u (n_grid + 1 nodes).
        refine, levels: a cell whose end nodes differ by more than ``jump`` (max over
            actions) gets ``refine - 1`` interior nodes, ``levels`` times over.
    Returns:
        ``(probs (n, K), error_bound (n,))``: the bound on max_a |error| from the jumps
        still unresolved after refinement (see the module doc).
    """
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    u0 = np.linspace(_U_EDGE, 1.0 - _U_EDGE, n_grid + 1)
    s0 = quantile(u0)
    out, bound = None, np.zeros(n)
    for start in range(0, n, batch_rows):
        xb = x[start : start + batch_rows]
        b = xb.shape[0]
        f = _probs_at(policy, xb, np.broadcast_to(s0, (b, n_grid + 1)))  # (b, G+1, K)
        if out is None:
            out = np.empty((n, f.shape[2]))
        h = np.full((b, n_grid), u0[1] - u0[0])
        integral = h[:, :1] * (f.sum(axis=1) - 0.5 * (f[:, 0] + f[:, -1]))  # the trapezoid rule
        # cells to refine: (row, left u, width, f_left, f_right)
        d = np.abs(f[:, 1:] - f[:, :-1]).max(axis=2)
        rows, cells = np.nonzero(d > jump)
        lu, w = u0[cells], h[rows, cells]
        fl, fr = f[rows, cells], f[rows, cells + 1]
        for _ in range(levels):
            if rows.size == 0:
                break
            _scatter_add(integral, rows, -_trapezoid(fl, fr, w))
            t = np.arange(1, refine) / refine
            u = lu[:, None] + w[:, None] * t[None, :]  # (c, refine - 1) interior nodes
            fi = _probs_at(policy, xb[rows], quantile(u.ravel()).reshape(u.shape))
            nodes = np.concatenate([fl[:, None], fi, fr[:, None]], axis=1)  # (c, refine + 1, K)
            sub_w = w / refine
            _scatter_add(integral, rows, _trapezoid(nodes[:, :-1], nodes[:, 1:], np.repeat(sub_w[:, None], refine, 1)).sum(axis=1))
            dd = np.abs(nodes[:, 1:] - nodes[:, :-1]).max(axis=2)
            c, k = np.nonzero(dd > jump)
            rows, lu, w = rows[c], lu[c] + sub_w[c] * k, sub_w[c]
            fl, fr = nodes[c, k], nodes[c, k + 1]
        if rows.size:
            np.add.at(bound[start : start + b], rows, 0.5 * np.abs(fr - fl).max(axis=1) * w)
        total = integral.sum(axis=1, keepdims=True)  # the grid covers [edge, 1 - edge]
        out[start : start + b] = integral / total
    return out, bound


def _scatter_add(target: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
    """target[rows] += values with repeated rows summed (np.add.at, column by column: faster)."""
    for k in range(target.shape[1]):
        target[:, k] += np.bincount(rows, weights=values[:, k], minlength=target.shape[0])


def _probs_at(policy: Any, x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """pi(. | [x_i, s_ij]) for rows x (b, d) and signals s (b, m): (b, m, K)."""
    b, m = s.shape
    ctx = np.concatenate([np.repeat(x, m, axis=0), s.reshape(b * m, 1)], axis=1)
    p = np.asarray(policy.action_probs(ctx), np.float64)
    return p.reshape(b, m, -1)
