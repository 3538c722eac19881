"""Slate logs: simulate them in a World, their exact truth, and their evaluation.

    from recsim_causal.ope import evaluate, simulate_log
    log = simulate_log("position_bias", "linucb", 5_000, slate_size=3, epsilon=0.2, n_items=10)
    result = evaluate(log, ["softmax", {"agent": "linucb", "slate": "greedy"}], ["sips", "iips", "rips"])

One straight path (OBP's dataset -> policy -> ope flow):

1. collect  the logger (trained online, one item per user) becomes a slate policy
            (``slate_policy``: Plackett-Luce over its distribution mixed with ``epsilon``
            uniform exploration, or greedy top-L); the world answers with one reward per slot
            under its click model (``scm.slate.model``: pbm or cascade); each slate keeps its
            three exact propensities.
2. log      OBP's long format: one row per (slate, position) with ``slate_id``, ``position``,
            ``pscore`` (the whole slate's), ``pscore_cascade`` and ``pscore_item_position``.
3. estimate every slate estimator (SIPS, IIPS, RIPS, their self-normalized versions,
            Cascade-DR with a cross-fitted slot-reward model as q_hat) with intervals
            (bootstrap over slates), each row marked ``interval_valid`` with its reason and the
            diagnostics of the weights it uses.
4. truth    V(pi) = E_x E_{s ~ pi(.|x)} sum_l E[r_l | x, do(s)], on the logged users with their
            latent variables, from the SCM's exact expected slot rewards: exact for greedy
            targets (one slate), for Plackett-Luce targets whose K!/(K-L)! slates can be
            enumerated, and under the pbm for the others too (the item-position marginals
            times each item's expected reward at each slot); under the cascade otherwise
            ``truth_slates`` slates per user are drawn and their exact expected rewards
            averaged (``truth_se`` reports the sampling error, ``truth_method`` says which).

Targets are slate policies: a :class:`~recsim_causal.agents.slate.SlatePolicy`, or a Policy, an
agent name or a mapping with ``_target_`` (a Plackett-Luce slate over it), or
``{"agent": ..., "slate": "plackett_luce" | "greedy", "epsilon": ..., "name": ...}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsim_causal.agents.slate import (
    GreedySlate,
    PlackettLuceSlate,
    SlatePolicy,
    all_slates,
    pl_item_position_marginals,
    slate_probs_all,
)
from recsim_causal.build import agent_label, is_policy, make_agent, resolve_agents
from recsim_causal.data import LoggedFeedback
from recsim_causal.ope.diagnostics import PSCORE_ONE, validity_rows
from recsim_causal.ope.evaluate import (
    EVALUATORS,
    OPEResult,
    add_method_intervals,
    interval_methods,
    reward_model_features,
    setting_estimators,
    setting_log,
    target_block,
)
from recsim_causal.ope.reward_models import fit_predict
from recsim_causal.ope.simulate import (
    DEFAULT_TRAIN_ROUNDS,
    SIMULATORS,
    Oracle,
    SimulatedLog,
    no_options,
    train,
    train_logger,
)
from recsim_causal.ope.slate import (
    SelfNormalizedSlateIndependentIPS,
    SelfNormalizedSlateRewardInteractionIPS,
    SelfNormalizedSlateStandardIPS,
    SlateCascadeDoublyRobust,
    SlateIndependentIPS,
    SlateRewardInteractionIPS,
    SlateStandardIPS,
    BaseSlateEstimator,
    estimate_all_slate,
    slate_long_format,
)
from recsim_causal.scm import World

__all__ = ["SlateLog", "SlateLogs", "SLATE_POLICIES", "ESTIMATORS", "make_slate_policy", "collect_slates",
           "slate_truth", "slot_reward_model", "wide_slates", "TRUTH_ENUMERATION_LIMIT"]

BATCH = 2048  # users per batch of logging and truth
SLATE_POLICIES = {"plackett_luce": PlackettLuceSlate, "greedy": GreedySlate}
ESTIMATORS = {
    "sips": SlateStandardIPS, "iips": SlateIndependentIPS, "rips": SlateRewardInteractionIPS,
    "snsips": SelfNormalizedSlateStandardIPS, "sniips": SelfNormalizedSlateIndependentIPS,
    "snrips": SelfNormalizedSlateRewardInteractionIPS, "cascade-dr": SlateCascadeDoublyRobust,
}  # fmt: skip
#: Slates per user enumerated for an exact Plackett-Luce truth (K!/(K-L)! at most this).
TRUTH_ENUMERATION_LIMIT = 2000
DEFAULT_TRUTH_SLATES = 32


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

    def feedback(self, n_actions: int, metadata: dict | None = None, *, first_slate_id: int = 0,
                 t: np.ndarray | None = None) -> LoggedFeedback:
        """The log in OBP's long format: one row per (slate, position), slates numbered from
        ``first_slate_id``; ``t`` (n,): each slate's world time (a world with dynamics). Every
        slate log is written through here (simulated, and the online experiment's)."""
        n, L = self.slates.shape
        return LoggedFeedback(
            context=np.repeat(self.context, L, axis=0), action=self.slates.ravel(), reward=self.slot_reward.ravel(),
            pscore=np.repeat(self.pscore, L), position=np.tile(np.arange(L), n),
            slate_id=np.repeat(np.arange(first_slate_id, first_slate_id + n), L),
            pscore_cascade=self.pscore_cascade.ravel(), pscore_item_position=self.pscore_item_position.ravel(),
            t=None if t is None else np.repeat(t, L), n_actions=n_actions, metadata=dict(metadata or {}))


def wide_slates(feedback: LoggedFeedback) -> SlateLog:
    """A long-format slate log back to wide arrays: every slate's rows contiguous, in position
    order 0..L-1, with one context (one-line errors otherwise)."""
    sid, pos, n_rows = feedback.slate_id, feedback.position, feedback.n_rounds
    L = int(pos.max()) + 1
    if n_rows % L or not (np.array_equal(pos, np.tile(np.arange(L), n_rows // L))
                          and np.array_equal(sid[::L].repeat(L), sid)):
        raise ValueError(f"log: a slate log needs each slate's {L} rows contiguous, in position order 0..{L - 1}")
    if len(np.unique(sid[::L])) != n_rows // L:
        raise ValueError("log.slate_id: a slate's rows must be contiguous (a slate_id appears in two places)")
    context = feedback.context[::L]
    if not np.array_equal(np.repeat(context, L, axis=0), feedback.context):
        raise ValueError("log.context: every row of a slate must carry the slate's context")
    missing = [k for k in ("pscore_cascade", "pscore_item_position") if getattr(feedback, k) is None]
    if missing:
        raise ValueError(f"log.{missing[0]}: required for slate estimators")
    shape = (n_rows // L, L)
    return SlateLog(context, feedback.action.reshape(shape), feedback.reward.reshape(shape), feedback.pscore[::L].copy(),
                    feedback.pscore_cascade.reshape(shape), feedback.pscore_item_position.reshape(shape))


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


def _truth_method(world: World, target: SlatePolicy, probs: np.ndarray) -> str:
    """exact (greedy: one slate) | enumeration | marginals (PL under the pbm) | monte_carlo."""
    K, L = world.n_items, target.slate_size
    if isinstance(target, GreedySlate):
        return "exact"
    plackett_luce = isinstance(target, PlackettLuceSlate)
    if plackett_luce and math.perm(K, L) <= TRUTH_ENUMERATION_LIMIT:
        return "enumeration"
    if plackett_luce and world.slate_model == "pbm" and bool(((probs > 0).sum(axis=1) >= L).all()):  # else PL fills uniformly
        return "marginals"
    return "monte_carlo"


def slate_values(world: World, batches: list, contexts: np.ndarray, target: SlatePolicy, n_draws: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    """Per user of ``batches`` (contexts: theirs, in order): the target's expected slate reward
    (n,), the Monte-Carlo variance of that value (n,; 0 unless the method is monte_carlo), and
    the method (see :func:`slate_truth`)."""
    all_probs = target.probs(contexts)
    method = _truth_method(world, target, all_probs)
    L = target.slate_size
    slates_all = all_slates(world.n_items, L) if method == "enumeration" else None
    values, mc_var, start = [], [], 0
    for users in batches:
        probs = all_probs[start : start + users.n]
        start += users.n
        var = np.zeros(users.n)
        if method == "exact":
            v = world.expected_slate_reward(users, target.top(probs)).sum(axis=1)
        elif method == "marginals":
            v = (pl_item_position_marginals(probs, L) * world.expected_slot_rewards(users)).sum(axis=(1, 2))
        elif method == "enumeration":
            p = slate_probs_all(target, probs, slates_all)  # (B, S)
            rep = users.take(np.repeat(np.arange(users.n), len(slates_all)))
            value = world.expected_slate_reward(rep, np.tile(slates_all, (users.n, 1))).sum(axis=1)
            v = (p * value.reshape(users.n, -1)).sum(axis=1)
        else:
            draws = np.stack([world.expected_slate_reward(users, target.sample(probs, rng)).sum(axis=1)
                              for _ in range(n_draws)], axis=1)
            v, var = draws.mean(axis=1), draws.var(axis=1, ddof=1) / n_draws
        values.append(np.asarray(v, np.float64))
        mc_var.append(var)
    return np.concatenate(values), np.concatenate(mc_var), method


def slate_truth(world: World, batches: list, log: SlateLog, target: SlatePolicy, n_draws: int,
                rng: np.random.Generator) -> tuple[float, float, str]:
    """(V(pi) on the logged users, its standard error, the method: exact | enumeration | marginals
    | monte_carlo). ``marginals``: a Plackett-Luce target under the position-based model, too
    large to enumerate, is exact from its item-position marginals, V = E_x sum_{a, l}
    P(a at l | x) E[r_l | x, a at l] (the slots do not interact), s.e. 0; under the cascade
    they do, and ``n_draws`` slates per user are drawn (``monte_carlo``)."""
    values, mc_var, method = slate_values(world, batches, log.context, target, n_draws, rng)
    n = len(values)
    return float(values.sum() / n), math.sqrt(float(mc_var.sum())) / n, method


def slot_reward_model(log: SlateLog, n_actions: int, *, base_model: str, n_folds: int, seed: int,
                      reward_features: str = "cross", world: World | None = None) -> np.ndarray:
    """Cross-fitted qhat_l(x, a) of the slot reward at each position, as Cascade-DR's q_hat:
    (n * L, K) in long format. (It conditions on the logger's items above, not the target's:
    a control variate; Cascade-DR stays unbiased with exact weights.)"""
    n, L = log.slates.shape
    pos = np.tile(np.arange(L), n)
    features, action_context = reward_model_features(reward_features, world)
    q = fit_predict(np.repeat(log.context, L, axis=0), log.slates.ravel(), log.slot_reward.ravel(), n_actions,
                    base_model=base_model, features=features, action_context=action_context,
                    n_folds=n_folds, random_state=seed, position=pos, len_list=L)
    return q[np.arange(n * L), :, pos]


@dataclass
class SlateData:
    """What a simulated slate log keeps besides its feedback: the wide log and the draws per
    user for a Monte-Carlo truth."""

    wide: SlateLog
    truth_slates: int = DEFAULT_TRUTH_SLATES


class SlateLogs:
    """Slates (Bandit-v0, slate_size > 1): simulate, truth, targets and evaluation."""

    # ------------------------------------------------------------------ targets
    def targets(self, specs: Any, L: int, *, world: World | None, n_actions: int, dim: int, seed: int,
                train_rounds: int | None, where: str = "targets", first: int = 0) -> dict[str, SlatePolicy]:
        """``{label: SlatePolicy}`` from specs (module doc); agents are trained in ``world`` for
        ``train_rounds`` (target i on its own users, seed (seed, 10 + i)), untrained without it."""
        if isinstance(specs, Mapping) and not {"_target_", "agent"} & set(specs):  # {label: spec}
            labelled = [(str(k), v) for k, v in specs.items()]
        elif isinstance(specs, (str, Mapping, SlatePolicy)) or is_policy(specs):
            labelled = [(None, specs)]
        else:
            labelled = [(None, spec) for spec in specs]
        if not labelled:
            raise ValueError(f"{where}: expected a non-empty list of slate targets")
        out: dict[str, SlatePolicy] = {}
        seen: dict[str, int] = {}
        for i, (label, spec) in enumerate(labelled, start=first):
            at = f"{where}[{i - first}]"
            if isinstance(spec, SlatePolicy):
                target, name = spec, label or getattr(spec, "name", None) or f"{agent_label(spec.policy)}/{spec.kind}"
            else:
                block = dict(spec) if isinstance(spec, Mapping) and "agent" in spec else {"agent": spec}
                unknown = set(block) - {"agent", "slate", "epsilon", "name"}
                if unknown:
                    raise ValueError(f"{at}.{sorted(unknown)[0]}: unknown key (known: agent, slate, epsilon, name)")
                (cfg,) = resolve_agents([block["agent"]], where=f"{at}.agent").values()
                agent = make_agent(cfg, n_actions=n_actions, dim=dim, seed=seed + 1 + i, where=f"{at}.agent")
                if world is not None and not is_policy(block["agent"]):
                    rounds = DEFAULT_TRAIN_ROUNDS if train_rounds is None else int(train_rounds)
                    train(world, agent, rounds, np.random.default_rng([seed, 10 + i]))
                target = make_slate_policy(block.get("slate", "plackett_luce"), agent, L, block.get("epsilon", 0.0),
                                           f"{at}.slate")
                name = label or block.get("name") or f"{agent_label(block['agent'])}/{target.kind}"
            if name in out:  # two targets with one label: refused, never merged
                raise ValueError(f"{where}: items {seen[name]} and {i - first} are both labelled '{name}' "
                                 "(give each its own name: {name: ..., agent: ..., slate: ...})")
            out[name], seen[name] = target, i - first
        return out

    def policy(self, log: SimulatedLog, spec: Any, index: int = 0) -> SlatePolicy:
        if isinstance(spec, SlatePolicy):
            return spec
        (target,) = self.targets([spec], log.world.slate_size, world=log.world, n_actions=log.world.n_items,
                                 dim=log.world.obs_dim, seed=log.seed, train_rounds=log.train_rounds,
                                 first=index).values()
        return target

    # ------------------------------------------------------------------ simulate and truth
    def simulate(self, world: World, logger: Any, n_rounds: int, *, epsilon: float, slate_size: int, seed: int,
                 train_rounds: int | None, show_progress: bool, slate_policy: str = "plackett_luce",
                 truth_slates: int = DEFAULT_TRUTH_SLATES, **options: Any) -> SimulatedLog:
        no_options(options, "slate logs")
        if world.slate_size != slate_size:
            raise ValueError(f"slate_size: the world shows slates of {world.slate_size}, got slate_size={slate_size} "
                             "(build the World with slate_size, or pass a preset name)")
        if world.privileged:
            raise ValueError(f"world: slate logs need a logger that sees only the logged context; "
                             f"{world.name} gives it {', '.join(world.privileged)}")
        agent = train_logger(world, logger, seed=seed, train_rounds=train_rounds)
        slates = make_slate_policy(slate_policy, agent, slate_size, epsilon, "slate_policy")
        wide, batches = collect_slates(world, slates, n_rounds, np.random.default_rng([seed, 2]))
        meta = {"logging_policy": agent_label(logger), "slate_policy": slates.kind, "epsilon": epsilon, "seed": seed,
                "world": world.config, "click_model": world.slate_model}
        rounds = DEFAULT_TRAIN_ROUNDS if train_rounds is None else int(train_rounds)
        return SimulatedLog(wide.feedback(world.n_items, meta), world, slates, epsilon, seed, rounds,
                            Oracle(users=batches), setting="slate", data=SlateData(wide, int(truth_slates)))

    def truth_block(self, log: SimulatedLog, target: SlatePolicy, index: int = 0) -> dict[str, Any]:
        """``{truth, truth_se, truth_method}`` on the logged users."""
        truth, se, method = slate_truth(log.world, log.oracle.users, log.data.wide, target, log.data.truth_slates,
                                        np.random.default_rng([log.seed, 5, index]))
        return {"truth": truth, "truth_se": se, "truth_method": method}

    def truth(self, log: SimulatedLog, policy: Any) -> float:
        return self.truth_block(log, self.policy(log, policy))["truth"]

    def population_truth(self, log: SimulatedLog, policy: Any, n_users: int, seed: int) -> tuple[float, float]:
        target, world = self.policy(log, policy), log.world
        rng = np.random.default_rng([seed, 4])
        batches = [world.sample_users(min(BATCH, n_users - s), rng) for s in range(0, n_users, BATCH)]
        contexts = np.concatenate([world.observe(u).astype(np.float64) for u in batches])
        values, mc_var, _ = slate_values(world, batches, contexts, target, log.data.truth_slates, rng)
        # over users (their spread) plus the draws' own error where the truth is Monte-Carlo
        var = values.var(ddof=1) / n_users + mc_var.sum() / n_users**2
        return float(values.mean()), float(math.sqrt(var))

    # ------------------------------------------------------------------ evaluate
    def evaluate(self, log: Any, targets: Any, estimators: Any = None, *, ci: Any = "bootstrap", alpha: float = 0.05,
                 reward_model: Any = "logistic", seed: int = 0, n_bootstrap_samples: int = 1000, n_folds: int = 2,
                 reward_features: str = "cross", train_rounds: int | None = None, sensitivity: Any = None,
                 fit_rows: Any = None, batch_rows: Any = None, **options: Any) -> OPEResult:
        """:func:`~recsim_causal.ope.evaluate` of a slate log (module doc)."""
        no_options(options, "slate logs")
        log, feedback, world = setting_log(log, sensitivity)
        simulated = isinstance(log, SimulatedLog)
        wide = log.data.wide if simulated else wide_slates(feedback)
        n, L = wide.slates.shape
        K = feedback.n_actions
        methods = interval_methods(ci)
        ests = setting_estimators(estimators, ESTIMATORS, BaseSlateEstimator, lambda cls, name: (
            cls(len_list=L, n_unique_action=K, estimator_name=name) if cls is SlateCascadeDoublyRobust
            else cls(len_list=L, estimator_name=name)), "slate")
        policies = self.targets(targets, L, world=world if simulated else None, n_actions=K, dim=feedback.dim_context,
                                seed=log.seed if simulated else seed,
                                train_rounds=(log.train_rounds if train_rounds is None else train_rounds)
                                if simulated else None)
        logged = dict(reward=wide.slot_reward, action=wide.slates, pscore=wide.pscore,
                      pscore_cascade=wide.pscore_cascade, pscore_item_position=wide.pscore_item_position)
        cascade_dr = any(isinstance(e, SlateCascadeDoublyRobust) for e in ests.values())
        q_hat = None
        if cascade_dr:
            if isinstance(reward_model, str):
                q_hat = slot_reward_model(wide, K, base_model=reward_model, n_folds=n_folds, seed=seed,
                                          reward_features=reward_features, world=world)
            elif reward_model is None:
                raise ValueError("reward_model: cascade-dr needs a reward model (a base model name or q-hat (n * L, K))")
            else:
                q_hat = np.asarray(reward_model, np.float64)
        shared = {"pscore_one_share": float(np.mean(wide.pscore >= PSCORE_ONE))}
        blocks = {}
        for t_i, (name, target) in enumerate(policies.items()):
            probs = target.probs(wide.context)
            props = target.propensities(probs, wide.slates)
            arrays = dict(logged, evaluation_policy_pscore=props["pscore"],
                          evaluation_policy_pscore_cascade=props["pscore_cascade"],
                          evaluation_policy_pscore_item_position=props["pscore_item_position"])
            if cascade_dr:
                arrays["evaluation_policy_action_dist"] = target.conditional_dists(probs, wide.slates)
            long = slate_long_format(**arrays)
            long["q_hat"] = q_hat
            intervals = {}
            for m in methods:
                estimates, intervals[m] = estimate_all_slate(list(ests.values()), alpha=alpha, method=m,
                                                             n_bootstrap_samples=n_bootstrap_samples,
                                                             random_state=seed, **long)
            truth = self.truth_block(log, target, t_i) if simulated else {"truth": None}
            weights = {"sips": props["pscore"] / wide.pscore,
                       "iips": (props["pscore_item_position"] / wide.pscore_item_position).ravel(),
                       "rips": (props["pscore_cascade"] / wide.pscore_cascade).ravel()}
            diags = {k: e.weight_diagnostics(**long) for k, e in ests.items()}
            validity = {m: validity_rows(ests, diags, estimates, m, shared=shared, reward_bounded=False)
                        for m in methods}
            block = target_block(name, estimates, intervals[methods[0]], truth.pop("truth"), weights,
                                 validity[methods[0]], method=methods[0], extra=truth)
            add_method_intervals(block, intervals, validity)
            blocks[name] = block
        return OPEResult.from_blocks(blocks, setting="slate", alpha=alpha, n_rounds=n)


SIMULATORS["slate"] = SLATES = SlateLogs()
EVALUATORS["slate"] = SLATES.evaluate
