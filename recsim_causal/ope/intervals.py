"""Confidence intervals for OPE estimates: bootstrap, normal (CLT), empirical Bernstein.

All three return OBP's dict: ``{"mean", "95.0% CI (lower)", "95.0% CI (upper)"}`` (the
label is ``f"{100 * (1. - alpha)}% CI"``, so alpha=0.1 gives "90.0% CI").

bootstrap
    Classic nonparametric bootstrap (multinomial resampling of the n rounds, with
    replacement), percentile interval. As in OBP, "mean" is the mean of the bootstrap
    estimates. Unlike OBP, self-normalized estimators (SNIPS, SNDR) are resampled as
    ratios: numerator and denominator are both recomputed on each resample (OBP keeps the
    full-sample denominator fixed). Resampling is vectorized: each resample is a vector of
    Multinomial(n; 1/n) counts (for large n drawn via Poisson(1) counts plus an exact
    fix-up of the total, see ``_multinomial_counts_large``), a block of resamples is one
    matrix product ``counts @ vectors`` that serves every estimator at once, and blocks run
    on all cores. Every block has its own seed derived from ``random_state``, so results do
    not depend on the number of threads. The random stream differs from OBP's
    ``RandomState.choice``: same method, not the same draws.
normal
    V +- z_{1-alpha/2} * sd(psi) / sqrt(n), psi the round rewards (for ratios their
    delta-method linearization), sd with ddof=1. "mean" is the point estimate.
bernstein
    Empirical Bernstein bound (Maurer & Pontil 2009, Thm 4) applied to each side with
    delta = alpha/2: V +- sqrt(2 var(psi) ln(4/alpha) / n) + 7 (b - a) ln(4/alpha) / (3 (n-1)),
    for round rewards in [a, b]: a finite-sample guarantee (coverage >= 1 - alpha for every
    n) when [a, b] is known a priori, as in Thomas et al. 2015's high-confidence OPE.
hoeffding
    Hoeffding's bound, the conservative floor: V +- (b - a) sqrt(ln(2/alpha) / (2n)).

Where [a, b] comes from, for the two finite-sample methods:

* ``ranges`` (what the estimators pass, from the reward range and the largest importance
  weight, see ``BaseOffPolicyEstimator.term_ranges``): a priori ranges of the vectors the
  estimate is made of (``base``, ``num``, ``den`` of :class:`RoundTerms`). A plain mean is
  bounded directly; a ratio (SNIPS, SNDR) bounds each mean at level alpha / (number of
  vectors) and combines them by interval arithmetic (a union bound: still a guarantee).
  ``value_range`` then clips the interval to where the policy value can lie.
* ``bounds=(a, b)``: the range of the round rewards (ratios: of their linearized terms).
* neither: the observed range is plugged in, which makes the bound approximate.

"mean" is the point estimate.

A. Maurer and M. Pontil. "Empirical Bernstein Bounds and Sample Variance Penalization.", COLT 2009.
P. Thomas, G. Theocharous, M. Ghavamzadeh. "High Confidence Off-Policy Evaluation.", AAAI 2015.
W. Hoeffding. "Probability Inequalities for Sums of Bounded Random Variables.", JASA 1963.
B. Efron and R. Tibshirani. "An Introduction to the Bootstrap.", 1993.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from statistics import NormalDist
from typing import Any

import numpy as np

from .inputs import RoundTerms, n_threads

__all__ = [
    "METHODS",
    "FINITE_SAMPLE_METHODS",
    "ci_keys",
    "ci_methods",
    "estimate_interval_from_terms",
    "estimate_intervals_from_terms",
    "bootstrap_estimates",
    "interval_from_moments",
    "poisson_counts",
]

METHODS = ("bootstrap", "normal", "bernstein", "hoeffding")
#: Methods whose coverage is guaranteed for every n (given a priori ranges).
FINITE_SAMPLE_METHODS = ("bernstein", "hoeffding")


def ci_keys(alpha: float) -> tuple[str, str]:
    """OBP's interval keys for significance level ``alpha``."""
    label = f"{100 * (1. - alpha)}% CI"
    return f"{label} (lower)", f"{label} (upper)"


