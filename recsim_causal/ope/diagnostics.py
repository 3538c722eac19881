"""Overlap diagnostics of importance weights: can an off-policy estimate be trusted?

Every OPE estimate travels with these numbers (architecture, principle 8):

* ``ess``: effective sample size of the weights, (sum w)^2 / sum w^2 (Kong 1992; Owen 2013,
  ch. 9), and ``ess_ratio`` = ess / n. Equal weights give n; one dominant weight gives ~1.
* ``max_weight``: the largest importance weight w = pi_e(a|x) / pi_b(a|x).
* ``n_rounds``: rows (or trajectories) the weights come from.

:func:`weight_diagnostics` works for one-item weights, slate weights and trajectory weights
alike (one weight per independent unit). :func:`diagnostic_warnings` turns crossed thresholds
into ``WARNING ...`` lines.
"""

from __future__ import annotations

import numpy as np

#: Thresholds past which an estimate is flagged (see :func:`diagnostic_warnings`).
MIN_ESS_RATIO = 0.01
MIN_ESS = 100.0
MIN_ROUNDS = 100


def weight_diagnostics(weights: np.ndarray) -> dict[str, float]:
    """ESS, ESS / n and the max weight of one weight per independent unit (row or trajectory).

    Args:
        weights: (n,) non-negative importance weights.
    Returns:
        ``{"n_rounds", "ess", "ess_ratio", "max_weight"}`` (ESS is 0 when every weight is 0).
    """
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    n = len(w)
    s, s2 = float(w.sum()), float(np.dot(w, w))
    ess = s * s / s2 if s2 > 0 else 0.0
    return {"n_rounds": n, "ess": ess, "ess_ratio": ess / n if n else 0.0,
            "max_weight": float(w.max()) if n else 0.0}


def diagnostic_warnings(diag: dict[str, float], who: str = "") -> list[str]:
    """``WARNING ...`` lines for an estimate whose diagnostics cross the module's thresholds."""
    where = f"{who}: " if who else ""
    out = []
    if diag.get("n_rounds", MIN_ROUNDS) < MIN_ROUNDS:
        out.append(f"WARNING {where}too few rounds ({diag['n_rounds']} < {MIN_ROUNDS}): intervals are not reliable")
    if "ess" in diag and (diag["ess"] < MIN_ESS or diag.get("ess_ratio", 1.0) < MIN_ESS_RATIO):
        out.append(f"WARNING {where}effective sample size {diag['ess']:,.1f} ({100 * diag.get('ess_ratio', 0):.2f}% of "
                   f"{diag.get('n_rounds', 0):,} rounds): weight-based estimates and their intervals are unreliable")
    return out
