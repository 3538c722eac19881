"""Learn on one part of a simulated log, judge on the rest and by the exact truth.

    from recsim_causal.ope import simulate_log
    from recsim_causal.learn import judge
    log = simulate_log("default", "linucb", 20_000, epsilon=0.2)
    result = judge(log, {"ipw": {"learner": "ipw"}, "dm": {"learner": "dm"}})
    print(result.table())

Per learner: its exact value V(pi) on fresh users (with its standard error over users); every
OPE estimate of it on the held-out part of the log (with its interval and the interval's
validity) and on the training part. The training part is the data the policy was fitted to, so
its estimate there is flattered (the winner's curse); both gaps to the truth are reported. The
pick -- the learner with the best held-out estimate by ``select_by`` -- is reported with its
true value and its regret against the truly best learner, beside the pick one would make from
the training-part estimates.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsim_causal.agents.base import BasePolicy, check_float
from recsim_causal.ope.evaluate import OPEResult, evaluate
from recsim_causal.ope.simulate import SimulatedLog

from .bandit import fit

__all__ = ["judge", "JudgeResult", "Behaviour", "split_log"]


class Behaviour(BasePolicy):
    """The logger as it logged: ``(1 - epsilon) pi + epsilon / K``, as a Policy (``update`` goes
    to ``pi``)."""

    def __init__(self, policy: Any, epsilon: float) -> None:
        super().__init__(int(policy.n_actions), None, 0)
        self.policy, self.epsilon = policy, check_float(self.name, "epsilon", epsilon, low=0.0, high=1.0)

    def action_probs(self, contexts: np.ndarray) -> np.ndarray:
        return (1 - self.epsilon) * self.policy.action_probs(contexts) + self.epsilon / self.n_actions

    def update(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        self.policy.update(contexts, actions, rewards)


def split_log(log: SimulatedLog, n_train: int) -> tuple[SimulatedLog, SimulatedLog]:
    """The first ``n_train`` rounds and the rest, each a SimulatedLog of the same world."""

    def part(index: slice) -> SimulatedLog:
        return SimulatedLog(log.feedback.subset(index), log.world, log.logger, log.epsilon, log.seed, log.train_rounds)

    return part(slice(0, n_train)), part(slice(n_train, None))


@dataclass
class JudgeResult:
    """What :func:`judge` returns; ``to_dict()`` is the ``offline`` result record's body."""

    logger: dict[str, float]
    learners: dict[str, dict[str, Any]]
    selection: dict[str, Any]
    n_train: int
    n_heldout: int
    estimators: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"logger": self.logger, "learners": self.learners, "selection": self.selection,
                "n_train": self.n_train, "n_heldout": self.n_heldout, "estimators": self.estimators}  # fmt: skip

    def table_rows(self) -> list[list]:
        """One row per learner x estimator: truth, held-out estimate (interval, valid), train estimate."""
        rows = []
        for name, r in self.learners.items():
            for est in self.estimators:
                h, t = r["heldout"][est], r["train"][est]
                rows.append([name, r["true_value"], r["true_value_se"], est, h["estimate"], h["ci_low"], h["ci_high"],
                             h["interval_valid"], t["estimate"], t["estimate"] - r["true_value"]])  # fmt: skip
        return rows

    TABLE_COLUMNS = ["learner", "true_value", "se", "estimator", "heldout", "ci_low", "ci_high", "valid", "train",
                     "train-truth"]

    def notes(self) -> list[str]:
        s = self.selection
        lines = [f"logger true value {self.logger['true_value']:.4f} (s.e. {self.logger['true_value_se']:.4f}); "
                 f"learned on {self.n_train:,} rounds, estimated on {self.n_heldout:,} held-out rounds"]
        lines.append(f"pick by held-out {s['by']}: {s['pick']} (true {s['pick_true_value']:.4f}); truly best: "
                     f"{s['best']} (true {s['best_true_value']:.4f}); regret {s['regret']:.4f}")
        lines.append(f"pick by training-part {s['by']}: {s['train_pick']} (true {s['train_pick_true_value']:.4f}, "
                     f"its training estimate {s['train_pick_estimate']:.4f}: winner's curse "
                     f"{s['train_pick_estimate'] - s['train_pick_true_value']:+.4f})")
        return lines

    def table(self) -> str:
        from recsim_causal.results import format_table

        return format_table(self.TABLE_COLUMNS, self.table_rows(), self.notes())


