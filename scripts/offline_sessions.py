#!/usr/bin/env python
"""Offline RL on logged sessions against the rollout truth: CQL and IQL beside DQN on the same data.

    python scripts/offline_sessions.py [--n-sessions 5000] [--n-steps 2000] [--seed 0] [--out FILE]

Session-v0 of the default world (K = 100, up to 20 steps, fatigue and leaving): a LinUCB logger,
trained online as a contextual bandit on session steps (20,000 steps), logs ``--n-sessions``
sessions mixed with epsilon = 0.2 uniform exploration. Each algorithm of
:func:`recsim_causal.learn.fit_sessions` learns on the whole log; each policy's true per-session
return is the mean of ``--truth-sessions`` on-policy sessions (its s.e. shown), the same seeded
users for every policy. Needs the ``offline-rl`` extra (TorchRL). ``--out``: the table is also
written to FILE (``scripts/offline_docs.py`` writes docs/generated/offline-sessions.txt this way).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from omegaconf import OmegaConf  # noqa: E402

from recsim_causal.data import LoggedFeedback  # noqa: E402
from recsim_causal.build import session_env  # noqa: E402
from recsim_causal.ope.session_log import run_sessions, train_on_sessions  # noqa: E402
from recsim_causal.build import agent_config, make_agent  # noqa: E402
from recsim_causal.learn import fit_sessions  # noqa: E402
from recsim_causal.scm.world import CONF_DIR  # noqa: E402
from offline_table import emit, parser, timed_fits  # noqa: E402


def main() -> int:
    ap = parser(__doc__, "truth-sessions", 20000)
    ap.add_argument("--n-sessions", type=int, default=5000)
    ap.add_argument("--n-steps", type=int, default=2000, help="gradient steps of each algorithm")
    args = ap.parse_args()
    env = session_env({"env": OmegaConf.to_container(OmegaConf.load(CONF_DIR / "env" / "session.yaml")), "scm": "default"},
                   2048)
    K, d = env.world.n_items, env.single_observation_space.shape[0]
    logger = make_agent(agent_config("linucb"), n_actions=K, dim=d, seed=args.seed)
    train_on_sessions(env, logger, 20000, [args.seed, 3])
    eps = args.epsilon
    behaviour = lambda x: (1 - eps) * logger.action_probs(x) + eps / K  # noqa: E731
    _, steps = run_sessions(env, behaviour, args.n_sessions, [args.seed, 2], record=True)
    log = LoggedFeedback(n_actions=K, **steps)
    rows = [(f"logger (LinUCB, epsilon {eps:g})", behaviour, None), ("logger without exploration", logger.action_probs, None)]
    fits = timed_fits({a: a for a in ("dqn", "cql", "iql")},
                      lambda a: fit_sessions(log, a, n_steps=args.n_steps, seed=args.seed))
    rows += [(name, policy.action_probs, wall) for name, policy, wall in fits]
    table = []
    for name, probs, wall in rows:
        returns, _ = run_sessions(env, probs, args.truth_sessions, [args.seed, 4])
        table.append((name, returns.mean(), returns.std(ddof=1) / np.sqrt(len(returns)), wall))
    emit(f"Session-v0, default world, K={K}: {args.n_sessions:,} logged sessions ({log.n_rounds:,} steps); "
         f"true return on {args.truth_sessions:,} sessions", "return", table, args.out, width=32, digits=3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
