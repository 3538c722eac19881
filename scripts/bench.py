#!/usr/bin/env python
"""Speed figures against their targets: a printed table (median of repeats, ratios).

    python scripts/bench.py                  # everything (a few minutes on 2 cores)
    python scripts/bench.py --only env,agents --repeats 5 --json bench.json
    python scripts/bench.py --only ctr        # the BERT click model: AUC targets, rows/s

Targets are the issues' (on a 2-core machine); "x target" > 1 means the target is met.
References are figures measured on the same kind of machine for other tools.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gymnasium as gym  # noqa: E402

import recsim_causal.envs  # noqa: E402
from recsim_causal.agents import DLinThompson, DLinUCB, LinearThompsonSampling, LinUCB, SWLinUCB  # noqa: E402
from recsim_causal.scm import load_scm_config  # noqa: E402
from recsim_causal.threads import single_threaded_blas  # noqa: E402

ROWS: list[dict] = []


def median_rate(fn: Callable[[], int], repeats: int) -> float:
    """Median over ``repeats`` of (units done by ``fn``) / seconds, after one warm-up call."""
    fn()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        units = fn()
        rates.append(units / (time.perf_counter() - t0))
    return statistics.median(rates)


def paired_rate(fn: Callable[[], int], twin: Callable[[], int], repeats: int) -> tuple[float, float]:
    """(median rate of ``fn``, median over repeats of rate(fn) / rate(twin)), the two timed back
    to back in every repeat, after one warm-up call of each."""
    fn(), twin()
    rates, ratios = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        units = fn()
        t1 = time.perf_counter()
        twin_units = twin()
        t2 = time.perf_counter()
        rates.append(units / (t1 - t0))
        ratios.append(rates[-1] / (twin_units / (t2 - t1)))
    return statistics.median(rates), statistics.median(ratios)


def row(group: str, name: str, value: float, unit: str, target: float | None, higher_is_better: bool = True,
        reference: str = "") -> None:
    """One figure; ``target`` None for a figure reported for information (e.g. a GPU target run on CPU)."""
    ratio = None if target is None else (value / target if higher_is_better else target / value)
    ROWS.append(dict(group=group, name=name, value=value, unit=unit, target=target, ratio=ratio,
                     higher_is_better=higher_is_better, reference=reference))
    goal = "(information)" if target is None else f"target {'>=' if higher_is_better else '<='} {target:,} ({ratio:.2f}x)"
    print(f"  {name:<58} {value:>14,.3f} {unit:<14} {goal} {reference}", flush=True)


# ----------------------------------------------------------------------------- envs


def bench_env(repeats: int) -> None:
    print("environments (K = 100 items, observed dim 16)")
    rng = np.random.default_rng(0)
    n = 4096
    venv = gym.make_vec(recsim_causal.envs.BANDIT_ID, num_envs=n, vectorization_mode="vector_entry_point")
    venv.reset(seed=0)
    acts = [rng.integers(0, 100, n) for _ in range(16)]

    def vec_steps(env=venv, steps=50):
        for t in range(steps):
            env.step(acts[t % 16])
        return steps * n

    row("env", "Bandit-v0 vector, N=4096, expected_reward included", median_rate(vec_steps, repeats),
        "user-steps/s", 1_000_000, reference="(RecSim 1.4k-6.7k, RecoGym 7-9k, SARDINE 8-11k users/s)")

    env = gym.make(recsim_causal.envs.BANDIT_ID)
    env.reset(seed=0)

    def single(users=20_000):
        for i in range(users):
            env.reset()
            env.step(i % 100)
        return users

    row("env", "Bandit-v0 single via gym.make, reset()+step() per user", median_rate(single, repeats),
        "users/s", 15_000)

    senv = gym.make_vec(recsim_causal.envs.SESSION_ID, num_envs=n, vectorization_mode="vector_entry_point")
    senv.reset(seed=0)
    row("env", "Session-v0 vector, N=4096", median_rate(lambda: vec_steps(senv, 30), repeats), "user-steps/s", 300_000)


# ----------------------------------------------------------------------------- backends


def vector_rate(backend: str, n_items: int, oracle: str, repeats: int, n: int = 4096, threads: int | None = 1,
                device: str = "cpu", steps: int | None = None) -> float:
    """user-steps/s of the vector Bandit-v0 on ``backend`` (torch on ``device``, with ``threads``
    CPU threads, the env's ``threads=``; None leaves torch's setting), median of ``repeats`` after
    a warm-up."""
    import torch

    kw = {"device": device, "threads": threads} if backend == "torch" else {}
    venv = gym.make_vec(recsim_causal.envs.BANDIT_ID, num_envs=n, vectorization_mode="vector_entry_point",
                        n_items=n_items, backend=backend, oracle=oracle, **kw)
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    acts = [rng.integers(0, n_items, n) for _ in range(8)]
    if backend == "torch":
        acts = [torch.as_tensor(a, device=device) for a in acts]
    steps = steps or max(3, min(50, int(2e8 // (n * (n_items if oracle == "full" else 100)))))
    cuda = backend == "torch" and device.startswith("cuda")

    def run():
        for t in range(steps):
            venv.step(acts[t % 8])
        if cuda:
            torch.cuda.synchronize()
        return steps * n

    return median_rate(run, repeats)


def bench_busy_cores(repeats: int) -> None:
    """The same step while another process keeps every core busy: torch's default (a thread per
    core) spins at its barriers; one thread (the env's default ``threads=1``) does not."""
    import multiprocessing as mp

    import torch

    print(f"Busy cores: vector Bandit-v0, N=4096, K=100, oracle=full, while {os.cpu_count()} other "
          "processes spin (torch CPU threads: the env's default 1 vs torch's default)")
    spinners = [mp.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)]
    for proc in spinners:
        proc.start()
    try:
        rates = {"numpy": vector_rate("numpy", 100, "full", repeats)}
        for threads in (1, None):
            rates[threads] = vector_rate("torch", 100, "full", repeats, threads=threads)
    finally:
        for proc in spinners:
            proc.kill()
    row("busy", "numpy", rates["numpy"], "user-steps/s", None)
    row("busy", "torch CPU, threads=1 (the default)", rates[1], "user-steps/s", None,
        reference=f"({rates[1] / rates[None]:.1f}x torch's default)")
    row("busy", f"torch CPU, threads=None (torch's default: {torch.get_num_threads()})", rates[None], "user-steps/s",
        None)


