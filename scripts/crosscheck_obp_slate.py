#!/usr/bin/env python
"""Cross-check the slate estimators against real Open Bandit Pipeline 0.5.7 (not a dependency).

    mkdir -p /tmp/obp && cd /tmp/obp && pip download --no-deps --no-binary=:all: \\
        --ignore-requires-python obp==0.5.7 && tar xzf obp-0.5.7.tar.gz
    OBP_SRC=/tmp/obp/obp-0.5.7 python scripts/crosscheck_obp_slate.py

Only OBP's ``obp/utils.py`` and ``obp/ope/estimators_slate.py`` are loaded (their imports:
numpy, pandas, scikit-learn, torch), so OBP's heavier dependencies are not needed. Prints each
estimator's value from both libraries on random arrays (complete, ragged and shuffled slates)
and exits 1 if any differs by more than 1e-12.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recsim_causal.ope import slate as ours  # noqa: E402


def load_obp(src: Path) -> types.ModuleType:
    for name in ("obp", "obp.ope"):
        pkg = types.ModuleType(name)
        pkg.__path__ = []
        sys.modules[name] = pkg
    for name, rel in (("obp.utils", "obp/utils.py"), ("obp.ope.estimators_slate", "obp/ope/estimators_slate.py")):
        spec = importlib.util.spec_from_file_location(name, src / rel)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules["obp.ope.estimators_slate"]


def main() -> int:
    src = Path(os.environ.get("OBP_SRC", ""))
    if not (src / "obp" / "ope" / "estimators_slate.py").is_file():
        sys.exit("error: OBP_SRC: expected the unpacked obp-0.5.7 source folder (see this script's doc)")
    warnings.filterwarnings("ignore")
    obp = load_obp(src)
    rng = np.random.default_rng(0)
    n, L, K = 300, 3, 5
    arr = dict(slate_id=np.repeat(np.arange(n), L), position=np.tile(np.arange(L), n),
               reward=rng.binomial(1, 0.3, n * L).astype(float), action=rng.integers(0, K, n * L),
               pscore=np.repeat(rng.uniform(0.05, 1, n), L), evaluation_policy_pscore=np.repeat(rng.uniform(0, 1, n), L),
               pscore_item_position=rng.uniform(0.05, 1, n * L), evaluation_policy_pscore_item_position=rng.uniform(0, 1, n * L),
               pscore_cascade=np.cumprod(rng.uniform(0.3, 1, (n, L)), 1).ravel(),
               evaluation_policy_pscore_cascade=np.cumprod(rng.uniform(0.3, 1, (n, L)), 1).ravel(),
               q_hat=rng.uniform(0, 1, n * L * K), evaluation_policy_action_dist=rng.dirichlet(np.ones(K), n * L).ravel())
    keep = rng.random(n * L) < 0.8
    perm = rng.permutation(int(keep.sum()))
    ragged = {k: (v if k in ("q_hat", "evaluation_policy_action_dist") else v[keep][perm]) for k, v in arr.items()}
    names = ["SlateStandardIPS", "SlateIndependentIPS", "SlateRewardInteractionIPS", "SelfNormalizedSlateStandardIPS",
             "SelfNormalizedSlateIndependentIPS", "SelfNormalizedSlateRewardInteractionIPS"]
    worst = 0.0
    for label, data in (("complete", arr), ("ragged+shuffled", ragged)):
        for name in names:
            a = getattr(obp, name)(len_list=L).estimate_policy_value(**data)
            b = getattr(ours, name)(len_list=L).estimate_policy_value(**data)
            worst = max(worst, abs(a - b))
            print(f"{label:<16} {name:<42} OBP {a:.15f}  recsim_causal {b:.15f}")
    a = obp.SlateCascadeDoublyRobust(len_list=L, n_unique_action=K).estimate_policy_value(**arr)
    b = ours.SlateCascadeDoublyRobust(len_list=L, n_unique_action=K).estimate_policy_value(**arr)
    worst = max(worst, abs(a - b))
    print(f"{'complete':<16} {'SlateCascadeDoublyRobust':<42} OBP {a:.15f}  recsim_causal {b:.15f}")
    print(f"largest difference: {worst:.3g}")
    return int(worst > 1e-12)


if __name__ == "__main__":
    sys.exit(main())