def _check_args(alpha: Any, n_bootstrap_samples: Any, method: Any) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (float, int)) or not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: expected a float in (0, 1), got {alpha!r}")
    if (
        isinstance(n_bootstrap_samples, bool)
        or not isinstance(n_bootstrap_samples, (int, np.integer))
        or n_bootstrap_samples < 1
    ):
        raise ValueError(f"n_bootstrap_samples: expected a positive int, got {n_bootstrap_samples!r}")
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")


def _seed_sequence(random_state: Any) -> np.random.SeedSequence:
    if random_state is None:
        return np.random.SeedSequence()
    if isinstance(random_state, np.random.SeedSequence):
        return random_state
    if isinstance(random_state, np.random.Generator):
        return np.random.SeedSequence(int(random_state.integers(2**63)))
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state: expected a non-negative int, got {random_state}")
        return np.random.SeedSequence(int(random_state))
    raise ValueError(
        f"random_state: expected None, an int, a SeedSequence or a Generator, got {random_state!r}"
    )


# -- exact multinomial bootstrap counts -------------------------------------------------
# Classic bootstrap counts are Multinomial(n; 1/n, ..., 1/n). Drawing n indices costs one
# bounded random integer each, plus a bincount; instead we draw iid Poisson(lam) counts by
# inverse CDF from 32-bit uniforms u and then fix the total. The high 16 bits of u are drawn
# for every cell and answer through a 64K-entry table, except in the few buckets that hold
# a CDF threshold (~0.02% of cells), where the low 16 bits are drawn and u is looked up
# exactly. Given their sum S, iid Poisson(lam) counts are Multinomial(S; uniform) for any
# lam; so adding n - S balls in uniform cells (S < n) or removing S - n uniformly chosen
# balls (S > n) leaves exactly Multinomial(n; uniform). lam = 1 - 4/sqrt(n) makes S < n all
# but ~3e-5 of the time, so the fix-up is a few thousand scattered increments. Up to the
# 2^-32 resolution of u this is the classic bootstrap, at about a third of the cost.
@functools.lru_cache(maxsize=16)
def _poisson_tables(lam: float) -> tuple[np.ndarray, np.ndarray]:
    cdf, pmf, total = [], math.exp(-lam), 0.0
    for k in range(60):
        total += pmf
        cdf.append(total)
        pmf *= lam / (k + 1)
    thresholds = np.floor(np.array(cdf) * 2.0**32).astype(np.uint64)
    thresholds = thresholds[thresholds < 2**32]  # count = #{k : T_k <= u}, u uniform 32-bit
    starts = np.arange(65536, dtype=np.uint64) << np.uint64(16)
    table = np.searchsorted(thresholds, starts, side="right").astype(np.uint8)
    table[np.unique(thresholds >> np.uint64(16))] = _SENTINEL  # high halves holding a threshold
    return thresholds, table


_SENTINEL = 255


