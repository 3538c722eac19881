"""Exact propensities in confounded logs: P(a | x) = E_s[pi_b(a | x, s) | x].

A confounded logger acts on the logged context x *and* a privileged signal s that the log
does not keep. The best pscore a log without s allows is the integral of the logger's
distribution over the signal's distribution given x. Here s is one-dimensional and
independent of the logged context (the SCM says so, :func:`signal_quantile`), so

    P(a | x) = int_0^1 pi_b(a | x, Q(u)) du,        Q the signal's quantile function,

computed on a grid in u (:func:`marginal_action_probs`) in one of two ways:

* a logger that acts on the argmax of scores that are convex in s (LinUCB: linear plus a
  norm; linear epsilon-greedy; it says so with ``scores_with_slope(contexts, column)``) is
  piecewise constant in s. A score's slope inside a cell [s_l, s_r] lies between its slopes
  at the ends (convexity), so the gap g_c = score_A - score_c between the ends' common argmax
  A and any other action c has a slope in [lo, hi] = [A'(s_l) - c'(s_r), A'(s_r) - c'(s_l)],
  and g_c >= max(g_c(s_l) + lo (s - s_l), g_c(s_r) - hi (s_r - s)) inside. The cell is
  *certified* constant when that lower bound stays > 0 for every c; its integral is then
  exact. The others are cut in ``refine``, ``levels`` times over, and what is left
  uncertified adds its width in u to the error bound (a probability moves by at most 1 in
  it). A narrow band where another action wins, with the same argmax at both ends of a cell,
  fails the certificate and is found, so the bound holds (plus the 2e-7 of mass beyond the
  grid);
* any other logger: the trapezoid rule, refined where the integrand jumps by more than
  ``jump`` between neighbouring nodes. The error of a jump of size d left in a cell of width
  h is at most d h / 2, and the sum over the jumps still unresolved is returned as the
  error bound; the smooth part (converging as h^2) and jumps hidden between two nodes that
  agree are not in it.

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
        ``(probs (n, K), error_bound (n,))``: the bound on max_a |error| (see the module
        doc: a guarantee for loggers with ``argmax_score_slope``).
    """
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    u0 = np.linspace(_U_EDGE, 1.0 - _U_EDGE, n_grid + 1)
    s0 = quantile(u0)
    if callable(getattr(policy, "scores_with_slope", None)):
        parts = [_certified_quadrature(policy, x[i : i + _CERTIFIED_ROWS], quantile, u0, s0, refine, levels)
                 for i in range(0, n, _CERTIFIED_ROWS)]
        if not parts:
            return np.empty((0, policy.n_actions)), np.empty(0)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
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


_CERTIFIED_ROWS = 256