def _spin() -> None:
    while True:
        pass


def bench_backends(repeats: int) -> None:
    print("World backends: vector Bandit-v0, N=4096, K=100 (numpy vs torch on the CPU; oracle 'full' = (N, K) info)")
    rates = {}
    for backend, threads in (("numpy", 1), ("torch", 1), ("torch", 2)):
        for oracle in ("full", "chosen"):
            rates[backend, threads, oracle] = rate = vector_rate(backend, 100, oracle, repeats, threads=threads)
            label = backend if backend == "numpy" else f"torch CPU, {threads} thread{'s' * (threads > 1)}"
            target = 3_000_000 if (backend, oracle) == ("torch", "full") else None
            ratio = "" if backend == "numpy" else f"({rate / rates['numpy', 1, oracle]:.2f}x numpy)"
            row("backends", f"{label}, oracle={oracle}", rate, "user-steps/s", target, reference=ratio)


def bench_ksweep(repeats: int) -> None:
    print("K sweep: vector Bandit-v0, N=4096 (oracle 'chosen': O(N (d + L)) per step; 'full': N x K)")
    for n_items in (100, 1_000, 10_000, 100_000, 1_000_000):
        for backend in ("numpy", "torch"):
            oracles = ("chosen", "full") if n_items <= 10_000 else ("chosen",)
            for oracle in oracles:
                target = 1_000_000 if (n_items == 100_000 and oracle == "chosen") else None
                rate = vector_rate(backend, n_items, oracle, max(1, repeats // 2))
                row("ksweep", f"K={n_items:>9,} {backend:<5} oracle={oracle}", rate, "user-steps/s", target,
                    reference="(main before: K=100 1.89M, 1k 485k, 10k 38k, 100k 2.7k)" if n_items == 100 and
                    backend == "numpy" and oracle == "full" else "")


# ----------------------------------------------------------------------------- agents


def bench_agents(repeats: int) -> None:
    print("agents")
    K, d = 50, 10
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4096, 1, d))
    theta = rng.normal(size=(K, d))

    def one_at_a_time(policy, decisions=10_000):
        for i in range(decisions):
            x = X[i % 4096]
            a, _ = policy.act(x, rng)
            policy.update(x, a, (x @ theta[a].T > 0).astype(float).ravel())
        return decisions

    row("agents", "LinUCB K=50 d=10, one act + one update at a time",
        median_rate(lambda: one_at_a_time(LinUCB(n_actions=K, dim=d, alpha=1.0, seed=0)), repeats),
        "decisions/s", 20_000, reference="(OBP LinUCB 4.2k/s, MABWiser 172/s)")
    row("agents", "LinearThompsonSampling K=50 d=10, one at a time",
        median_rate(lambda: one_at_a_time(LinearThompsonSampling(n_actions=K, dim=d, seed=0)), repeats),
        "decisions/s", 10_000, reference="(OBP LinTS 299/s)")
    # the adaptive agents, each timed back to back with its stationary twin in every repeat: the
    # median of the per-repeat ratios holds on a shared machine whose load moves every absolute figure
    for name, make, twin, twin_name in (
            ("DLinUCB (discounted, gamma=0.999)", lambda: DLinUCB(n_actions=K, dim=d, gamma=0.999, seed=0),
             lambda: LinUCB(n_actions=K, dim=d, alpha=1.0, seed=0), "LinUCB"),
            ("SWLinUCB (window 2,000)", lambda: SWLinUCB(n_actions=K, dim=d, window=2000, seed=0),
             lambda: LinUCB(n_actions=K, dim=d, alpha=1.0, seed=0), "LinUCB"),
            ("DLinThompson (gamma=0.999)", lambda: DLinThompson(n_actions=K, dim=d, gamma=0.999, seed=0),
             lambda: LinearThompsonSampling(n_actions=K, dim=d, seed=0), "LinTS")):
        rate, ratio = paired_rate(lambda make=make: one_at_a_time(make(), 5000),
                                  lambda twin=twin: one_at_a_time(twin(), 5000), repeats)
        row("agents", f"{name} K=50 d=10, one at a time", rate, "decisions/s", 10_000,
            reference=f"({ratio:.2f}x {twin_name}, timed back to back)")

    # the setting (K=50, d=10: the default world observed through 10 columns), then ours
    ten_columns = load_scm_config("default") | {"observed": ["taste_signal", "price_sensitivity", "activity"]}
    for n_items, scm, target in ((50, ten_columns, 300_000), (100, "default", None)):
        n = 1024
        venv = gym.make_vec(recsim_causal.envs.BANDIT_ID, num_envs=n, vectorization_mode="vector_entry_point", n_items=n_items, scm=scm)
        obs, _ = venv.reset(seed=0)
        agent = LinUCB(n_actions=n_items, dim=obs.shape[1], alpha=1.0, seed=0)

        def in_env(steps=50, venv=venv, agent=agent):
            nonlocal obs
            for _ in range(steps):
                a, _ = agent.act(obs, rng)
                nxt, r, _, _, _ = venv.step(a)
                agent.update(obs, a, r)
                obs = nxt
            return steps * n

        row("agents", f"LinUCB batched in the vector env, 1024 users/step (K={n_items}, d={obs.shape[1]})",
            median_rate(in_env, repeats), "decisions/s", target)


