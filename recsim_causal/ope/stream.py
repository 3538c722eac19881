"""OPE over logs larger than memory: one pass over record batches, sums instead of rows.

Every estimator of the IPS/SNIPS/DR families is V = mean(base) + mean(num) / mean(den) of
per-round vectors (:class:`~recsim_causal.ope.inputs.RoundTerms`). A pass over the log keeps,
per (target, estimator), only the sums of those vectors and of their products
(:class:`StreamedTerms`); that is enough for

* the estimate;
* the normal interval, from the variance of the delta-method terms
  psi_i = base_i + (num_i - R den_i) / mean(den) + R (a quadratic form in the moments);
* the Bernstein and Hoeffding bounds, from each vector's mean and variance and the a priori
  ranges (:func:`~recsim_causal.ope.intervals.interval_from_moments`);
* MIPS and SNMIPS over a deterministic action embedding, whose marginal weights are per-row
  sums of the target's and the logger's distributions over the actions sharing the logged
  action's embedding;
* the bootstrap, by Poisson(1) multipliers: each replicate weights round i by an independent
  Poisson(1) count, so a replicate's sums accumulate batch by batch (Hanley & MacGibbon 2006;
  Chamandy et al. 2012, "Estimating uncertainty for massive data streams").

Memory holds one batch (its (rows, K) target distributions) and B x 4 sums per estimator,
however many rows the log has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .intervals import ci_keys, interval_from_moments, poisson_counts

__all__ = ["StreamedTerms", "PoissonBootstrap", "WeightSums", "embedding_members"]

_PARTS = ("base", "num", "den")


@dataclass
class StreamedTerms:
    """Sums of one estimator's RoundTerms vectors (base, num, den) over a stream of batches."""

    n: int = 0
    present: tuple[bool, bool, bool] | None = None
    s: np.ndarray = field(default_factory=lambda: np.zeros(3))
    m: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))
    lo: np.ndarray = field(default_factory=lambda: np.full(3, np.inf))
    hi: np.ndarray = field(default_factory=lambda: np.full(3, -np.inf))

    @staticmethod
    def matrix(terms: Any) -> np.ndarray:
        """(rows, 3) of a batch's RoundTerms: base (0 if absent), num (0), den (1)."""
        n = terms.n_rounds
        cols = [terms.base, terms.num, terms.den]
        fill = (0.0, 0.0, 1.0)
        return np.column_stack([np.broadcast_to(f, n) if c is None else np.asarray(c, np.float64)
                                for c, f in zip(cols, fill)])

    def add(self, terms: Any) -> np.ndarray:
        """Add a batch's RoundTerms; returns its (rows, 3) matrix (for the bootstrap)."""
        present = tuple(getattr(terms, p) is not None for p in _PARTS)
        if self.present is None:
            self.present = present
        elif self.present != present:
            raise ValueError("StreamedTerms: batches disagree on the estimator's terms")
        v = self.matrix(terms)
        self.n += len(v)
        self.s += v.sum(axis=0)
        self.m += v.T @ v
        if len(v):
            self.lo = np.minimum(self.lo, v.min(axis=0))
            self.hi = np.maximum(self.hi, v.max(axis=0))
        return v

    # -- the estimate and its spread -------------------------------------------------------
    def means(self) -> np.ndarray:
        return self.s / self.n

    def cov(self) -> np.ndarray:
        """The (3, 3) sample covariance of (base, num, den), ddof=1."""
        mu = self.means()
        return (self.m - self.n * np.outer(mu, mu)) / max(self.n - 1, 1)

    def value(self) -> float:
        if self.n == 0:
            raise ValueError("cannot estimate a policy value from 0 rounds")
        b, nu, d = self.means()
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(b + nu / d)

    def influence_coefficients(self) -> np.ndarray:
        """c with psi_i - mean(psi) = c . (v_i - mean(v)): (1, 1/mean(den), -R/mean(den))."""
        b, nu, d = self.means()
        if not self.present[2]:
            return np.array([1.0, 1.0, 0.0])
        return np.array([1.0, 1.0 / d, -(nu / d) / d])

    def influence_var(self) -> float:
        c = self.influence_coefficients()
        return float(max(c @ self.cov() @ c, 0.0))

    def interval(self, method: str, alpha: float, *, ranges: dict | None = None,
                 value_range: tuple[float, float] | None = None) -> dict[str, float]:
        """OBP's interval dict by ``method`` (normal, bernstein, hoeffding) from the sums."""
        parts = {p: (float(self.means()[i]), float(self.cov()[i, i]))
                 for i, p in enumerate(_PARTS) if self.present[i]}
        # observed range of psi, bounded by its parts' observed ranges (no a priori one)
        c = np.abs(self.influence_coefficients())
        width = float(sum(c[i] * (self.hi[i] - self.lo[i]) for i in range(3) if self.present[i]))
        return interval_from_moments(self.n, self.value(), self.influence_var(), parts, alpha=alpha, method=method,
                                     ranges=ranges, width=width, value_range=value_range)


