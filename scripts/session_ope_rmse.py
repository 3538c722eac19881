"""Session OPE at the default Session-v0 size: RMSE, coverage and validity of every sequential
estimator over many logged datasets, against the rollout truth.

    python scripts/session_ope_rmse.py --jobs 2        # 20 seeds, writes docs/generated/session-rmse.txt
    python scripts/session_ope_rmse.py --seeds 3 --out /tmp/x.txt

The world, the logger (LinUCB, trained online on Session-v0 for ``--train-rounds`` steps) and
the targets (softmax, epsilon-greedy, random, trained the same way) are fixed; the truth of each
target is the mean return of ``--truth-sessions`` on-policy sessions. Each seed logs
``--sessions`` sessions of the logger mixed with epsilon = 0.2 uniform exploration and runs
every estimator with its interval (bootstrap over trajectories; MIS and MDR refit their weights
on each resample) and its validity mark (``recsim_causal.ope.diagnostics.validity_rows``).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recsim_causal.build import agent_config, make_agent  # noqa: E402
from recsim_causal.build import session_env  # noqa: E402
from recsim_causal.ope.session_log import item_features, run_sessions, train_on_sessions  # noqa: E402
from recsim_causal.ope import (  # noqa: E402
    MDR, MIS, PDIS, SNPDIS, SNTIS, TIS, FeatureFQE, SeqDM, SeqDR, SNSeqDR, StateMarginalWeights,
    estimate_all_sequential, refit_intervals, session_state_features,
)
from recsim_causal.ope.diagnostics import overlap_diagnostics, validity_rows  # noqa: E402

TARGETS = ("softmax", "epsilon_greedy", "random")
EPSILON = 0.2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--sessions", type=int, default=5000)
    ap.add_argument("--truth-sessions", type=int, default=100_000)
    ap.add_argument("--train-rounds", type=int, default=20_000)
    ap.add_argument("--n-bootstrap", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=1, help="datasets in parallel (processes)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "generated" / "session-rmse.txt")
    args = ap.parse_args()
    start = time.perf_counter()
    env_cfg = {"n_items": 100, "max_steps": 20}
    env = session_env({"env": env_cfg, "scm": "default"}, 2048)
    K, dim = env.world.n_items, env.single_observation_space.shape[0]
    logger = make_agent(agent_config("linucb"), n_actions=K, dim=dim, seed=0)
    train_on_sessions(env, logger, args.train_rounds, [0, 3])
    targets, truth = {}, {}
    for i, name in enumerate(TARGETS):
        targets[name] = make_agent(agent_config(name), n_actions=K, dim=dim, seed=1 + i)
        train_on_sessions(env, targets[name], args.train_rounds, [0, 10 + i])
        ret, _ = run_sessions(env, targets[name].action_probs, args.truth_sessions, [0, 4, i])
        truth[name] = (float(ret.mean()), float(ret.std(ddof=1) / math.sqrt(len(ret))))
    global _WORK
    _WORK = dict(env=env, K=K, logger=logger, targets=targets, truth=truth, items=item_features(env.world), args=args)
    names = ["tis", "pdis", "sntis", "snpdis", "dm", "dr", "sndr", "mis", "mdr"]
    err = {t: {n: [] for n in names} for t in TARGETS}
    cov = {t: {n: [] for n in names} for t in TARGETS}
    val = {t: {n: [] for n in names} for t in TARGETS}
    seeds = range(1, args.seeds + 1)
    with multiprocessing.get_context("fork").Pool(args.jobs) if args.jobs > 1 else _Serial() as pool:
        for done, (seed, n_steps, out) in enumerate(pool.imap_unordered(one_seed, seeds), 1):
            for t_name in TARGETS:
                for n in names:
                    e, c, v = out[t_name][n]
                    err[t_name][n].append(e)
                    cov[t_name][n].append(c)
                    val[t_name][n].append(v)
            print(f"seed {seed}: {n_steps:,} steps, {done} of {args.seeds} done, {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)
            write_table(args, K, env_cfg, truth, names, err, cov, val, done)  # after every seed: a run cut short still reports


class _Serial:
    """``Pool``'s imap_unordered in this process (``--jobs 1``)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap_unordered(self, fn, items):
        return map(fn, items)


_WORK: dict = {}