# ----------------------------------------------------------------------------- OPE


def bench_ope(repeats: int) -> None:
    from recsim_causal.ope.bench import bench_bootstrap, bench_dense, bench_light

    print("off-policy evaluation")
    dense = bench_dense(n=1_000_000, K=100, repeats=repeats)
    row("ope", "8 estimators, 1M rounds x 100 actions, dense (n, K) inputs", dense["seconds"], "s", 1.0,
        higher_is_better=False, reference=f"(OBP 0.5.7: 6.6 s; OBP-style numpy here: {dense['obp_style_seconds']:.2f} s)")
    light = bench_light(n=10_000_000, repeats=repeats)
    row("ope", "8 estimators, memory-light path, 10M rounds", light["seconds"], "s", 2.0, higher_is_better=False)
    peak = (light["peak_bytes"] + light["input_bytes"]) / 2**30
    row("ope", "  peak memory (inputs + work)", peak, "GiB", 2.0, higher_is_better=False)
    boot = bench_bootstrap(n=1_000_000, B=1000, which="dr")
    row("ope", "bootstrap CI, 1,000 resamples on 1M rounds (DR)", boot["seconds"], "s", 10.0,
        higher_is_better=False, reference="(OBP: 100 resamples in 7.3 s)")


# ----------------------------------------------------------------------------- slates and sessions