class PoissonBootstrap:
    """The bootstrap of every StreamedTerms at once, by Poisson(1) multipliers per round.

    ``add(matrices)``: a batch's (rows, 3) matrices, one per estimator; per replicate b the
    sums sum_i P_ib (1, base_i, num_i, den_i) accumulate. Replicate estimates:
    S_base / S_1 + S_num / S_den."""

    SUB_ROWS = 4096  # rows per multiplier block: 4096 x B float64 (32 MB at B = 1000)

    def __init__(self, n_bootstrap_samples: int, n_estimators: int, random_state: Any = 0):
        self.B = int(n_bootstrap_samples)
        self.sums = np.zeros((self.B, 1 + 3 * n_estimators))
        self.rng = np.random.default_rng(random_state)

    def add(self, matrices: list[np.ndarray]) -> None:
        v = np.column_stack([np.ones(len(matrices[0])), *matrices])
        for start in range(0, len(v), self.SUB_ROWS):
            block = v[start:start + self.SUB_ROWS]
            counts = poisson_counts(self.rng, (self.B, len(block))).astype(np.float64)
            self.sums += counts @ block

    def replicates(self, j: int, present: tuple[bool, bool, bool]) -> np.ndarray:
        """(B,) replicate estimates of estimator ``j``."""
        n = self.sums[:, 0]
        base, num, den = (self.sums[:, 1 + 3 * j + k] for k in range(3))
        with np.errstate(invalid="ignore", divide="ignore"):
            return base / n + (num / den if present[2] else num / n)

    def interval(self, j: int, present: tuple[bool, bool, bool], alpha: float) -> dict[str, float]:
        reps = self.replicates(j, present)
        reps = reps[np.isfinite(reps)]
        lo_key, hi_key = ci_keys(alpha)
        return {"mean": float(reps.mean()), lo_key: float(np.percentile(reps, 100 * alpha / 2)),
                hi_key: float(np.percentile(reps, 100 * (1 - alpha / 2)))}


@dataclass
class WeightSums:
    """Streamed overlap diagnostics of one target (the keys of
    :func:`~recsim_causal.ope.diagnostics.overlap_diagnostics`)."""

    n_actions: int
    n: int = 0
    sw: float = 0.0
    sw2: float = 0.0
    max_w: float = 0.0
    low_support: float = 0.0
    pscore_one: int = 0
    source: str = "pi_b"
    second: float = 0.0  # sum over rows of E[w^2 | x] (with pi_b)
    support_max: float = 0.0  # max over rows and actions of pi_e / pi_b

    def add(self, weights: np.ndarray, pscore: np.ndarray, action_dist: np.ndarray, pi_b: np.ndarray | None) -> None:
        from .diagnostics import PSCORE_ONE, weight_moments

        threshold = 1.0 / (10.0 * self.n_actions)
        self.n += len(weights)
        self.sw += float(weights.sum())
        self.sw2 += float(weights @ weights)
        self.max_w = max(self.max_w, float(weights.max(initial=0.0)))
        if pi_b is not None:
            self.low_support += float(np.where(pi_b < threshold, action_dist, 0.0).sum())
            second, top = weight_moments(action_dist, pi_b)
            self.second, self.support_max = self.second + second, max(self.support_max, top)
        else:
            self.source = "logged rows"
            self.low_support += float((weights * (pscore < threshold)).sum())
        self.pscore_one += int((pscore >= PSCORE_ONE).sum())

    def diagnostics(self) -> dict[str, Any]:
        from .diagnostics import expected_weight_diagnostics

        ess = self.sw * self.sw / self.sw2 if self.sw2 > 0 else 0.0
        n = max(self.n, 1)
        out = {"n_rounds": self.n, "ess": ess, "ess_ratio": ess / n, "max_weight": self.max_w,
               "low_support_share": self.low_support / n, "low_support_source": self.source,
               "pscore_one_share": self.pscore_one / n}
        if self.source == "pi_b":  # every batch had the logger's distribution
            out.update(expected_weight_diagnostics(self.n, self.second, self.support_max))
        return out