def _poisson_lookup(rng: np.random.Generator, lam: float, size: int) -> np.ndarray:
    """iid Poisson(lam) counts as uint8 (size,), by the table lookup above."""
    thresholds, table = _poisson_tables(lam)
    hi = rng.bit_generator.random_raw((size + 3) // 4).view(np.uint16)[:size]  # high 16 bits of u
    c = table.take(hi)
    fix = np.flatnonzero(c == _SENTINEL)
    if fix.size:  # ~0.02% of cells: draw the low 16 bits and look the full u up
        lo = rng.integers(0, 65536, size=fix.size, dtype=np.uint64)
        u = (hi[fix].astype(np.uint64) << np.uint64(16)) | lo
        c[fix] = np.searchsorted(thresholds, u, side="right")
    return c


def _multinomial_counts_large(rng: np.random.Generator, n: int) -> np.ndarray:
    """Multinomial(n; 1/n, ..., 1/n) counts as uint8 (n,)."""
    c = _poisson_lookup(rng, 1.0 - 4.0 / math.sqrt(n), n)
    total = int(c.sum(dtype=np.int64))
    if total < n:
        np.add.at(c, rng.integers(0, n, n - total), 1)
    elif total > n:
        ranks = rng.choice(total, total - n, replace=False)  # balls to remove
        np.subtract.at(c, np.searchsorted(np.cumsum(c, dtype=np.int64), ranks, side="right"), 1)
    return c


def poisson_counts(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """iid Poisson(1) counts as uint8 of ``shape``: the streamed bootstrap's multipliers."""
    return _poisson_lookup(rng, 1.0, int(np.prod(shape))).reshape(shape)


def _multinomial_counts_small(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
    """b rows of Multinomial(n; uniform) counts by drawing indices (fast for small n)."""
    idx = rng.integers(0, n, size=(b, n))
    idx += (np.arange(b, dtype=np.int64) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n)


_SMALL_N = 1 << 15
_BLOCK_ELEMENTS = 1 << 24  # counts per block: 128 MB of float64 at most


def _resampled_sums(
    vectors: np.ndarray, n_bootstrap_samples: int, random_state: Any, threads: int | None
) -> np.ndarray:
    """Sums of each column of ``vectors`` (n, m) over B resamples: shape (B, m)."""
    n = vectors.shape[0]
    B = int(n_bootstrap_samples)
    block = max(1, min(B, _BLOCK_ELEMENTS // max(n, 1), 16 if n >= _SMALL_N else B))
    starts = list(range(0, B, block))
    root = _seed_sequence(random_state)
    out = np.empty((B, vectors.shape[1]))
    vectors_t = np.ascontiguousarray(vectors.T)
    local = threading.local()  # one reused counts buffer per thread (no page faults per block)

    def run(j: int) -> None:
        s = starts[j]
        b = min(block, B - s)
        # block j's stream depends only on (random_state, j): the thread count does not matter
        ss = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, j))
        rng = np.random.Generator(np.random.SFC64(ss))
        if n < _SMALL_N:
            counts = _multinomial_counts_small(rng, n, b).astype(np.float64)
        else:
            buf = getattr(local, "buf", None)
            if buf is None or buf.shape[0] < b:
                buf = local.buf = np.empty((block, n))
            counts = buf[:b]
            for k in range(b):
                counts[k] = _multinomial_counts_large(rng, n)
        out[s : s + b] = (vectors_t @ counts.T).T

    if threads is None:
        threads = n_threads() if n * B >= (1 << 22) else 1
    if threads <= 1 or len(starts) == 1:
        for j in range(len(starts)):
            run(j)
    else:
        with ThreadPoolExecutor(max_workers=threads) as ex:
            list(ex.map(run, range(len(starts))))
    return out


def bootstrap_estimates(
    terms_list: Sequence[RoundTerms],
    *,
    n_bootstrap_samples: int = 10000,
    random_state: Any = None,
    threads: int | None = None,
) -> np.ndarray:
    """Bootstrap estimates (B, len(terms_list)); all estimators share the same resamples."""
    if not terms_list:
        return np.empty((int(n_bootstrap_samples), 0))
    n = terms_list[0].n_rounds
    if n == 0:
        raise ValueError("cannot bootstrap 0 rounds")
    columns: list[np.ndarray] = []
    ids: dict[int, int] = {}
    slots: list[list[int]] = []
    for t in terms_list:
        if t.n_rounds != n:
            raise ValueError(f"bootstrap: estimators disagree on n_rounds ({t.n_rounds} vs {n})")
        mine = []
        for v in t.bootstrap_vectors():
            if id(v) not in ids:  # shared vectors (e.g. the same weights) are summed once
                ids[id(v)] = len(columns)
                columns.append(v)
            mine.append(ids[id(v)])
        slots.append(mine)
    sums = _resampled_sums(np.column_stack(columns), n_bootstrap_samples, random_state, threads)
    return np.column_stack([t.from_sums(sums[:, s], n) for t, s in zip(terms_list, slots)])


def _half_width(v: np.ndarray, width: float, alpha: float, method: str) -> float:
    """Two-sided half-width for mean(v), v in a range of ``width``, at level alpha."""
    n = v.shape[0]
    return _half_width_from(n, float(v.var(ddof=1)) if n > 1 else 0.0, width, alpha, method)


def _half_width_from(n: int, var: float, width: float, alpha: float, method: str) -> float:
    """Two-sided half-width for the mean of n values with sample variance ``var`` (ddof=1),
    in a range of ``width``, at level alpha."""
    if n < 2:
        return math.inf
    if method == "hoeffding":
        return width * math.sqrt(math.log(2.0 / alpha) / (2.0 * n))
    if method == "normal":
        return NormalDist().inv_cdf(1.0 - alpha / 2.0) * math.sqrt(var / n)
    log_term = math.log(4.0 / alpha)
    return math.sqrt(2.0 * var * log_term / n) + 7.0 * width * log_term / (3.0 * (n - 1))


def _check_range(r: Any, name: str) -> tuple[float, float]:
    lo, hi = (float(x) for x in r)
    if not hi >= lo:
        raise ValueError(f"{name}: expected (low, high) with high >= low, got {tuple(r)}")
    return lo, hi


def _divide(num: tuple[float, float], den: tuple[float, float]) -> tuple[float, float]:
    if not den[0] > 0:
        return -math.inf, math.inf
    q = [num[0] / den[0], num[0] / den[1], num[1] / den[0], num[1] / den[1]]
    return min(q), max(q)


def _from_ranges(n: int, value: float, var_psi: float, parts: dict[str, tuple[float, float]], alpha: float,
                 method: str, ranges: dict) -> tuple[float, float]:
    """Finite-sample interval of V = mean(base + num / mean(den)) from a priori vector ranges.
    ``parts``: each present vector's (mean, variance); ``var_psi``: the round rewards'
    variance (used when there is no ratio)."""
    def interval(m: float, var: float, key_range: tuple[float, float], a: float) -> tuple[float, float]:
        lo, hi = key_range
        h = _half_width_from(n, var, hi - lo, a, method)
        return max(lo, m - h), min(hi, m + h)  # the mean lies in the range anyway

    for k in parts:
        if k not in ranges:
            raise ValueError(f"ranges: missing the range of '{k}' (have {sorted(ranges)})")
    if "den" not in parts:  # one mean of bounded round rewards
        lo = sum(_check_range(ranges[k], f"ranges[{k!r}]")[0] for k in parts)
        hi = sum(_check_range(ranges[k], f"ranges[{k!r}]")[1] for k in parts)
        return interval(value, var_psi, (lo, hi), alpha)
    a = alpha / len(parts)  # union bound over the means the ratio is made of
    got = {k: interval(m, var, _check_range(ranges[k], f"ranges[{k!r}]"), a) for k, (m, var) in parts.items()}
    lo, hi = _divide(got["num"], got["den"])
    if "base" in got:
        lo, hi = lo + got["base"][0], hi + got["base"][1]
    return lo, hi


def interval_from_moments(n: int, value: float, var_psi: float, parts: dict[str, tuple[float, float]], *,
                          alpha: float, method: str, ranges: dict | None = None, width: float = math.inf,
                          value_range: tuple[float, float] | None = None) -> dict[str, float]:
    """The normal, Bernstein or Hoeffding interval of an estimate from its moments: ``n``
    rounds, the estimate ``value``, the variance of its (delta-method) round terms
    ``var_psi``, each RoundTerms vector's (mean, variance) in ``parts`` and, for the
    finite-sample methods, the vectors' a priori ``ranges`` (else ``width``, the range of the
    round terms). What :func:`estimate_intervals_from_terms` computes from the rows, and the
    streamed evaluation from sums."""
    if method in FINITE_SAMPLE_METHODS and ranges is not None:
        lo, hi = _from_ranges(n, value, var_psi, parts, alpha, method, ranges)
    else:
        half = _half_width_from(n, var_psi, width, alpha, method)
        lo, hi = value - half, value + half
    if value_range is not None and method in FINITE_SAMPLE_METHODS:
        vlo, vhi = _check_range(value_range, "value_range")
        lo, hi = max(lo, vlo), min(hi, vhi)
    lower_key, upper_key = ci_keys(alpha)
    return {"mean": value, lower_key: lo, upper_key: hi}


def _analytic(terms: RoundTerms, alpha: float, method: str, bounds: tuple[float, float] | None,
              ranges: dict | None = None, value_range: tuple[float, float] | None = None) -> dict:
    value = terms.value()
    psi = terms.influence()
    n = psi.shape[0]
    var_psi = float(psi.var(ddof=1)) if n > 1 else 0.0
    parts = {k: (float(v.mean()), float(v.var(ddof=1)) if n > 1 else 0.0)
             for k in ("base", "num", "den") if (v := getattr(terms, k)) is not None}
    if bounds is not None:
        b_lo, b_hi = _check_range(bounds, "bounds")
        width = b_hi - b_lo
    else:
        width = float(psi.max() - psi.min()) if psi.size else math.inf
    return interval_from_moments(n, value, var_psi, parts, alpha=alpha, method=method, ranges=ranges, width=width,
                                 value_range=value_range)


def estimate_intervals_from_terms(
    terms_list: Sequence[RoundTerms],
    *,
    alpha: float = 0.05,
    n_bootstrap_samples: int = 10000,
    random_state: Any = None,
    method: str = "bootstrap",
    bounds: tuple[float, float] | None = None,
    threads: int | None = None,
    ranges: Sequence[dict | None] | None = None,
    value_range: tuple[float, float] | None = None,
) -> list[dict[str, float]]:
    """One interval dict per RoundTerms (bootstrap resamples shared across them).

    ``ranges`` (one dict per RoundTerms, or None) and ``value_range`` serve the
    finite-sample methods (see the module doc); the other methods ignore them.
    """
    _check_args(alpha, n_bootstrap_samples, method)
    if method != "bootstrap":
        ranges = list(ranges) if ranges is not None else [None] * len(terms_list)
        if len(ranges) != len(terms_list):
            raise ValueError(f"ranges: expected {len(terms_list)} entries (one per estimator), got {len(ranges)}")
        return [_analytic(t, alpha, method, bounds, r, value_range) for t, r in zip(terms_list, ranges)]
    boots = bootstrap_estimates(
        terms_list, n_bootstrap_samples=n_bootstrap_samples, random_state=random_state, threads=threads
    )
    lower_key, upper_key = ci_keys(alpha)
    lo = np.percentile(boots, 100 * (alpha / 2), axis=0)
    hi = np.percentile(boots, 100 * (1.0 - alpha / 2), axis=0)
    mean = boots.mean(axis=0)
    return [
        {"mean": float(mean[j]), lower_key: float(lo[j]), upper_key: float(hi[j])}
        for j in range(len(terms_list))
    ]


def estimate_interval_from_terms(terms: RoundTerms, **kw: Any) -> dict[str, float]:
    """Interval dict for one estimator's RoundTerms (see module doc for the methods)."""
    return estimate_intervals_from_terms([terms], **kw)[0]


def ci_methods(ci: dict, where: str = "ci") -> list[str]:
    """``ci.method`` (the one the table shows; one method or a list) then ``ci.more_methods``."""
    for key in ("method", "more_methods"):
        given = ci.get(key) or []
        given = given if isinstance(given, (list, tuple)) else [given]
        bad = [m for m in given if m not in METHODS]
        if bad or (key == "method" and not given):
            raise ValueError(f"{where}.{key}: expected one or a list of {', '.join(METHODS)}, got {ci.get(key)!r}")
    first = ci["method"] if isinstance(ci["method"], (list, tuple)) else [ci["method"]]
    more = ci.get("more_methods") or []
    return list(dict.fromkeys([*first, *(more if isinstance(more, (list, tuple)) else [more])]))