def one_seed(seed: int) -> tuple[int, int, dict]:
    """One logged dataset: {target: {estimator: (error, covered, marked valid)}}."""
    env, K, logger, targets, truth, items, args = (_WORK[k] for k in ("env", "K", "logger", "targets", "truth", "items",
                                                                      "args"))
    behaviour = lambda x: (1 - EPSILON) * logger.action_probs(x) + EPSILON / K  # noqa: E731
    _, log = run_sessions(env, behaviour, args.sessions, [seed, 2], record=True)
    tid, a, r = log["trajectory_id"], log["action"], log["reward"]
    phi = session_state_features(log["context"], a, r, tid, items)
    phi_w = session_state_features(log["context"], a, r, tid)
    fqe = FeatureFQE(items)
    out: dict = {}
    for t_name, agent in targets.items():
        dist = agent.action_probs(log["context"])
        ratio = dist[np.arange(len(a)), a] / log["pscore"]
        weights = StateMarginalWeights()
        refit = lambda c: weights.fit_predict(state_features=phi_w, ratio=ratio, trajectory_id=tid,  # noqa: E731
                                              sample_weight=c)
        q = fqe.fit_predict(state_features=phi, action=a, reward=r, trajectory_id=tid, evaluation_policy_action_dist=dist)
        ests = [TIS(), PDIS(), SNTIS(), SNPDIS(), SeqDM(), SeqDR(), SNSeqDR(), MIS(), MDR()]
        estimates, intervals, data = estimate_all_sequential(
            ests, trajectory_id=tid, action=a, reward=r, pscore=log["pscore"], evaluation_policy_action_dist=dist,
            state_action_value_prediction=q, state_marginal_weight=refit(None),
            n_bootstrap_samples=args.n_bootstrap, random_state=seed)
        marginal = [e for e in ests if e.needs_state_weight]
        intervals.update(refit_intervals(marginal, data, refit, n_bootstrap_samples=args.n_bootstrap, random_state=seed))
        for e in marginal:
            e.weights_refit()
        shared = overlap_diagnostics(data.weights()[data.unit, data.t], log["pscore"], K, action_dist=dist,
                                     pi_b=log["action_dist"])
        shared = {k: shared[k] for k in ("low_support_share", "pscore_one_share")}
        validity = validity_rows({e.estimator_name: e for e in ests},
                                 {e.estimator_name: e.weight_diagnostics(data) for e in ests}, estimates,
                                 "bootstrap", shared=shared, reward_bounded=False)
        v = truth[t_name][0]
        out[t_name] = {}
        for e in ests:
            n = e.estimator_name
            lo, hi = (intervals[n][k] for k in ("95.0% CI (lower)", "95.0% CI (upper)"))
            out[t_name][n] = (estimates[n] - v, bool(lo <= v <= hi), bool(validity[n]["interval_valid"]))
    return seed, len(tid), out


def write_table(args, K, env_cfg, truth, names, err, cov, val, done) -> None:
    lines = [f"Session-v0 default size: K={K}, {env_cfg['max_steps']} steps, {args.sessions:,} logged sessions per seed, "
             f"logger LinUCB + epsilon {EPSILON}, {done} of {args.seeds} seeds, truth from {args.truth_sessions:,} rollouts",
             ""]
    for t_name in TARGETS:
        pdis = math.sqrt(np.mean(np.square(err[t_name]["pdis"])))
        lines.append(f"{t_name}: truth {truth[t_name][0]:.3f} (s.e. {truth[t_name][1]:.3f})")
        lines.append(f"  {'estimator':<9} {'bias':>8} {'rmse':>8} {'rmse/pdis':>9} {'coverage':>8} {'valid':>6}")
        best = None
        for n in names:
            e = np.asarray(err[t_name][n])
            rmse = math.sqrt(np.mean(e * e))
            share = float(np.mean(val[t_name][n]))
            lines.append(f"  {n:<9} {e.mean():>+8.3f} {rmse:>8.3f} {rmse / pdis:>9.2f} {np.mean(cov[t_name][n]):>8.2f} "
                         f"{share:>6.2f}")
            if share >= 0.5 and (best is None or rmse < best[1]):
                best = (n, rmse)
        lines.append(f"  best estimator marked valid in at least half the seeds: "
                     + (f"{best[0]}, RMSE {best[1] / pdis:.2f} x PDIS's" if best else "none") + "")
        lines.append("")
    text = "\n".join(lines).rstrip() + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    if done == args.seeds:
        print(text)


if __name__ == "__main__":
    main()