def _certified(left: tuple[np.ndarray, np.ndarray], right: tuple[np.ndarray, np.ndarray], ds: np.ndarray) -> np.ndarray:
    """(c,) True where a cell, with (scores, slopes) (c, K) at its ends ``ds`` (c,) apart in the
    signal, keeps one argmax throughout (module doc)."""
    (gl, dl), (gr, dr) = left, right
    a = gl.argmax(axis=1)
    idx = np.arange(len(a))
    ok = a == gr.argmax(axis=1)
    g_l = gl[idx, a][:, None] - gl
    lo = dl[idx, a][:, None] - dr  # the gap's slope is in [lo, hi] inside the cell
    quick = g_l + np.minimum(lo, 0.0) * ds[:, None]  # the line from the left end alone
    quick[idx, a] = np.inf
    ok &= quick.min(axis=1) > 0
    hard = np.flatnonzero((a == gr.argmax(axis=1)) & ~ok)
    if hard.size:  # both lines: the lower bound at the point where they meet
        a, i = a[hard], np.arange(hard.size)
        g_l, lo = g_l[hard], lo[hard]
        g_r = gr[hard, a][:, None] - gr[hard]
        hi = dr[hard, a][:, None] - dl[hard]
        d = ds[hard, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.clip((g_l - g_r + hi * d) / (hi - lo), 0.0, d)
        t = np.where(np.isfinite(t), t, 0.0)
        low = np.maximum(g_l + lo * t, g_r - hi * (d - t))
        low[i, a] = np.inf
        ok[hard] = low.min(axis=1) > 0
    return ok


def _certified_quadrature(policy: Any, xb: np.ndarray, quantile: Callable, u0: np.ndarray, s0: np.ndarray,
                          refine: int, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """P(a | x) for a block of rows of an argmax logger, with its guaranteed bound (module doc)."""
    b, g = xb.shape[0], len(u0) - 1
    sc, sl_ = _scores_at(policy, xb, np.broadcast_to(s0, (b, g + 1)))  # (b, g + 1, K) each
    K = sc.shape[2]
    integral, bound = np.zeros((b, K)), np.zeros(b)
    rows = np.repeat(np.arange(b), g)
    lu, w = np.tile(u0[:-1], b), np.tile(np.diff(u0), b)
    s_l, s_r = np.tile(s0[:-1], b), np.tile(s0[1:], b)
    left = (sc[:, :-1].reshape(-1, K), sl_[:, :-1].reshape(-1, K))
    right = (sc[:, 1:].reshape(-1, K), sl_[:, 1:].reshape(-1, K))
    t = np.arange(1, refine) / refine
    for level in range(levels + 1):
        ok = _certified(left, right, s_r - s_l)
        _scatter_add(integral, rows[ok], w[ok, None] * policy.probs_from_scores(left[0][ok]))
        rest = ~ok
        rows, lu, w, s_l, s_r = (v[rest] for v in (rows, lu, w, s_l, s_r))
        left, right = (left[0][rest], left[1][rest]), (right[0][rest], right[1][rest])
        if rows.size == 0:
            break
        if level == levels:  # what is left: the trapezoid, and its width in the bound
            both = policy.probs_from_scores(left[0]) + policy.probs_from_scores(right[0])
            _scatter_add(integral, rows, 0.5 * w[:, None] * both)
            bound += np.bincount(rows, weights=w, minlength=b)
            break
        u = lu[:, None] + w[:, None] * t[None, :]  # (c, refine - 1) interior nodes
        s_in = quantile(u.ravel()).reshape(u.shape)
        inner = _scores_at(policy, xb[rows], s_in)
        u_nodes = np.concatenate([lu[:, None], u, (lu + w)[:, None]], axis=1)
        s_nodes = np.concatenate([s_l[:, None], s_in, s_r[:, None]], axis=1)
        nodes = [np.concatenate([e[0][:, None], i, e[1][:, None]], axis=1)  # (c, refine + 1, K)
                 for e, i in zip(zip(left, right), inner)]
        rows = np.repeat(rows, refine)
        lu, w = u_nodes[:, :-1].ravel(), np.diff(u_nodes, axis=1).ravel()
        s_l, s_r = s_nodes[:, :-1].ravel(), s_nodes[:, 1:].ravel()
        left = tuple(v[:, :-1].reshape(-1, K) for v in nodes)
        right = tuple(v[:, 1:].reshape(-1, K) for v in nodes)
    total = integral.sum(axis=1, keepdims=True)  # the grid covers [edge, 1 - edge]
    # the 2 * edge of mass beyond the grid moves a renormalized probability by at most 2 * edge
    return integral / total, bound / total[:, 0] + 2 * _U_EDGE


def _scores_at(policy: Any, x: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scores and their slopes in the signal at [x_i, s_ij] for rows x (b, d) and signals s (b, m):
    (b, m, K) each."""
    b, m = s.shape
    ctx = np.concatenate([np.repeat(x, m, axis=0), s.reshape(b * m, 1)], axis=1)
    scores, slopes = policy.scores_with_slope(ctx, x.shape[1])
    return np.asarray(scores, np.float64).reshape(b, m, -1), np.asarray(slopes, np.float64).reshape(b, m, -1)


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
