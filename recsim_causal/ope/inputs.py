"""The per-round vectors every OPE estimator is a formula of, and the dense -> light reduction.

Every estimator in :mod:`recsim_causal.ope.estimators` is a function of a handful of (n,)
vectors, never of the full (n, K) arrays:

    reward         r_i
    pscore         pi_b(a_i | x_i)
    target_pscore  pi_e(a_i | x_i, pos_i)               -> w_i = target_pscore / pscore
    target_q       sum_a pi_e(a | x_i) qhat(x_i, a)      (DM term)
    q_at_action    qhat(x_i, a_i)                        (DR control variate)
    embed_pscore / embed_target_pscore   p(e_i | x_i, pi_b), p(e_i | x_i, pi_e)   (MIPS)
    context_weight w(x_i) = p_target(x_i) / p_log(x_i)   (optional: a covariate shift)

:class:`LightInputs` holds them (O(n) memory: logs far larger than n x K fit).
:func:`reduce_dense` turns OBP's dense arrays (``action_dist`` (n, K[, L]),
``estimated_rewards_by_reg_model``) into a LightInputs in one chunked, threaded pass,
validating as it goes. The dense OBP-compatible API and the light API therefore run the
same formula code, so they agree by construction.

:class:`RoundTerms` is what a formula returns: V = mean(base + num / mean(den)), with
``base`` and ``den`` optional. Plain estimators are a mean of one vector; self-normalized
ones are ratios, which the bootstrap resamples as ratios.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ..data.checks import as_float_array, as_int_array, check_finite, check_rows

__all__ = [
    "LightInputs",
    "RoundTerms",
    "SupportViolationWarning",
    "reduce_dense",
    "n_threads",
]

# allclose(sum, 1) as OBP's check_ope_inputs does: |s - 1| <= atol + rtol * 1
_SUM_ATOL = 1e-8
_SUM_RTOL = 1e-5
_CHUNK_BYTES = 1 << 22  # ~4 MB of one dense array per chunk: stays in cache across the ops
_THREAD_MIN_ELEMENTS = 1 << 21


class SupportViolationWarning(UserWarning):
    """The target policy puts mass on actions the logger never takes (pi_b(a|x) = 0).

    IPS-type estimators are biased there. Turn it into an error with
    ``warnings.filterwarnings("error", category=SupportViolationWarning)``.
    """


def n_threads() -> int:
    """Worker threads for the chunked passes: the CPUs this process may use (at most 8)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def _warn_outside(message: str, category: type[Warning]) -> None:
    """warnings.warn attributed to the first caller outside recsim_causal.ope."""
    here = os.path.dirname(os.path.abspath(__file__))
    level, frame = 1, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(here):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


# --------------------------------------------------------------------------- RoundTerms
@dataclass(frozen=True, eq=False)
class RoundTerms:
    """V = mean(base + num / mean(den)). ``base`` None means 0; ``den`` None means 1.

    ``round_rewards()`` is OBP's ``_estimate_round_rewards`` (the denominator's mean taken
    over the whole sample) and its mean is the estimate, computed with the same arithmetic
    as OBP so the numbers agree.
    """

    base: np.ndarray | None = None
    num: np.ndarray | None = None
    den: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.base is None and self.num is None:
            raise ValueError("RoundTerms: needs base or num")
        if self.den is not None and self.num is None:
            raise ValueError("RoundTerms: den without num")

    @property
    def n_rounds(self) -> int:
        ref = self.num if self.num is not None else self.base
        return int(ref.shape[0])

    @property
    def is_ratio(self) -> bool:
        return self.den is not None

    def round_rewards(self) -> np.ndarray:
        """Per-round contributions whose mean is the estimate (OBP semantics)."""
        if self.den is None:
            if self.num is None:
                return self.base
            return self.num if self.base is None else self.base + self.num
        r = self.num / self.den.mean()
        return r if self.base is None else self.base + r

    def value(self) -> float:
        """The estimate V."""
        if self.n_rounds == 0:
            raise ValueError("cannot estimate a policy value from 0 rounds")
        return float(self.round_rewards().mean())

    def influence(self) -> np.ndarray:
        """First-order (delta-method) terms psi_i: mean(psi) = V, std(psi)/sqrt(n) = s.e.

        For a ratio mean(num)/mean(den) the linearization is
        psi_i = R + (num_i - R den_i) / mean(den) with R = mean(num) / mean(den).
        """
        if self.den is None:
            return self.round_rewards()
        md = self.den.mean()
        ratio = self.num.mean() / md
        psi = (self.num - ratio * self.den) / md + ratio
        return psi if self.base is None else self.base + psi

    def weighted(self, context_weight: np.ndarray) -> RoundTerms:
        """The terms of the same formula with round i weighted by ``context_weight[i]``: the
        value under the context distribution the weights point to (a covariate shift,
        ``w(x) = p_target(x) / p_log(x)``). A ratio keeps its shape: mean(w num) / mean(w den)."""
        w = np.asarray(context_weight, dtype=np.float64)
        return RoundTerms(*(None if v is None else w * v for v in (self.base, self.num, self.den)))

    def bootstrap_vectors(self) -> list[np.ndarray]:
        """The vectors whose resampled sums determine a resampled estimate."""
        if self.den is None:
            return [self.round_rewards()]
        vs = [self.num, self.den]
        return vs if self.base is None else [self.base, *vs]

    def from_sums(self, sums: np.ndarray, n: int) -> np.ndarray:
        """Estimates from resampled sums (shape (B, len(bootstrap_vectors())))."""
        if self.den is None:
            return sums[:, 0] / n
        if self.base is None:
            return sums[:, 0] / sums[:, 1]
        return sums[:, 0] / n + sums[:, 1] / sums[:, 2]