def _timed(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_slate(repeats: int) -> None:
    from recsim_causal.agents.slate import PlackettLuceSlate
    from recsim_causal.ope import (SelfNormalizedSlateIndependentIPS, SelfNormalizedSlateRewardInteractionIPS,
                                   SelfNormalizedSlateStandardIPS, SlateCascadeDoublyRobust, SlateIndependentIPS,
                                   SlateRewardInteractionIPS, SlateStandardIPS, estimate_all_slate, slate_long_format)

    print("slate OPE (K=100 items, L=5 slots)")
    rng = np.random.default_rng(0)
    n, K, L = 1_000_000, 100, 5
    ratio = lambda shape: rng.uniform(0.2, 1.0, shape)  # noqa: E731
    cascade, e_cascade = np.cumprod(ratio((n, L)), axis=1), np.cumprod(ratio((n, L)), axis=1)
    arrays = slate_long_format(reward=rng.binomial(1, 0.1, (n, L)).astype(float), pscore=cascade[:, -1],
                               evaluation_policy_pscore=e_cascade[:, -1], pscore_cascade=cascade,
                               evaluation_policy_pscore_cascade=e_cascade, pscore_item_position=ratio((n, L)),
                               evaluation_policy_pscore_item_position=ratio((n, L)))
    six = [c(len_list=L) for c in (SlateStandardIPS, SlateIndependentIPS, SlateRewardInteractionIPS,
                                   SelfNormalizedSlateStandardIPS, SelfNormalizedSlateIndependentIPS,
                                   SelfNormalizedSlateRewardInteractionIPS)]
    row("slate", "6 slate IPS estimators, 1M logged slates (5M rows), estimates",
        _timed(lambda: estimate_all_slate(six, intervals=False, **arrays), repeats), "s", None)
    row("slate", "  the same with bootstrap CIs, 100 resamples over slates",
        _timed(lambda: estimate_all_slate(six, n_bootstrap_samples=100, random_state=0, **arrays), 1), "s", None)
    m, K_dr = 100_000, 100  # Cascade-DR's q_hat and action_dist are (n * L, K): 100k slates = 2 x 400 MB
    sub = {k: v[: m * L] for k, v in arrays.items()}
    sub.update(action=rng.integers(0, K_dr, m * L), q_hat=rng.random((m * L, K_dr)),
               evaluation_policy_action_dist=np.full((m * L, K_dr), 1.0 / K_dr))
    cdr = SlateCascadeDoublyRobust(len_list=L, n_unique_action=K_dr)
    row("slate", "Cascade-DR, 100k logged slates (dense q_hat 500k x 100)",
        _timed(lambda: cdr.estimate_policy_value(**sub), repeats), "s", None)
    del sub
    probs = rng.dirichlet(np.full(K, 0.3), size=10_000) * 0.8 + 0.2 / K

    class _P:
        n_actions = K

    pl = PlackettLuceSlate(_P(), L)
    slates = pl.sample(probs, rng)
    row("slate", "exact Plackett-Luce propensities (3 kinds), 10k slates",
        _timed(lambda: pl.propensities(probs, slates), 1), "s", None,
        reference="(item-position marginals by quadrature dominate; linear in slates)")


def bench_session(repeats: int) -> None:
    from recsim_causal.ope import FQE, PDIS, SNPDIS, SNTIS, TIS, SeqDM, SeqDR, SNSeqDR, estimate_all_sequential

    print("session OPE (100k sessions of 1..20 steps)")
    rng = np.random.default_rng(0)
    n = 100_000
    lengths = rng.integers(1, 21, n)
    steps = int(lengths.sum())
    tid = np.repeat(np.arange(n), lengths)
    base = dict(trajectory_id=tid, reward=rng.binomial(1, 0.2, steps).astype(float), pscore=rng.uniform(0.2, 1, steps),
                evaluation_policy_pscore=rng.uniform(0.1, 1, steps))
    four = [TIS(), PDIS(), SNTIS(), SNPDIS()]
    row("session", f"TIS, PDIS, SNTIS, SNPDIS on 100k sessions ({steps / 1e6:.2f}M steps), estimates",
        _timed(lambda: estimate_all_sequential(four, intervals=False, **base), repeats), "s", None)
    row("session", "  the same with bootstrap CIs, 1,000 resamples over sessions",
        _timed(lambda: estimate_all_sequential(four, n_bootstrap_samples=1000, random_state=0, **base), 1), "s", None)
    K, d = 10, 13
    dist = rng.dirichlet(np.ones(K), steps)
    action = rng.integers(0, K, steps)
    dense = dict(base, action=action, evaluation_policy_action_dist=dist, state_action_value_prediction=rng.random((steps, K)))
    dense.pop("evaluation_policy_pscore")
    three = [SeqDM(), SeqDR(), SNSeqDR()]
    row("session", f"DM, DR, SNDR on 100k sessions (K={K}), estimates",
        _timed(lambda: estimate_all_sequential(three, intervals=False, **dense), repeats), "s", None)
    x = rng.normal(size=(steps, d))
    row("session", f"FQE (ridge per action, 20 iterations), 100k sessions, K={K}, d={d}",
        _timed(lambda: FQE(K).fit_predict(context=x, action=action, reward=base["reward"], trajectory_id=tid,
                                          evaluation_policy_action_dist=dist), 1), "s", None)


# ----------------------------------------------------------------------------- trustworthy OPE (issue 9)


def bench_ope_trust(repeats: int) -> None:
    """Reward models (ours vs scikit-learn) and exact propensities (issue 9)."""
    from recsim_causal.ope.bench import bench_reward_models

    print("trustworthy OPE: reward models and exact propensities")
    t = bench_reward_models(n=20_000, K=100, d=16, repeats=max(1, repeats // 3))
    for ours, theirs, what in (("ours_logistic_interaction", "sklearn_logistic_per_action", "logistic, interaction"),
                               ("ours_ridge_interaction", "sklearn_ridge_per_action", "ridge, interaction"),
                               ("ours_ridge_concat", "sklearn_ridge_concat", "ridge, concat")):
        row("ope_trust", f"reward model fit ({what}), 20k rounds x 100 actions", t[ours], "s", None,
            higher_is_better=False, reference=f"(scikit-learn: {t[theirs]:.2f} s, {t[theirs] / t[ours]:.1f}x slower)")
    row("ope_trust", "reward model fit (logistic, concat): scikit-learn's, used as is", t["sklearn_logistic_concat"], "s",
        None, higher_is_better=False)
    from recsim_causal.ope.simulate import train
    from recsim_causal.ope.propensity import marginal_action_probs, signal_quantile
    from recsim_causal.scm import World

    world = World("confounded", n_items=100, seed=0)
    logger = LinUCB(n_actions=100, dim=world.obs_dim + 1, alpha=1.0, seed=0)
    train(world, logger, 10_000, np.random.default_rng(0), privileged=True)
    x = world.observe(world.sample_users(2048, np.random.default_rng(1))).astype(np.float64)
    quantile = signal_quantile(world)[0]
    row("ope_trust", "exact P(a|x) by quadrature, confounded world, LinUCB logger, K=100",
        median_rate(lambda: (marginal_action_probs(logger, x, quantile), len(x))[1], max(1, repeats // 3)),
        "rows/s", None)


def bench_coverage(repeats: int) -> None:
    """The coverage report at the issue's size: R=100 logs of n=20,000 rounds (minutes)."""
    import tempfile

    from hydra import compose, initialize_config_dir

    from recsim_causal.experiment.coverage import run_coverage
    from recsim_causal.scm.world import CONF_DIR

    print("coverage report (experiment=ope_coverage), default world")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=ope_coverage", "wandb.mode=disabled"])
    with tempfile.TemporaryDirectory() as out:
        summary = run_coverage(cfg, out)
    t = summary["timing_s"]
    row("coverage", "R=100 x n=20,000, 4 targets x 11 estimators x 4 interval methods", t["total"], "s", 600.0,
        higher_is_better=False, reference=f"(replications {t['replications']:.0f} s, training + truth {t['train_and_truth']:.0f} s)")


# ----------------------------------------------------------------------------- PPO


def bench_ppo(repeats: int) -> None:
    """PPO env-steps/s on a numpy world (SB3's numpy rollouts) and on a torch world on the CPU
    (tensor rollouts: ``TorchRolloutPPO``), same settings, measured in alternation; and the
    rollout collection alone (timed by a callback from on_rollout_start to on_rollout_end)."""
    from stable_baselines3.common.callbacks import BaseCallback

    from recsim_causal.agents.ppo_bert import PPOBert

    class RolloutTimer(BaseCallback):
        def __init__(self):
            super().__init__()
            self.seconds = 0.0

        def _on_rollout_start(self) -> None:
            self._t0 = time.perf_counter()

        def _on_rollout_end(self) -> None:
            self.seconds += time.perf_counter() - self._t0

        def _on_step(self) -> bool:
            return True

    print("PPO over BERT item embeddings (CPU): numpy world vs torch world (tensor rollouts)")
    n_envs = 256
    steps = n_envs * 8 * 4
    runs = {}
    for backend in ("numpy", "torch"):
        kw = {"backend": "torch", "device": "cpu"} if backend == "torch" else {}
        venv = gym.make_vec(recsim_causal.envs.BANDIT_ID, num_envs=n_envs, vectorization_mode="vector_entry_point",
                            n_items=100, **kw)
        world = venv.unwrapped.world
        emb = np.random.default_rng(0).normal(size=(world.n_items, 384)).astype(np.float32)
        agent = PPOBert(n_actions=world.n_items, dim=venv.single_observation_space.shape[0],
                        item_embeddings=emb / np.linalg.norm(emb, axis=1, keepdims=True), n_steps=8, batch_size=512,
                        device="cpu", seed=0, progress=False)
        agent.learn(venv, total_timesteps=steps)  # warm-up
        runs[backend] = (agent, venv, {"learn": [], "rollout": []})
    for _ in range(max(1, repeats)):  # alternate, so that a busy machine slows both alike
        for agent, venv, rates in runs.values():
            timer = RolloutTimer()
            t0 = time.perf_counter()
            agent.learn(venv, total_timesteps=steps, callback=timer)
            rates["learn"].append(steps / (time.perf_counter() - t0))
            rates["rollout"].append(steps / timer.seconds)
    med = {b: {k: statistics.median(v) for k, v in r[2].items()} for b, r in runs.items()}
    row("ppo", f"PPO learn, {n_envs} envs, CPU (env-steps incl. updates)", med["numpy"]["learn"], "env-steps/s", None,
        reference="(numpy world; the >= 50k target is for a GPU: scripts/gpu_check.sh; "
                  "SB3 PPO over 64 DummyVecEnv envs: 4.1k/s on 16 CPU cores)")
    row("ppo", f"PPO learn, {n_envs} envs, CPU, torch world (tensor rollouts)", med["torch"]["learn"], "env-steps/s",
        None, reference=f"({med['torch']['learn'] / med['numpy']['learn']:.2f}x numpy world)")
    row("ppo", f"PPO rollout collection only, {n_envs} envs, CPU, numpy world", med["numpy"]["rollout"],
        "env-steps/s", None)
    row("ppo", f"PPO rollout collection only, {n_envs} envs, CPU, torch world", med["torch"]["rollout"],
        "env-steps/s", None, reference=f"({med['torch']['rollout'] / med['numpy']['rollout']:.2f}x numpy world)")


# ----------------------------------------------------------------------------- CTR


def bench_ctr(repeats: int) -> None:
    """The default ``experiment=ctr`` (its wall time and the issue's AUC targets) and the BERT
    click model's CPU fine-tuning throughput (training rows/s, finetune=last_layers)."""
    import tempfile

    from omegaconf import OmegaConf

    from recsim_causal.ctr import CTRModel
    from recsim_causal.experiment.ctr import log_clicks, run_ctr
    from recsim_causal.scm import World
    from recsim_causal.scm.world import CONF_DIR

    print("CTR: the BERT click model (default world, K = 100, experiment=ctr defaults)")
    exp = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "experiment" / "ctr.yaml"))
    cfg = {"seed": 0, "env": {"id": "RecSimCausal/Bandit-v0", "n_items": 100, "slate_size": 1}, "scm": "default",
           "experiment": {**exp, "settings": {m: {**v, "progress": False} for m, v in exp["settings"].items()}}}
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        summary = run_ctr(cfg, out, resolved=cfg)
        wall = time.perf_counter() - t0
    row("ctr", "experiment=ctr default (20k rounds, 4 models), wall time", wall, "s", 300.0, higher_is_better=False)
    cold, warm = summary["results"]["cold"]["models"], summary["results"]["warm"]["models"]
    best = max((m for m in warm if m != "bert"), key=lambda m: warm[m]["auc"])
    row("ctr", "cold-start AUC bert (target: logistic + 0.05)", cold["bert"]["auc"], "AUC",
        round(cold["logistic"]["auc"] + 0.05, 4), reference=f"(logistic {cold['logistic']['auc']:.4f})")
    row("ctr", "cold-start AUC bert (target: features - 0.05)", cold["bert"]["auc"], "AUC",
        round(cold["features"]["auc"] - 0.05, 4), reference=f"(features {cold['features']['auc']:.4f}, "
        f"ceiling {summary['results']['cold']['ceiling']['auc']:.4f})")
    row("ctr", f"warm AUC bert (target: best baseline {best} - 0.02)", warm["bert"]["auc"], "AUC",
        round(warm[best]["auc"] - 0.02, 4), reference=f"(ceiling {summary['results']['warm']['ceiling']['auc']:.4f})")
    row("ctr", "bert fine-tuning, last_layers (1 layer), 1 thread, in experiment=ctr",
        summary["training"]["bert"]["finetune_rows_per_s"], "rows/s", None)

    world = World("default", n_items=100, seed=0)
    fb = log_clicks(world, {"logger": {"agent": "linucb", "epsilon": 0.3}, "train_rounds": 2000, "n_rounds": 4096}, 0)
    for threads in (1, 2):
        for finetune in ("last_layers", "frozen"):
            settings = dict(model="bert", finetune=finetune, probe_epochs=0, n_epochs=1, batch_size=512,
                            threads=threads, progress=False)

            def fit(settings=settings):
                model = CTRModel(settings, 100, fb.context.shape[1], item_texts=world.catalog.texts)
                model.fit(fb.context, fb.action, fb.reward)
                return model.finetune_rows_per_s

            rates = [fit() for _ in range(max(1, repeats // 2))]
            row("ctr", f"bert training, finetune={finetune}, batch 512, {threads} thread(s)",
                statistics.median(rates), "rows/s", None)


# ----------------------------------------------------------------------------- streamed OPE
STREAM_K, STREAM_DIM = 10, 4


def write_stream_log(folder: Path, n_rows: int, *, chunk: int = 1 << 18, seed: int = 0) -> Path:
    """A one-item log of ``n_rows`` as a directory of Parquet files (one per ``chunk`` rows),
    written chunk by chunk: a softmax logger over K=10 items, Bernoulli clicks, the truth
    column. Never holds more than one chunk."""
    from recsim_causal.data import LoggedFeedback, save_parquet

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    coef = rng.normal(size=(STREAM_DIM, STREAM_K))
    for i, start in enumerate(range(0, n_rows, chunk)):
        n = min(chunk, n_rows - start)
        x = rng.normal(size=(n, STREAM_DIM))
        q = 1 / (1 + np.exp(-(x @ coef) / 2))
        logits = 2 * q
        pi_b = np.exp(logits - logits.max(axis=1, keepdims=True))
        pi_b /= pi_b.sum(axis=1, keepdims=True)
        a = (pi_b.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1).clip(max=STREAM_K - 1)
        rows = np.arange(n)
        save_parquet(LoggedFeedback(context=x, action=a, reward=(rng.random(n) < q[rows, a]).astype(np.float64),
                                    pscore=pi_b[rows, a], action_dist=pi_b, expected_reward=q, n_actions=STREAM_K),
                     folder / f"part-{i:05d}.parquet")
    return folder


_STREAM_CHILD = """
import resource, sys, time
from pathlib import Path
import numpy as np
from recsim_causal.agents import RandomPolicy
from recsim_causal.data import LoggedFeedback, load_parquet
from recsim_causal.ope import evaluate

def q_hat(x):  # a fixed reward model, the same for both paths
    return 1 / (1 + np.exp(-(x[:, :1] + np.linspace(-1, 1, 10))))

folder, mode = sys.argv[1], sys.argv[2]
kw = dict(targets={"uniform": RandomPolicy(n_actions=10)}, estimators=["ipw", "snipw", "dr"], ci=["normal", "bootstrap"],
          n_bootstrap_samples=200)
if mode == "memory":  # the whole log in memory, then the in-memory evaluation (timed alone)
    parts = [load_parquet(p) for p in sorted(Path(folder).glob("*.parquet"))]
    log = LoggedFeedback(n_actions=10, **{k: np.concatenate([getattr(p, k) for p in parts])
                                          for k in ("context", "action", "reward", "pscore", "action_dist",
                                                    "expected_reward")})
    t0 = time.perf_counter()
    res = evaluate(log, reward_model=q_hat(log.context), **kw)
else:
    t0 = time.perf_counter()
    res = evaluate(folder, reward_model=q_hat, **kw)
wall = time.perf_counter() - t0
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, wall, res.n_rounds)
"""


def stream_peak_rss(folder: Path, mode: str = "stream") -> tuple[float, float]:
    """(peak RSS in bytes, seconds) of a fresh process that evaluates the log at ``folder``
    (IPS, SNIPS, DR with a fixed reward model; normal and 200-replicate bootstrap intervals):
    streamed (``mode="stream"``) or loaded whole into memory first (``"memory"``)."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", _STREAM_CHILD, str(folder), mode], capture_output=True, text=True,
                         check=True, env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    rss, wall, _ = out.stdout.split()[-3:]
    return float(rss), float(wall)


def bench_stream(repeats: int, sizes: tuple[int, ...] = (1_000_000, 20_000_000)) -> None:
    """Peak memory of a streamed evaluation at 1M and 20M rows (target: the 20M peak within
    1.3x of the 1M one), and streamed rows/s against the in-memory path's (target: >= 0.5x)."""
    import shutil
    import tempfile

    print("streamed OPE (Parquet directory, record batches)")
    peaks, rates = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            folder = write_stream_log(Path(tmp) / f"log{n}", n)
            peaks[n], wall = stream_peak_rss(folder)
            rates[n] = n / wall
            row("stream", f"peak RSS, {n:,} rows (IPS/SNIPS/DR, normal + bootstrap)", peaks[n] / 2**20, "MiB", None)
            row("stream", f"  streamed rows/s, {n:,} rows", rates[n], "rows/s", None)
            if n == min(sizes):
                mem_peak, mem_wall = stream_peak_rss(folder, "memory")
                row("stream", f"  in memory: peak RSS, {n:,} rows", mem_peak / 2**20, "MiB", None)
                row("stream", f"  streamed / in-memory rows/s, {n:,} rows", rates[n] / (n / mem_wall), "x", 0.5)
            shutil.rmtree(folder)
    lo, hi = min(sizes), max(sizes)
    row("stream", f"peak RSS ratio {hi:,} / {lo:,} rows", peaks[hi] / peaks[lo], "x", 1.3, higher_is_better=False)


def bench_learn(repeats: int) -> None:
    """Off-policy learning of 20,000 logged rounds (default world, K = 100, LinUCB logger with
    epsilon 0.2): every learner of recsim_causal.learn.fit, target under a minute each; and the
    slate learners on 20,000 logged slates of 5."""
    from recsim_causal.learn import fit
    from recsim_causal.ope import simulate_log

    print("off-policy learning")
    log = simulate_log("default", "linucb", 20_000, epsilon=0.2, seed=0)
    for name, kw in (("ipw", {"learner": "ipw"}), ("snipw", {"learner": "snipw"}), ("dr", {"learner": "dr"}),
                     ("dr, MLP policy", {"learner": "dr", "policy": "mlp"}), ("dm", {"learner": "dm"})):
        seconds = _timed(lambda: fit(log, **kw), max(1, repeats // 5))
        row("learn", f"fit {name}, 20,000 rounds x 100 actions", seconds, "s", 60.0, higher_is_better=False)
    # slate logs (the slate world: slates of 5, position-based clicks): Plackett-Luce policies
    slates = simulate_log("position_bias", "linucb", 20_000, slate_size=5, epsilon=0.2, seed=0)
    for name, kw in (("ipw (RIPS)", {"learner": "ipw"}), ("dr (Cascade-DR)", {"learner": "dr"})):
        seconds = _timed(lambda: fit(slates, **kw), max(1, repeats // 5))
        row("learn", f"fit slate {name}, 20,000 slates of 5 x 100 actions", seconds, "s", 60.0, higher_is_better=False)


GROUPS = {"env": bench_env, "backends": bench_backends, "ksweep": bench_ksweep, "agents": bench_agents,
          "ope": bench_ope, "ope_trust": bench_ope_trust, "slate": bench_slate, "session": bench_session,
          "ppo": bench_ppo, "ctr": bench_ctr, "coverage": bench_coverage, "stream": bench_stream,
          "busy": bench_busy_cores, "learn": bench_learn}
SLOW_GROUPS = ("coverage", "stream")  # minutes: run with --only coverage / --only stream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(g for g in GROUPS if g not in SLOW_GROUPS),
                        help=f"comma-separated groups ({', '.join(GROUPS)}; default: all but {', '.join(SLOW_GROUPS)})")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        sys.exit(f"error: --only: unknown group '{unknown[0]}' (known: {', '.join(GROUPS)})")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numpy {np.__version__}, python {platform.python_version()}")
    with single_threaded_blas():  # as the runner does: small products, 1 thread
        for g in groups:
            GROUPS[g](args.repeats)
    judged = [r for r in ROWS if r["ratio"] is not None]
    print(f"\n{sum(r['ratio'] >= 1 for r in judged)} of {len(judged)} figures meet their target")
    if args.json:
        from recsim_causal.io import write_json

        write_json(args.json, {"machine": platform.node(), "rows": ROWS})


if __name__ == "__main__":
    main()
