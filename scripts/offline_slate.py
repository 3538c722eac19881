#!/usr/bin/env python
"""Off-policy learners on a slate log against the SCM's truth: Plackett-Luce policies trained by
RIPS, its self-normalized form and Cascade-DR, beside the logger.

    python scripts/offline_slate.py [--n-rounds 20000] [--seed 0] [--out FILE]

The slate world (``env=slate scm=position_bias``: K = 100 items, slates of 5, position-based
clicks): a LinUCB logger, trained online on 20,000 users, deals Plackett-Luce slates over its
distribution mixed with epsilon = 0.2 uniform exploration, ``--n-rounds`` of them
(``simulate_log(..., slate_size=5)``). Every slate learner of :func:`recsim_causal.learn.fit`
learns on the whole log (linear scores over the items' features; seconds of wall time shown). Each policy's true value is the mean, over
``--truth-users`` fresh users (the same users for every policy), of the SCM's exact expected
clicks E[sum_l r_l | x, do(slate)] of one slate drawn from the policy (s.e. over users and
draws); the oracle deals every user the best slate (the top items by expected click, best
first). ``--out``: the table is also written to FILE (``scripts/offline_docs.py`` writes
docs/generated/offline-slate.txt this way).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recsim_causal.learn import fit, slate_value  # noqa: E402
from recsim_causal.learn.slate import best_slate_value  # noqa: E402
from recsim_causal.ope import simulate_log  # noqa: E402
from offline_table import emit, parser, timed_fits  # noqa: E402

LEARNERS = {
    "dm (logistic, greedy top-L)": dict(learner="dm"),
    "ipw (RIPS) linear": dict(learner="ipw"),
    "snipw (RIPS, baseline) linear": dict(learner="snipw"),
    "dr (Cascade-DR) linear": dict(learner="dr"),
}


def main() -> int:
    ap = parser(__doc__, "truth-users", 100000)
    ap.add_argument("--n-rounds", type=int, default=20000, help="logged slates")
    ap.add_argument("--n-items", type=int, default=100)
    ap.add_argument("--slate-size", type=int, default=5)
    args = ap.parse_args()
    K, L = args.n_items, args.slate_size
    log = simulate_log("position_bias", "linucb", args.n_rounds, slate_size=L, epsilon=args.epsilon, n_items=K,
                       seed=args.seed, train_rounds=20000)  # fmt: skip
    rows = [(f"logger (LinUCB, Plackett-Luce, epsilon {args.epsilon:g})", log.logger, None)]
    rows += timed_fits(LEARNERS, lambda kw: fit(log, seed=args.seed, **kw))
    users = lambda: np.random.default_rng([args.seed, 4])  # noqa: E731 - the same users for every policy
    table = [(name, *slate_value(log.world, policy, args.truth_users, users()), wall) for name, policy, wall in rows]
    table.append(("oracle (best slate per user)", *best_slate_value(log.world, args.truth_users, users()), None))
    emit(f"slate world (position-based clicks), K={K}, slates of {L}, LinUCB logger epsilon {args.epsilon:g}, "
         f"{args.n_rounds:,} logged slates; true value (expected clicks per slate) on {args.truth_users:,} "
         "fresh users", "V(pi)", table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
