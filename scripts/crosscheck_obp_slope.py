#!/usr/bin/env python
"""``lambda_="auto"`` (SLOPE) beside OBP 0.5.7's ``*Tuning`` estimators on the same arrays.

    mkdir -p /tmp/obp && cd /tmp/obp && pip download --no-deps --no-binary=:all: \\
        --ignore-requires-python obp==0.5.7 && tar xzf obp-0.5.7.tar.gz
    OBP_SRC=/tmp/obp/obp-0.5.7 python scripts/crosscheck_obp_slope.py [--trials 20]

Random logs (300 to 3,000 rounds, 10 actions, Dirichlet loggers and targets, Bernoulli
rewards, a noisy reward model); for IPS, DR, Switch-DR, DRos and SG-IPS with ``lambda_="auto"``
the chosen lambda and the estimate are compared with OBP's
``estimate_policy_value_with_tuning(tuning_method="slope")`` over the same candidates. Only
OBP's ``obp/utils.py`` and ``obp/ope/{helper,estimators,estimators_tuning}.py`` are loaded
(OBP is not a dependency). Prints one line per estimator and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import types
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recsim_causal.ope import DR, IPS, DRos, SubGaussianIPS, SwitchDR, tuned_lambdas  # noqa: E402


def load_obp_tuning(src: Path):
    for name in ("obp", "obp.ope"):
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(src / name.replace(".", "/"))]
        sys.modules[name] = pkg
    for name in ("obp.utils", "obp.ope.helper", "obp.ope.estimators", "obp.ope.estimators_tuning"):
        spec = importlib.util.spec_from_file_location(name, src / (name.replace(".", "/") + ".py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules["obp.ope.estimators_tuning"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    args = ap.parse_args()
    src = os.environ.get("OBP_SRC")
    if not src:
        print("set OBP_SRC to the unpacked obp-0.5.7 source (see the module doc)")
        return 2
    t = load_obp_tuning(Path(src))
    pairs = {IPS: t.InverseProbabilityWeightingTuning, DR: t.DoublyRobustTuning, SwitchDR: t.SwitchDoublyRobustTuning,
             DRos: t.DoublyRobustWithShrinkageTuning, SubGaussianIPS: t.SubGaussianInverseProbabilityWeightingTuning}
    rng = np.random.default_rng(0)
    worst = {c.__name__: [0, 0, 0.0] for c in pairs}  # trials, lambda mismatches, max |value difference|
    for _ in range(args.trials):
        n, K = int(rng.integers(300, 3000)), 10
        pb = rng.dirichlet(np.ones(K) * rng.uniform(0.2, 2), size=n)
        pe = rng.dirichlet(np.ones(K) * rng.uniform(0.1, 2), size=n)
        a = (pb.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
        q = rng.uniform(0, 1, size=(n, K))
        r = (rng.random(n) < q[np.arange(n), a]).astype(float)
        qhat = np.clip(q + rng.normal(0, 0.2, size=(n, K)), 0, 1)
        arrays = dict(reward=r, action=a, pscore=pb[np.arange(n), a], action_dist=pe[:, :, None],
                      estimated_rewards_by_reg_model=qhat[:, :, None], position=np.zeros(n, dtype=int))
        for ours, theirs in pairs.items():
            est = ours(lambda_="auto")
            obp = theirs(lambdas=list(est.candidates()), tuning_method="slope")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                v_obp = obp.estimate_policy_value_with_tuning(**arrays)
            lam = tuned_lambdas([est], **arrays)[est.estimator_name]
            row = worst[ours.__name__]
            row[0] += 1
            row[1] += lam != obp.best_hyperparam
            row[2] = max(row[2], abs(est.estimate_policy_value(**arrays) - v_obp))
    bad = False
    for name, (trials, mismatches, diff) in worst.items():
        print(f"{name:40s} {trials} logs: lambda differs in {mismatches}, max |estimate - OBP| = {diff:.1e}")
        bad |= mismatches > 0 or diff > 1e-12
    return int(bad)


if __name__ == "__main__":
    sys.exit(main())