def embedding_members(p_e_a: Any, n_actions: int) -> np.ndarray:
    """(K, C) one-hot: action a's joint embedding (one of C distinct ones) from a deterministic
    ``p_e_a`` (K, n_cat, n_dim), so that p(e | x, pi) = (pi(. | x) @ members)[e]."""
    p = np.asarray(p_e_a, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] != n_actions:
        raise ValueError(f"p_e_a: expected shape ({n_actions}, n_cat, n_dim), got {p.shape}")
    if not np.all((p == 0.0) | (p == 1.0)) or not np.all(p.sum(axis=1) == 1.0):
        raise ValueError("p_e_a: a streamed log needs a deterministic embedding (one category per action and "
                         "dimension, as p_e_a_from_clusters gives); a stochastic one needs the log in memory")
    _, joint = np.unique(p.argmax(axis=1), axis=0, return_inverse=True)  # (K, n_dim) categories -> joint id
    joint = joint.reshape(-1)
    out = np.zeros((n_actions, int(joint.max()) + 1))
    out[np.arange(n_actions), joint] = 1.0
    return out


def _reward_predictor(reward_model: Any, path: Any, meta: dict, *, fit_rows: int, batch_rows: int,
                      features: str, seed: int) -> tuple[Any, int]:
    """(predict(context) -> (n, K), rows used to fit it, which the evaluation skips)."""
    from recsim_causal.data.parquet import iter_batches

    from .reward_models import RegressionModel

    K = int(meta["n_actions"])
    if isinstance(reward_model, str):  # fitted on the log's first fit_rows rows, evaluated on the rest
        parts: list[dict] = []
        n = 0
        for batch in iter_batches(path, batch_rows=batch_rows, columns=["context", "action", "reward"], meta=meta):
            parts.append(batch)
            n += len(batch["action"])
            if n >= fit_rows:
                break
        cols = {k: np.concatenate([p[k] for p in parts])[:fit_rows] for k in ("context", "action", "reward")}
        model = RegressionModel(base_model=reward_model, n_actions=K, features=features, random_state=seed)
        model.fit(cols["context"], cols["action"], cols["reward"])
        return (lambda x: model.predict(x)[:, :, 0]), len(cols["action"])
    if hasattr(reward_model, "predict"):
        return (lambda x: np.asarray(reward_model.predict(x), np.float64).reshape(len(x), K, -1)[:, :, 0]), 0
    if callable(reward_model):
        return (lambda x: np.asarray(reward_model(x), np.float64).reshape(len(x), K)), 0
    raise ValueError("reward_model: for a Parquet log, expected a base model name (fitted on the log's first "
                     "rows), a fitted model with predict(context) or a function context -> q-hat (n, K)")