def _records(result: OPEResult, name: str) -> dict[str, dict[str, Any]]:
    block = result.targets[name]
    out = {}
    for r in result.records:
        if r.target == name:
            out[r.estimator] = {"estimate": r.estimate, "ci_low": r.ci_low, "ci_high": r.ci_high,
                                "interval_method": r.interval_method, "interval_valid": r.interval_valid,
                                "invalid_reason": r.invalid_reason, "truth_logged_users": r.truth,
                                "covers": r.covers}  # fmt: skip
    for est, row in out.items():  # the target's WARNING line that gives this row's reason (the log's doing), if any
        reason = row["invalid_reason"]
        out[est]["warnings"] = [w for w in block.get("warnings", []) if reason and w.endswith(f"not valid: {reason}")]
    return out


def judge(log: SimulatedLog, learners: Mapping[str, Mapping[str, Any]], *,
          estimators: Sequence[str] = ("dm", "ipw", "snipw", "dr", "sndr"), select_by: str = "dr",
          train_fraction: float = 0.5, truth_users: int = 100_000, ci: str = "bootstrap",
          n_bootstrap_samples: int = 200, reward_model: str = "logistic", seed: int = 0) -> JudgeResult:  # fmt: skip
    """Fit every learner (``{name: fit keyword arguments}``) on the first ``train_fraction`` of
    ``log``, then judge each: exact V(pi) on ``truth_users`` fresh users (the same users for all),
    and the ``estimators``' estimates on the held-out rest and on the training part.

    ``select_by`` (one of ``estimators``) picks the learner with the best held-out estimate.
    Returns a :class:`JudgeResult`.
    """
    if not isinstance(log, SimulatedLog):
        raise ValueError(f"log: expected a SimulatedLog (the truth needs its world), got {type(log).__name__}")
    if log.world.is_confounded:
        raise ValueError("log: a confounded world's logger acts on a signal the learners never see; "
                         "judge needs an unconfounded world")
    if not learners:
        raise ValueError("learners: expected at least one {name: fit keyword arguments}")
    estimators = list(estimators)
    if select_by not in estimators:
        raise ValueError(f"select_by: expected one of the estimators ({', '.join(estimators)}), got {select_by!r}")
    frac = check_float("judge", "train_fraction", train_fraction, low=0.0, high=1.0, low_open=True)
    n_train = int(round(frac * log.n_rounds))
    if not 0 < n_train < log.n_rounds:
        raise ValueError(f"train_fraction: {frac} of {log.n_rounds} rounds leaves an empty part")
    train_log, heldout_log = split_log(log, n_train)
    policies, fit_s = {}, {}
    for name, kw in learners.items():
        start = time.perf_counter()
        policies[name] = fit(train_log, **{"seed": seed, **dict(kw)})
        fit_s[name] = time.perf_counter() - start
    opts = dict(estimators=estimators, ci=ci, n_bootstrap_samples=n_bootstrap_samples, reward_model=reward_model,
                seed=seed)  # fmt: skip
    results = {}
    for name, policy in policies.items():
        value, se = log.population_truth(policy, truth_users)
        # one target per call: evaluate labels a Policy object by its class
        h, t = (_records(evaluate(part, {name: policy}, **opts), name) for part in (heldout_log, train_log))
        results[name] = {
            "params": dict(learners[name]), "fit_s": fit_s[name], "true_value": value, "true_value_se": se,
            "ope_heldout": {k: v["estimate"] for k, v in h.items()}, "ope_train": {k: v["estimate"] for k, v in t.items()},
            "heldout": h, "train": t,
            "winners_curse": {k: {"heldout_minus_truth": h[k]["estimate"] - value,
                                  "train_minus_truth": t[k]["estimate"] - value,
                                  "train_minus_heldout": t[k]["estimate"] - h[k]["estimate"]} for k in h},
        }  # fmt: skip
    logger_value, logger_se = log.population_truth(Behaviour(log.logger, log.epsilon), truth_users)
    best = max(results, key=lambda k: results[k]["true_value"])
    pick = max(results, key=lambda k: results[k]["ope_heldout"][select_by])
    train_pick = max(results, key=lambda k: results[k]["ope_train"][select_by])
    selection = {"by": select_by, "pick": pick, "pick_true_value": results[pick]["true_value"],
                 "pick_heldout_estimate": results[pick]["ope_heldout"][select_by],
                 "best": best, "best_true_value": results[best]["true_value"],
                 "regret": results[best]["true_value"] - results[pick]["true_value"],
                 "train_pick": train_pick, "train_pick_true_value": results[train_pick]["true_value"],
                 "train_pick_estimate": results[train_pick]["ope_train"][select_by],
                 "train_pick_regret": results[best]["true_value"] - results[train_pick]["true_value"]}  # fmt: skip
    return JudgeResult({"true_value": logger_value, "true_value_se": logger_se, "epsilon": log.epsilon},
                       results, selection, n_train, log.n_rounds - n_train, estimators)  # fmt: skip
