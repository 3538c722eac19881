"""Slate OPE against the SCM's truth: ``scripts/run.py experiment=ope env=slate scm=position_bias``.

One straight path (OBP's dataset -> policy -> ope flow):

1. collect  train the logger online (one item per user, as in the one-item experiment), then log
            ``experiment.slate.n_rounds`` slates from a Plackett-Luce slate policy over its
            distribution mixed with ``experiment.logger.epsilon`` uniform exploration; the world
            answers with one reward per slot under its click model (``scm.slate.model``: pbm
            or cascade); each slate keeps its three exact propensities.
2. log      OBP's long format: one row per (slate, position).
3. estimate every slate estimator (SIPS, IIPS, RIPS, their self-normalized versions,
            Cascade-DR with a cross-fitted slot-reward model as q_hat) with intervals
            (bootstrap over slates) and weight diagnostics.
4. truth    V(pi) = E_x E_{s ~ pi(.|x)} sum_l E[r_l | x, do(s)], on the logged users with their
            latent variables, from the SCM's exact expected slot rewards: exact for greedy
            targets (one slate), for Plackett-Luce targets whose K!/(K-L)! slates can be
            enumerated, and under the pbm for the others too (the item-position marginals
            times each item's expected reward at each slot); under the cascade otherwise
            ``experiment.slate.truth_slates`` slates per user are drawn and their exact
            expected rewards averaged (``truth_se`` reports the sampling error, and
            ``truth_method`` says which).
5. report   ope.json, ope.png, the W&B run (:mod:`recsim_causal.experiment.ope_report`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsim_causal.agents.slate import (
    ENUMERATION_LIMIT,
    GreedySlate,
    PlackettLuceSlate,
    SlatePolicy,
    all_slates,
    pl_item_position_marginals,
    slate_probs_all,
)
from recsim_causal.build import agent_config, agent_label, make_agent, world_from_config
from recsim_causal.ope.evaluate import reward_model_features
from recsim_causal.ope.simulate import train
from recsim_causal.experiment.ope_paths import check_setting
from recsim_causal.experiment.ope_report import add_validity, target_result, write_report
from recsim_causal.experiment.tracking import Tracker
from recsim_causal.ope.diagnostics import PSCORE_ONE, validity_rows
from recsim_causal.ope import (
    SelfNormalizedSlateIndependentIPS,
    SelfNormalizedSlateRewardInteractionIPS,
    SelfNormalizedSlateStandardIPS,
    SlateCascadeDoublyRobust,
    SlateIndependentIPS,
    SlateRewardInteractionIPS,
    SlateStandardIPS,
    estimate_all_slate,
    fit_predict,
    slate_long_format,
)
from recsim_causal.scm import World

BATCH = 2048  # users per batch of logging and truth
SLATE_POLICIES = {"plackett_luce": PlackettLuceSlate, "greedy": GreedySlate}
ESTIMATORS = {
    "sips": SlateStandardIPS, "iips": SlateIndependentIPS, "rips": SlateRewardInteractionIPS,
    "snsips": SelfNormalizedSlateStandardIPS, "sniips": SelfNormalizedSlateIndependentIPS,
    "snrips": SelfNormalizedSlateRewardInteractionIPS, "cascade-dr": SlateCascadeDoublyRobust,
}  # fmt: skip
#: Slates per user enumerated for an exact Plackett-Luce truth (K!/(K-L)! at most this).
TRUTH_ENUMERATION_LIMIT = 2000


@dataclass
class SlateLog:
    """Logged slates, wide: contexts (n, d), slates (n, L), slot rewards (n, L), the logger's
    propensities ``pscore`` (n,), ``pscore_cascade`` (n, L), ``pscore_item_position`` (n, L)."""

    context: np.ndarray
    slates: np.ndarray
    slot_reward: np.ndarray
    pscore: np.ndarray
    pscore_cascade: np.ndarray
    pscore_item_position: np.ndarray

    @property
    def n_rounds(self) -> int:
        return len(self.slates)


def make_slate_policy(kind: str, policy: Any, slate_size: int, epsilon: float = 0.0, where: str = "slate") -> SlatePolicy:
    if kind not in SLATE_POLICIES:
        raise ValueError(f"{where}: unknown slate policy '{kind}' (known: {', '.join(SLATE_POLICIES)})")
    return SLATE_POLICIES[kind](policy, slate_size, epsilon)


def collect_slates(world: World, logger: SlatePolicy, n_rounds: int, rng: np.random.Generator) -> tuple[SlateLog, list]:
    """Log ``n_rounds`` slates of ``logger``; returns the log and the users of each batch."""
    parts: dict[str, list] = {k: [] for k in SlateLog.__dataclass_fields__}
    batches = []
    for start in range(0, n_rounds, BATCH):
        users = world.sample_users(min(BATCH, n_rounds - start), rng)
        x = world.observe(users).astype(np.float64)
        probs = logger.probs(x)
        slates = logger.sample(probs, rng)
        for k, v in logger.propensities(probs, slates).items():
            parts[k].append(v)
        parts["context"].append(x)
        parts["slates"].append(slates)
        parts["slot_reward"].append(world.respond(users, slates).slot_reward.astype(np.float64))
        batches.append(users)
    return SlateLog(**{k: np.concatenate(v) for k, v in parts.items()}), batches


def slate_truth(world: World, batches: list, log: SlateLog, target: SlatePolicy, n_draws: int,
                rng: np.random.Generator) -> tuple[float, float, str]:
    """(V(pi) on the logged users, its standard error, the method: exact | enumeration | marginals
    | monte_carlo). ``marginals``: a Plackett-Luce target under the position-based model, too
    large to enumerate, is exact from its item-position marginals, V = E_x sum_{a, l}
    P(a at l | x) E[r_l | x, a at l] (the slots do not interact), s.e. 0; under the cascade
    they do, and ``n_draws`` slates per user are drawn (``monte_carlo``)."""
    K, L = world.n_items, target.slate_size
    plackett_luce = isinstance(target, PlackettLuceSlate)
    enumerate_all = plackett_luce and math.perm(K, L) <= TRUTH_ENUMERATION_LIMIT
    all_probs = target.probs(log.context)
    by_marginals = (plackett_luce and not enumerate_all and world.slate_model == "pbm"
                    and bool(((all_probs > 0).sum(axis=1) >= L).all()))  # else PL fills uniformly
    slates_all = all_slates(K, L) if enumerate_all else None
    total, var_sum, start = 0.0, 0.0, 0
    for users in batches:
        probs = all_probs[start : start + users.n]
        start += users.n
        if isinstance(target, GreedySlate):
            total += world.expected_slate_reward(users, target.top(probs)).sum()
        elif by_marginals:
            total += (pl_item_position_marginals(probs, L) * world.expected_slot_rewards(users)).sum()
        elif enumerate_all:
            p = slate_probs_all(target, probs, slates_all)  # (B, S)
            rep = users.take(np.repeat(np.arange(users.n), len(slates_all)))
            value = world.expected_slate_reward(rep, np.tile(slates_all, (users.n, 1))).sum(axis=1)
            total += (p * value.reshape(users.n, -1)).sum()
        else:
            draws = np.stack([world.expected_slate_reward(users, target.sample(probs, rng)).sum(axis=1)
                              for _ in range(n_draws)], axis=1)
            total += draws.mean(axis=1).sum()
            var_sum += (draws.var(axis=1, ddof=1) / n_draws).sum()
    n = log.n_rounds
    method = ("exact" if isinstance(target, GreedySlate) else "enumeration" if enumerate_all else
              "marginals" if by_marginals else "monte_carlo")
    return total / n, math.sqrt(var_sum) / n, method


def slot_reward_model(log: SlateLog, n_actions: int, exp: dict, seed: int, world: World | None = None) -> np.ndarray:
    """Cross-fitted qhat_l(x, a) of the slot reward at each position, as Cascade-DR's q_hat:
    (n * L, K) in long format. (It conditions on the logger's items above, not the target's:
    a control variate; Cascade-DR stays unbiased with exact weights.)"""
    n, L = log.slates.shape
    pos = np.tile(np.arange(L), n)
    features, action_context = reward_model_features(exp.get("reward_features", "cross"), world)
    q = fit_predict(np.repeat(log.context, L, axis=0), log.slates.ravel(), log.slot_reward.ravel(), n_actions,
                    base_model=exp["reward_model"], features=features, action_context=action_context,
                    n_folds=exp["n_folds"], random_state=seed, position=pos, len_list=L)
    return q[np.arange(n * L), :, pos]


def run_ope_slate(resolved: dict, out_dir: str | Path, tracker: Tracker) -> dict:
    """The slate OPE experiment (module doc); writes ope.json and ope.png, returns the summary."""
    exp, env_cfg, seed = resolved["experiment"], resolved["env"], int(resolved.get("seed", 0))
    slate_cfg = exp.get("slate") or {}
    check_setting(exp, "slate", ("n_rounds", "truth_slates"), ESTIMATORS)
    start = time.perf_counter()
    L = env_cfg.get("slate_size", 1)
    world = world_from_config(resolved)
    K, dim = world.n_items, world.obs_dim
    logger_agent = make_agent(agent_config(exp["logger"]["agent"]), n_actions=K, dim=dim, seed=seed)
    train(world, logger_agent, exp["train_rounds"], np.random.default_rng([seed, 3]))
    logger = make_slate_policy(slate_cfg.get("logger_slate", "plackett_luce"), logger_agent, L,
                               exp["logger"].get("epsilon", 0.0), "experiment.slate.logger_slate")
    log, batches = collect_slates(world, logger, slate_cfg["n_rounds"], np.random.default_rng([seed, 2]))

    names = slate_cfg.get("estimators") or list(ESTIMATORS)
    estimators = [ESTIMATORS[nm](len_list=L, n_unique_action=K) if nm == "cascade-dr" else ESTIMATORS[nm](len_list=L)
                  for nm in names]
    logged = dict(reward=log.slot_reward, action=log.slates, pscore=log.pscore, pscore_cascade=log.pscore_cascade,
                  pscore_item_position=log.pscore_item_position)
    q_hat = slot_reward_model(log, K, exp, seed, world) if "cascade-dr" in names else None  # long format

    results, rows, warnings = {}, [], []
    first: dict[str, int] = {}
    for t_i, spec in enumerate(slate_cfg["targets"]):
        spec = {"agent": spec} if isinstance(spec, str) else dict(spec)
        where = f"experiment.slate.targets[{t_i}]"
        agent = make_agent(agent_config(spec["agent"], where=f"{where}.agent"), n_actions=K, dim=dim,
                           seed=seed + 1 + t_i, where=f"{where}.agent")
        train(world, agent, exp["train_rounds"], np.random.default_rng([seed, 10 + t_i]))
        target = make_slate_policy(spec.get("slate", "plackett_luce"), agent, L, spec.get("epsilon", 0.0),
                                   f"experiment.slate.targets[{t_i}].slate")
        name = spec.get("name") or f"{agent_label(spec['agent'])}/{target.kind}"
        if name in first:  # two targets with one label: refused, never merged
            raise ValueError(f"experiment.slate.targets: items {first[name]} and {t_i} are both labelled '{name}' "
                             "(give each its own name: {name: ..., agent: ..., slate: ...})")
        first[name] = t_i
        probs = target.probs(log.context)
        props = target.propensities(probs, log.slates)
        arrays = dict(logged, evaluation_policy_pscore=props["pscore"],
                      evaluation_policy_pscore_cascade=props["pscore_cascade"],
                      evaluation_policy_pscore_item_position=props["pscore_item_position"])
        if "cascade-dr" in names:
            arrays["evaluation_policy_action_dist"] = target.conditional_dists(probs, log.slates)
        long = slate_long_format(**arrays)
        long["q_hat"] = q_hat
        estimates, intervals = estimate_all_slate(estimators, alpha=exp["ci"]["alpha"], method=exp["ci"]["method"],
                                                  n_bootstrap_samples=exp["ci"]["n_bootstrap_samples"],
                                                  random_state=seed, **long)
        truth, truth_se, method = slate_truth(world, batches, log, target, slate_cfg["truth_slates"],
                                              np.random.default_rng([seed, 5, t_i]))
        weights = {"sips": props["pscore"] / log.pscore,
                   "iips": (props["pscore_item_position"] / log.pscore_item_position).ravel(),
                   "rips": (props["pscore_cascade"] / log.pscore_cascade).ravel()}
        block, r, w = target_result(name, estimates, intervals, truth, weights,
                                    {"truth_se": truth_se, "truth_method": method})
        # every row: interval_valid with its reason, and the diagnostics of the weights it uses
        by_name = dict(zip(names, estimators))
        shared = {"pscore_one_share": float(np.mean(log.pscore >= PSCORE_ONE))}
        validity = validity_rows(by_name, {n: e.weight_diagnostics(**long) for n, e in by_name.items()}, estimates,
                                 exp["ci"]["method"], shared=shared, reward_bounded=False)
        add_validity(block, r, validity)
        results[name], rows, warnings = block, rows + r, warnings + w

    summary = {
        "experiment": "ope", "setting": "slate", "scm": world.name, "click_model": world.slate_model,
        "seed": seed, "n_rounds": log.n_rounds, "n_items": K, "slate_size": L,
        "logger": {**exp["logger"], "slate": logger.kind}, "reward_model": exp["reward_model"],
        "item_position_pscores": ("exact enumeration" if math.perm(K - 1, L - 1) <= ENUMERATION_LIMIT else
                                  "exponential-race quadrature (relative error < 2e-10)") + " for Plackett-Luce; greedy: exact",
        "targets": results, "wall_s": time.perf_counter() - start,
    }
    return write_report(summary, rows, warnings, out_dir, tracker,
                        title=f"Slate OPE ({world.slate_model}, 95% CI) vs the SCM's truth")