# --------------------------------------------------------------------------- LightInputs
_LIGHT_FIELDS = (
    "reward",
    "pscore",
    "target_pscore",
    "target_q",
    "q_at_action",
    "estimated_pscore",
    "embed_pscore",
    "embed_target_pscore",
    "unsupported_mass",
    "context_weight",
)
_POSITIVE = ("pscore", "estimated_pscore", "embed_pscore")
_NONNEGATIVE = ("target_pscore", "embed_target_pscore", "unsupported_mass", "context_weight")
_PROBABILITIES = ("pscore", "target_pscore", "estimated_pscore", "embed_pscore", "embed_target_pscore")
# where each light vector comes from in the dense (OBP) API, for error messages
DENSE_SOURCE = {
    "reward": "reward",
    "pscore": "pscore",
    "target_pscore": "action and action_dist",
    "target_q": "action_dist and estimated_rewards_by_reg_model",
    "q_at_action": "action and estimated_rewards_by_reg_model",
    "estimated_pscore": "estimated_pscore",
    "embed_pscore": "action_embed, pi_b and p_e_a",
    "embed_target_pscore": "action_embed, action_dist and p_e_a",
    "context_weight": "context_weight",
}


@dataclass(eq=False)
class LightInputs:
    """Per-round (n,) vectors for OPE; O(n) memory. All optional; each estimator says
    which it needs.

    Parameters
    ----------
    reward: r_i.
    pscore: pi_b(a_i | x_i) > 0.
    target_pscore: pi_e(a_i | x_i) (at the logged position) >= 0.
    target_q: sum_a pi_e(a | x_i) qhat(x_i, a).
    q_at_action: qhat(x_i, a_i).
    estimated_pscore: an estimate of pi_b(a_i | x_i) > 0 (``use_estimated_pscore=True``).
    embed_pscore: p(e_i | x_i, pi_b) = sum_a pi_b(a|x_i) p(e_i|a) > 0 (MIPS).
    embed_target_pscore: p(e_i | x_i, pi_e) (MIPS).
    unsupported_mass: sum_a pi_e(a | x_i) 1{pi_b(a | x_i) = 0}; if any is positive a
        :class:`SupportViolationWarning` reports the share of target mass affected.
    context_weight: w(x_i) >= 0, a density ratio p_target(x) / p_log(x) of the contexts
        (:mod:`recsim_causal.ope.shift`); every estimator then weights round i by it
        (:meth:`RoundTerms.weighted`) and estimates the value under the target contexts.
    """

    reward: np.ndarray | None = None
    pscore: np.ndarray | None = None
    target_pscore: np.ndarray | None = None
    target_q: np.ndarray | None = None
    q_at_action: np.ndarray | None = None
    estimated_pscore: np.ndarray | None = None
    embed_pscore: np.ndarray | None = None
    embed_target_pscore: np.ndarray | None = None
    unsupported_mass: np.ndarray | None = None
    context_weight: np.ndarray | None = None

    def __post_init__(self) -> None:
        ref_name, n = None, None
        for name in _LIGHT_FIELDS:
            x = getattr(self, name)
            if x is None:
                continue
            x = as_float_array(x, name)
            if x.ndim != 1:
                raise ValueError(f"{name}: expected shape (n_rounds,), got {x.shape}")
            if ref_name is None:
                ref_name, n = name, x.shape[0]
            else:
                check_rows(x, name, n, ref_name)
            check_finite(x, name)
            if name in _POSITIVE and n and not (x.min() > 0):
                k = int(np.count_nonzero(~(x > 0)))
                raise ValueError(
                    f"{name} must be positive; {k} of {n} rows are <= 0 (min {x.min():.6g})"
                )
            if name in _NONNEGATIVE and n and x.min() < 0:
                k = int(np.count_nonzero(x < 0))
                raise ValueError(f"{name} must be >= 0; {k} of {n} rows are negative")
            if name in _PROBABILITIES and n and x.max() > 1.0 + 1e-9:
                k = int(np.count_nonzero(x > 1.0 + 1e-9))
                raise ValueError(f"{name} must be a probability <= 1; {k} of {n} rows are above 1 (max {x.max():.6g})")
            setattr(self, name, x)
        if ref_name is None:
            raise ValueError("LightInputs: no arrays given")
        self._n = n
        self._cache: dict[str, np.ndarray] = {}
        if self.unsupported_mass is not None:
            affected = int(np.count_nonzero(self.unsupported_mass > 0))
            if affected:
                share = float(self.unsupported_mass.mean())
                _warn_outside(
                    f"support violation: target puts {share:.1%} of its mass where the "
                    f"logger's pscore is 0 ({affected} of {n} rounds); IPS-type estimates "
                    "ignore that mass",
                    SupportViolationWarning,
                )

    @property
    def n_rounds(self) -> int:
        return int(self._n)

    def require(self, names: tuple[str, ...], who: str) -> None:
        """Raise a ValueError naming what ``who`` needs and is missing."""
        missing = [k for k in names if getattr(self, k) is None]
        if missing:
            dense = sorted({DENSE_SOURCE.get(k, k) for k in missing})
            raise ValueError(
                f"{who} needs {', '.join(missing)} (dense API: pass {'; '.join(dense)})"
            )

    def cached(self, key: str, make: Callable[[], np.ndarray]) -> np.ndarray:
        """Memoize a derived vector (importance weights, residuals) across estimators."""
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = make()
        return out

    def iw(self, use_estimated_pscore: bool = False) -> np.ndarray:
        """w_i = pi_e(a_i|x_i) / pi_b(a_i|x_i) (or / estimated pscore)."""
        if use_estimated_pscore:
            return self.cached("iw_est", lambda: self.target_pscore / self.estimated_pscore)
        return self.cached("iw", lambda: self.target_pscore / self.pscore)

    def residual(self) -> np.ndarray:
        """r_i - qhat(x_i, a_i)."""
        return self.cached("resid", lambda: self.reward - self.q_at_action)

    @classmethod
    def from_kwargs(cls, arrays: dict[str, Any]) -> LightInputs:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(arrays) - known)
        if unknown:
            raise TypeError(f"LightInputs: unexpected arrays {unknown} (known: {sorted(known)})")
        return cls(**arrays)


