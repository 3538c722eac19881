"""Russac, Vernade & Cappé (NeurIPS 2019)'s two non-stationary linear bandits, on scm=russac_abrupt
and scm=russac_smooth: dynamic regret of LinUCB, D-LinUCB and SW-LinUCB over seeds.

    python scripts/russac.py --seeds 10 --json russac.json

Their setting: d = 2, K = 50 fresh actions per decision, N(0, 1) noise, T = 6,000, one shared
parameter (``shared=True``), lambda = 0.1, delta = 0.01, S = 1, alpha = 1; D-LinUCB's
gamma = 1 - (B_T / (d T))^(2/3) and SW-LinUCB's window (d T / B_T)^(2/3), B_T the path length
of theta (4 + sqrt(2) abrupt, pi / 2 smooth); LinUCB is the same radius without forgetting
(Abbasi-Yadkori et al. 2011's OFUL radius: D-LinUCB with gamma = 1).
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from recsim_causal.agents import DLinUCB, SWLinUCB
from recsim_causal.scm import World

D, K, T = 2, 50, 6000
B_T = {"russac_abrupt": 4 + math.sqrt(2), "russac_smooth": math.pi / 2}
COMMON = dict(lambda_=0.1, sigma=1.0, S=1.0, L=1.0, delta=0.01, alpha=1.0, shared=True)


def agents(scm: str, seed: int) -> dict:
    gamma = 1 - (B_T[scm] / (D * T)) ** (2 / 3)
    window = int(round((D * T / B_T[scm]) ** (2 / 3)))
    return {"LinUCB": DLinUCB(K, K * D, gamma=1.0, seed=seed, **COMMON),
            "D-LinUCB": DLinUCB(K, K * D, gamma=gamma, seed=seed, **COMMON),
            "SW-LinUCB": SWLinUCB(K, K * D, window=window, seed=seed, **COMMON)}


def run(scm: str, seed: int) -> dict[str, np.ndarray]:
    """The cumulative dynamic regret curve of each agent: the same users (actions, noise) for all."""
    world = World(scm, n_items=K, seed=0, dtype="float64")
    rng = np.random.default_rng([seed, 21])
    users = [world.sample_users(1, rng, t) for t in range(T)]
    out = {}
    for name, agent in agents(scm, seed).items():
        act_rng = np.random.default_rng([seed, 22])
        regret = np.empty(T)
        for t, u in enumerate(users):
            x = world.observe(u).astype(np.float64)
            a, _ = agent.act(x, act_rng)
            outcome = world.respond(u, a)
            best = world.expected_reward(u).max()
            regret[t] = best - outcome.expected_reward[0]
            agent.update(x, a, outcome.reward)
        out[name] = np.cumsum(regret)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    result = {}
    for scm in ("russac_abrupt", "russac_smooth"):
        curves = [run(scm, s) for s in range(args.seeds)]
        result[scm] = {name: {"mean": float(np.mean([c[name][-1] for c in curves])),
                              "sd": float(np.std([c[name][-1] for c in curves], ddof=1)) if args.seeds > 1 else 0.0,
                              "curve": np.mean([c[name] for c in curves], axis=0)[::100].tolist()}
                       for name in curves[0]}
        for name, r in result[scm].items():
            print(f"{scm:14s} {name:10s} dynamic regret at T={T}: {r['mean']:8.1f} +- {r['sd']:.1f} ({args.seeds} seeds)")
    if args.json:
        from recsim_causal.io import write_json

        write_json(args.json, result)


if __name__ == "__main__":
    main()
