#!/usr/bin/env python
"""Off-policy learners against the exact truth, beside OBP 0.5.7's ``IPWLearner`` on the same log.

    mkdir -p /tmp/obp && cd /tmp/obp && pip download --no-deps --no-binary=:all: \\
        --ignore-requires-python obp==0.5.7 && tar xzf obp-0.5.7.tar.gz
    OBP_SRC=/tmp/obp/obp-0.5.7 python scripts/offline_obp.py [--n-rounds 20000] [--seed 0] [--out FILE]

The default world (K = 100 items), a LinUCB logger trained online on 20,000 users and mixed with
epsilon = 0.2 uniform exploration, logs ``--n-rounds`` rounds. Every learner of
:func:`recsim_causal.learn.fit` learns on the whole log (seconds of wall time shown), and so does
OBP's ``IPWLearner(base_classifier=LogisticRegression())`` on the log's OBP arrays (``to_obp(log)``),
when ``OBP_SRC`` points at the unpacked OBP source (only ``obp/utils.py``,
``obp/ope/regression_model.py`` and ``obp/policy/{policy_type,base,offline}.py`` are loaded; OBP
is not a dependency). Each policy's value V(pi) = E_x sum_a pi(a|x) E[r | x, do(a)] is exact
given the users, on 100,000 fresh users (its standard error over users shown). ``--out``: the
table is also written to FILE (``scripts/offline_docs.py`` writes docs/generated/offline-obp.txt
this way).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recsim_causal.build import agent_config, make_agent  # noqa: E402
from recsim_causal.data import to_obp  # noqa: E402
from recsim_causal.ope.simulate import BATCH, collect, train  # noqa: E402
from recsim_causal.learn import fit  # noqa: E402
from recsim_causal.scm import World  # noqa: E402
from offline_table import emit, parser, timed_fits  # noqa: E402

LEARNERS = {
    "dm (logistic, greedy)": dict(learner="dm"),
    "ipw linear": dict(learner="ipw"),
    "snipw linear": dict(learner="snipw"),
    "dr linear": dict(learner="dr"),
    "ipw mlp": dict(learner="ipw", policy="mlp"),
    "dr mlp": dict(learner="dr", policy="mlp"),
}


def load_obp_ipw_learner(src: Path) -> type:
    """OBP's IPWLearner from its source files, without OBP's heavier imports (seaborn, ...)."""
    for name in ("obp", "obp.ope", "obp.policy"):
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(src / name.replace(".", "/"))]
        sys.modules[name] = pkg
    for name in ("obp.utils", "obp.ope.regression_model", "obp.policy.policy_type", "obp.policy.base",
                 "obp.policy.offline"):
        if name == "obp.policy.offline":
            sys.modules["obp.ope"].RegressionModel = sys.modules["obp.ope.regression_model"].RegressionModel
        spec = importlib.util.spec_from_file_location(name, src / (name.replace(".", "/") + ".py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules["obp.policy.offline"].IPWLearner


class OBPPolicy:
    """An OBP offline learner seen as a deterministic Policy: one-hot on its ``predict``."""

    def __init__(self, learner) -> None:
        self.learner, self.n_actions = learner, learner.n_actions

    def action_probs(self, contexts: np.ndarray) -> np.ndarray:
        return self.learner.predict(contexts)[:, :, 0]


def fresh_value(world: World, policy, n_users: int, seed: int) -> tuple[float, float]:
    """V(pi) on fresh users, exact given each user, and its standard error over users
    (``policy=None``: the oracle, the best item for every user)."""
    rng = np.random.default_rng([seed, 4])
    per_user = []
    for start in range(0, n_users, BATCH):
        users = world.sample_users(min(BATCH, n_users - start), rng)
        x = world.observe(users).astype(np.float64)
        q = world.expected_reward(users)
        per_user.append(q.max(axis=1) if policy is None else (policy.action_probs(x) * q).sum(axis=1))
    v = np.concatenate(per_user)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))


class Mixed:
    """The logger as it logged: (1 - epsilon) pi + epsilon uniform."""

    def __init__(self, policy, epsilon: float) -> None:
        self.policy, self.epsilon, self.n_actions = policy, epsilon, policy.n_actions

    def action_probs(self, contexts: np.ndarray) -> np.ndarray:
        return (1 - self.epsilon) * self.policy.action_probs(contexts) + self.epsilon / self.n_actions


def item_features(world: World) -> np.ndarray:
    """(K, m): every structured item feature of the catalog, side by side."""
    return np.concatenate(list(world.catalog.features.values()), axis=1)


def main() -> int:
    ap = parser(__doc__, "truth-users", 100000)
    ap.add_argument("--n-rounds", type=int, default=20000)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    world = World("default", n_items=100, seed=0, dtype="float64")
    logger = make_agent(agent_config("linucb"), n_actions=world.n_items, dim=world.obs_dim, seed=args.seed)
    train(world, logger, 20000, np.random.default_rng([args.seed, 3]))
    log, _ = collect(world, logger, args.n_rounds, args.epsilon, np.random.default_rng([args.seed, 2]),
                     show_progress=False)
    log.action_context = item_features(world)
    rows = [("logger (LinUCB, epsilon %.2g)" % args.epsilon, Mixed(logger, args.epsilon), None)]
    rows += timed_fits(LEARNERS, lambda kw: fit(log, seed=args.seed, **kw))
    src = Path(os.environ.get("OBP_SRC", ""))
    if (src / "obp" / "policy" / "offline.py").is_file():
        from sklearn.linear_model import LogisticRegression

        IPWLearner = load_obp_ipw_learner(src)
        bf = to_obp(log)
        start = time.perf_counter()
        obp = IPWLearner(n_actions=bf["n_actions"], base_classifier=LogisticRegression(max_iter=1000, random_state=0))
        obp.fit(context=bf["context"], action=bf["action"], reward=bf["reward"], pscore=bf["pscore"])
        rows.append(("OBP 0.5.7 IPWLearner (LogisticRegression)", OBPPolicy(obp), time.perf_counter() - start))
    else:
        print("OBP_SRC not set: OBP's IPWLearner skipped (see this script's doc)")
    table = [(name, *fresh_value(world, policy, args.truth_users, args.seed), wall) for name, policy, wall in rows]
    table.append(("oracle (best item per user)", *fresh_value(world, None, args.truth_users, args.seed), None))
    emit(f"default world, K=100, LinUCB logger epsilon {args.epsilon:g}, {args.n_rounds:,} logged rounds; "
         f"V(pi) exact on {args.truth_users:,} fresh users", "V(pi)", table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