def evaluate_stream(path: Any, policies: dict[str, Any], estimators: list, *, methods: list[str], alpha: float,
                    seed: int, n_bootstrap_samples: int, reward_model: Any, reward_features: str = "interaction",
                    fit_rows: int = 100_000, batch_rows: int = 1 << 16,
                    reward_bounds: tuple[float, float] | None | str = "auto",
                    p_e_a: np.ndarray | None = None, confounded: bool = False) -> tuple[dict[str, dict], dict]:
    """Evaluate ``policies`` on the Parquet log at ``path`` in one pass of record batches.

    ``p_e_a`` (K, n_cat, n_dim): a deterministic action -> embedding map (one-hot, e.g.
    :func:`~recsim_causal.ope.estimators.p_e_a_from_clusters`) for MIPS/SNMIPS, whose
    marginal weights p(e_i | x_i, pi_e) / p(e_i | x_i, pi_b) are computed row by row from the
    log's ``action_dist`` column (:func:`embedding_members`). ``confounded``: the logger saw a
    signal the log lacks, so no interval is called valid (as in memory).

    Returns per target the block :func:`~recsim_causal.ope.evaluate.evaluate_target` makes
    (truth from the log's ``expected_reward`` column where it has one), and facts about the
    pass (rows read, rows that fitted the reward model)."""
    from recsim_causal.agents import validate_policy_output
    from recsim_causal.data.parquet import iter_batches, read_meta

    from .diagnostics import row_verdict, verdict_warnings
    from .estimators import MarginalizedInverseProbabilityWeighting
    from .inputs import LightInputs

    meta = read_meta(path)
    K = int(meta["n_actions"])
    if "position" in meta.get("shapes", {}) or meta["shapes"].get("action_dist", [0, 0])[2:]:
        raise ValueError(f"{path}: a slate log; streamed evaluation is for one-item logs")
    mips = [e.estimator_name for e in estimators if isinstance(e, MarginalizedInverseProbabilityWeighting)]
    member = None
    if mips:
        if p_e_a is None:
            raise ValueError(f"estimators: {', '.join(mips)} need the items' embeddings: pass p_e_a (K, n_cat, n_dim), "
                             "e.g. p_e_a_from_clusters(item_cluster)")
        if "action_dist" not in meta["shapes"]:
            raise ValueError(f"estimators: {', '.join(mips)} on a Parquet log need its action_dist column (the "
                             "logger's distribution, for the embedding's marginal pscore); this log has none")
        member = embedding_members(p_e_a, K)
    needs_q = any(e.kind in ("dm", "dr") for e in estimators)
    predict, skip = (None, 0)
    if needs_q:
        if reward_model is None:
            raise ValueError("reward_model: DM and DR need a reward model")
        predict, skip = _reward_predictor(reward_model, path, meta, fit_rows=fit_rows, batch_rows=batch_rows,
                                          features=reward_features, seed=seed)
    names = list(policies)
    acc = {(t, e.estimator_name): StreamedTerms() for t in names for e in estimators}
    weights = {t: WeightSums(K) for t in names}
    truth_sum = dict.fromkeys(names, 0.0)
    has_truth = has_pi_b = binary = True
    w_max = dict.fromkeys(names, 0.0)  # max over rows and actions of pi_e / pi_b
    q_lo, q_hi = np.inf, -np.inf
    r_lo, r_hi = np.inf, -np.inf
    boot = PoissonBootstrap(n_bootstrap_samples, len(acc), [seed, 11]) if "bootstrap" in methods else None
    to_skip, first = skip, True
    for batch in iter_batches(path, batch_rows=batch_rows, meta=meta):
        if to_skip:
            k = min(to_skip, len(batch["action"]))
            batch = {c: v[k:] for c, v in batch.items()}
            to_skip -= k
        n = len(batch["action"])
        if n == 0:
            continue
        x, a, r, ps = batch["context"], batch["action"].astype(np.int64), batch["reward"], batch["pscore"]
        pi_b, q_true = batch.get("action_dist"), batch.get("expected_reward")
        has_truth &= q_true is not None
        has_pi_b &= pi_b is not None
        binary &= bool(np.isin(r, (0.0, 1.0)).all())
        r_lo, r_hi = min(r_lo, float(r.min())), max(r_hi, float(r.max()))
        q = predict(x) if predict is not None else None
        rows = np.arange(n)
        if member is not None:  # p(e_i | x_i, pi) = sum of pi(a | x_i) over the actions sharing a_i's embedding
            e_i = member.argmax(axis=1)[a]
            embed_pscore = (pi_b @ member)[rows, e_i]
        mats = []
        for t in names:
            pe = policies[t].action_probs(x)
            if first:
                validate_policy_output(policies[t], n, probs=pe)
            tp = pe[rows, a]
            inputs = LightInputs(reward=r, pscore=ps, target_pscore=tp,
                                 target_q=None if q is None else (pe * q).sum(axis=1),
                                 q_at_action=None if q is None else q[rows, a],
                                 embed_pscore=None if member is None else embed_pscore,
                                 embed_target_pscore=None if member is None else (pe @ member)[rows, e_i])
            if q is not None:
                q_lo = min(q_lo, float(inputs.target_q.min()), float(inputs.q_at_action.min()))
                q_hi = max(q_hi, float(inputs.target_q.max()), float(inputs.q_at_action.max()))
            weights[t].add(tp / ps, ps, pe, pi_b)
            if pi_b is not None:
                ratio = np.divide(pe, pi_b, out=np.zeros_like(pe), where=pi_b > 0)
                w_max[t] = max(w_max[t], float(ratio.max(initial=0.0)))
            if q_true is not None:
                truth_sum[t] += float((pe * q_true).sum())
            for e in estimators:
                mats.append(acc[(t, e.estimator_name)].add(e.terms(inputs)))
        if boot is not None:
            boot.add(mats)
        first = False
    if first:
        raise ValueError(f"{path}: no rows to evaluate" + (f" after the {skip:,} that fitted the reward model"
                                                           if skip else ""))
    if reward_bounds == "auto":  # clicks are in [0, 1]; with the logger's distribution the weights are bounded
        reward_bounds = (0.0, 1.0) if binary and has_pi_b else None
    blocks: dict[str, dict] = {}
    lo_key, hi_key = ci_keys(alpha)
    j = 0
    for t in names:
        diag = weights[t].diagnostics()
        truth = truth_sum[t] / diag["n_rounds"] if has_truth else None
        table: dict[str, dict] = {}
        verdicts = {}
        for e in estimators:
            st = acc[(t, e.estimator_name)]
            value = st.value()
            by_method = {}
            for m in methods:
                if m == "bootstrap":
                    iv = boot.interval(j, st.present, alpha)
                else:
                    ranges = value_range = None
                    if reward_bounds is not None:
                        value_range = tuple(float(v) for v in reward_bounds)
                        wb = 0.0 if e.kind == "dm" else (w_max[t] if has_pi_b else diag["max_weight"])
                        qr = (min(value_range[0], q_lo), max(value_range[1], q_hi)) if predict is not None else value_range
                        ranges = e.term_ranges(value_range, wb, qr)
                    iv = st.interval(m, alpha, ranges=ranges, value_range=value_range)
                v = row_verdict(e, m, diag, value, confounded=confounded, reward_bounded=reward_bounds is not None)
                verdicts.setdefault(e.estimator_name, v)
                row = {"ci_low": iv[lo_key], "ci_high": iv[hi_key], "interval_valid": v.valid, "invalid_reason": v.reason}
                if truth is not None:
                    row["covers"] = bool(iv[lo_key] <= truth <= iv[hi_key])
                by_method[m] = row
            primary = by_method[methods[0]]
            rec = {"estimate": value, "ci_low": primary["ci_low"], "ci_high": primary["ci_high"],
                   "interval_method": methods[0], "interval_valid": primary["interval_valid"],
                   "invalid_reason": primary["invalid_reason"], "intervals": by_method}
            if truth is not None:
                rec.update(truth=truth, error=value - truth, abs_error=abs(value - truth),
                           covers=primary.get("covers"), ci_width=primary["ci_high"] - primary["ci_low"])
            table[e.estimator_name] = rec
            j += 1
        blocks[t] = {"truth": truth, "diagnostics": diag, "warnings": verdict_warnings(t, verdicts, methods[0]),
                     "estimators": table}
    return blocks, {"rows_evaluated": diag["n_rounds"], "reward_model_rows": skip}