# --------------------------------------------------------------------------- dense -> light
def _as_3d(x: Any, name: str) -> np.ndarray:
    arr = as_float_array(x, name)
    if arr.ndim == 2:
        return arr[:, :, np.newaxis]
    if arr.ndim != 3:
        raise ValueError(
            f"{name}: expected shape (n_rounds, n_actions) or (n_rounds, n_actions, len_list), "
            f"got {arr.shape}"
        )
    return arr


def _map_chunks(fn: Callable[[int, int], dict], n: int, rows_per_chunk: int, threads: int) -> list:
    bounds = [(s, min(s + rows_per_chunk, n)) for s in range(0, n, rows_per_chunk)]
    if threads <= 1 or len(bounds) <= 1:
        return [fn(s, e) for s, e in bounds]
    with ThreadPoolExecutor(max_workers=threads) as ex:
        return list(ex.map(lambda b: fn(*b), bounds))


def _check_distribution(name: str, sums: np.ndarray, minimum: float, arr: np.ndarray) -> None:
    if not np.isfinite(sums).all():
        check_finite(arr, name)  # raises with the count
    if minimum < 0:
        raise ValueError(f"{name}: probabilities must be >= 0 (min {minimum:.6g})")
    off = np.abs(sums - 1.0) > _SUM_ATOL + _SUM_RTOL
    if off.any():
        rows = off.reshape(off.shape[0], -1).any(axis=1)
        i = int(np.argmax(rows))
        raise ValueError(
            f"{name}: each row must sum to 1 over actions; {int(rows.sum())} of "
            f"{rows.shape[0]} rows do not (row {i} sums to {np.ravel(sums[i])[0]:.6g})"
        )


def reduce_dense(
    *,
    action_dist: Any,
    reward: Any = None,
    action: Any = None,
    pscore: Any = None,
    estimated_rewards_by_reg_model: Any = None,
    position: Any = None,
    estimated_pscore: Any = None,
    pi_b: Any = None,
    action_embed: Any = None,
    p_e_a: Any = None,
    context_weight: Any = None,
    threads: int | None = None,
) -> LightInputs:
    """Validate OBP's dense arrays and reduce them to :class:`LightInputs` in one pass.

    Shapes as in OBP 0.5.7: ``action_dist`` (n, K) or (n, K, L) is the target policy
    pi_e; ``estimated_rewards_by_reg_model`` has the same shape; ``position`` (n,) picks
    the slot (required when L > 1); ``pi_b`` the logger's distribution (optional here:
    it enables the support check; MIPS needs it); ``action_embed`` (n, n_dim) integer
    categories with ``p_e_a`` (K, n_cat, n_dim) = p(e_d = c | a) for MIPS;
    ``context_weight`` (n,) a density ratio of the contexts (see :class:`LightInputs`).

    ``target_q`` is ``np.average(qhat, weights=pi_e, axis=1)`` exactly as OBP computes DM
    (so divided by the row sum of pi_e, which validation has checked is 1 +- 1e-5).
    The (n, K) arrays are read once, in cache-sized row chunks over ``threads`` threads,
    and never copied.
    """
    A = _as_3d(action_dist, "action_dist")
    n, K, L = A.shape
    Q = None
    if estimated_rewards_by_reg_model is not None:
        Q = _as_3d(estimated_rewards_by_reg_model, "estimated_rewards_by_reg_model")
        if Q.shape != A.shape:
            raise ValueError(
                f"estimated_rewards_by_reg_model has shape {Q.shape} but action_dist has {A.shape}"
            )
    PB = None
    if pi_b is not None:
        PB = _as_3d(pi_b, "pi_b")
        if PB.shape != A.shape:
            raise ValueError(f"pi_b has shape {PB.shape} but action_dist has {A.shape}")

    if position is None:
        if L > 1:
            raise ValueError(f"position is required when action_dist has len_list={L} > 1")
        pos = None
    else:
        pos = as_int_array(position, "position")
        if pos.ndim != 1:
            raise ValueError(f"position: expected shape (n_rounds,), got {pos.shape}")
        check_rows(pos, "position", n, "action_dist")
        if n and (pos.min() < 0 or pos.max() >= L):
            raise ValueError(
                f"position: values must be in [0, {L}) (action_dist.shape[2]); "
                f"got min {pos.min()}, max {pos.max()}"
            )
        if L == 1:
            pos = None  # all zeros

    act = None
    if action is not None:
        act = as_int_array(action, "action")
        if act.ndim != 1:
            raise ValueError(f"action: expected shape (n_rounds,), got {act.shape}")
        check_rows(act, "action", n, "action_dist")
        if n and (act.min() < 0 or act.max() >= K):
            bad = int(np.count_nonzero((act < 0) | (act >= K)))
            raise ValueError(
                f"action: values must be in [0, {K}) (action_dist.shape[1]); {bad} of {n} "
                f"rows are outside"
            )
    for name, x in (("reward", reward), ("pscore", pscore), ("estimated_pscore", estimated_pscore),
                    ("context_weight", context_weight)):
        if x is not None:
            x = np.asarray(x)
            if x.ndim != 1:
                raise ValueError(f"{name}: expected shape (n_rounds,), got {x.shape}")
            check_rows(x, name, n, "action_dist")

    E = P = None
    if action_embed is not None or p_e_a is not None:
        if action_embed is None or p_e_a is None or PB is None or act is None:
            raise ValueError("MIPS needs action, action_embed, pi_b and p_e_a together")
        E = as_int_array(action_embed, "action_embed")
        if E.ndim == 1:
            E = E[:, np.newaxis]
        if E.ndim != 2:
            raise ValueError(f"action_embed: expected shape (n_rounds, n_dim), got {E.shape}")
        check_rows(E, "action_embed", n, "action_dist")
        P = as_float_array(p_e_a, "p_e_a")
        if P.ndim == 2:
            P = P[:, :, np.newaxis]
        if P.ndim != 3 or P.shape[0] != K or P.shape[2] != E.shape[1]:
            raise ValueError(
                f"p_e_a: expected shape ({K}, n_categories, {E.shape[1]}) "
                f"(n_actions, n_categories, action_embed.shape[1]), got {P.shape}"
            )
        check_finite(P, "p_e_a")
        if n and (E.min() < 0 or E.max() >= P.shape[1]):
            raise ValueError(f"action_embed: categories must be in [0, {P.shape[1]}) (p_e_a.shape[1])")

    rows_per_chunk = max(1, _CHUNK_BYTES // (8 * K * L))
    if threads is None:
        threads = n_threads() if n * K * L >= _THREAD_MIN_ELEMENTS else 1

    def at_pos(X: np.ndarray, s: int, e: int) -> np.ndarray:
        if pos is None:
            return X[s:e, :, 0]
        return X[s:e][np.arange(e - s), :, pos[s:e]]

    def chunk(s: int, e: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        pi = at_pos(A, s, e)
        if L == 1:
            out["sums"] = rs = np.einsum("ij->i", pi)
            out["min"] = pi.min() if pi.size else 0.0
        else:
            out["sums"] = A[s:e].sum(axis=1)
            rs = pi.sum(axis=1)
            out["min"] = A[s:e].min() if pi.size else 0.0
        if Q is not None:
            out["tq"] = np.einsum("ij,ij->i", pi, at_pos(Q, s, e)) / rs
        if PB is not None:
            pb = at_pos(PB, s, e)
            out["pb_sums"] = np.einsum("ij->i", pb) if L == 1 else PB[s:e].sum(axis=1)
            out["pb_min"] = (pb.min() if L == 1 else PB[s:e].min()) if pb.size else 0.0
            out["unsupported"] = np.where(pb == 0, pi, 0.0).sum(axis=1)
            if E is not None:
                # p(e_i | a) of the joint embedding, for every a: prod_d p(e_id | a) (chunk, K);
                # then p(e_i | x_i, pi) = sum_a pi(a | x_i) p(e_i | a) (OBP 0.5.7's MIPW)
                pea = np.ones((e - s, K))
                for d in range(E.shape[1]):
                    pea *= P[:, E[s:e, d], d].T
                out["embed_t"] = np.einsum("ij,ij->i", pi, pea)
                out["embed_b"] = np.einsum("ij,ij->i", pb, pea)
        return out

    parts = _map_chunks(chunk, n, rows_per_chunk, threads)

    def cat(key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in parts]) if parts else np.zeros(0)

    def lowest(key: str) -> float:
        return float(min(p[key] for p in parts)) if parts else 0.0

    _check_distribution("action_dist", cat("sums"), lowest("min"), A)
    light: dict[str, Any] = dict(reward=reward, pscore=pscore, estimated_pscore=estimated_pscore,
                                 context_weight=context_weight)
    if PB is not None:
        _check_distribution("pi_b", cat("pb_sums"), lowest("pb_min"), PB)
        light["unsupported_mass"] = cat("unsupported")
    if Q is not None:
        tq = cat("tq")
        if not np.isfinite(tq).all():
            check_finite(Q, "estimated_rewards_by_reg_model")
        light["target_q"] = tq
    if act is not None:
        rows = np.arange(n)
        p0 = np.zeros(n, dtype=np.int64) if pos is None else pos
        light["target_pscore"] = A[rows, act, p0]
        if Q is not None:
            light["q_at_action"] = Q[rows, act, p0]
    if E is not None:
        eb = cat("embed_b")
        if n and not (eb.min() > 0):
            k = int(np.count_nonzero(~(eb > 0)))
            raise ValueError(
                f"p(e|x,pi_b) is 0 for {k} of {n} rounds: action_embed is inconsistent with "
                "p_e_a and pi_b (the logged embedding must be possible under the logger)"
            )
        light["embed_pscore"], light["embed_target_pscore"] = eb, cat("embed_t")
    return LightInputs(**light)
