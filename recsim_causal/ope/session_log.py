"""Session logs: simulate them in Session-v0, their truth by on-policy rollouts, and their
evaluation with the sequential estimators.

    from recsim_causal.ope import evaluate, simulate_log
    log = simulate_log("default", "linucb", 2_000, env="session", epsilon=0.3, n_items=10,
                       env_kwargs={"max_steps": 5}, gamma=0.9)
    result = evaluate(log, ["random", "softmax"], ["pdis", "snpdis", "dr"])

One straight path:

1. collect  the logger (a name or mapping: trained online on Session-v0 steps, as a contextual
            bandit on the session observation) logs ``n_rounds`` sessions mixed with ``epsilon``
            uniform exploration: per step the observation, action, reward, pscore, the logger's
            distribution, step index and Gymnasium's done flags.
2. log      a LoggedFeedback with ``trajectory_id`` and ``step`` (sessions contiguous, in time
            order).
3. estimate every sequential estimator (TIS, PDIS, SNTIS, SNPDIS, DR, SNDR; DM with fitted-Q
            evaluation, which DR, SNDR and MDR use too; MIS and MDR with state-marginal weights),
            intervals by bootstrap over trajectories, each row marked ``interval_valid`` with its
            reason and the diagnostics of the weights it uses.
4. truth    V(pi) = E[sum_t gamma^t r_t] by on-policy rollouts of the target in the vector env,
            ``truth_trajectories`` sessions seeded from the log's seed (the env draws all
            exogenous noise from its seed, so the truth is reproducible); ``truth_se`` is
            reported, with a WARNING when it is not below 1/10 of the estimators' median
            standard error (CI width / 3.92).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsim_causal.agents.base import sample_categorical
from recsim_causal.build import agent_label, is_policy, make_agent, resolve_agents
from recsim_causal.data import LoggedFeedback
from recsim_causal.envs import SessionVectorEnv
from recsim_causal.ope.diagnostics import overlap_diagnostics, validity_rows
from recsim_causal.ope.evaluate import (
    EVALUATORS,
    OPEResult,
    add_method_intervals,
    interval_methods,
    setting_estimators,
    setting_log,
    target_block,
)
from recsim_causal.ope.sequential import (
    FQE,
    MDR,
    MIS,
    BaseSequentialEstimator,
    PerDecisionImportanceSampling,
    SelfNormalizedPDIS,
    SelfNormalizedSequentialDoublyRobust,
    SelfNormalizedTIS,
    SequentialDirectMethod,
    SequentialDoublyRobust,
    TrajectoryWiseImportanceSampling,
    estimate_all_sequential,
    refit_intervals,
)
from recsim_causal.ope.session_models import FeatureFQE, StateMarginalWeights, session_state_features
from recsim_causal.ope.simulate import DEFAULT_TRAIN_ROUNDS, SIMULATORS, Oracle, SimulatedLog, no_options
from recsim_causal.scm import World

__all__ = ["SessionLogs", "SESSIONS", "ESTIMATORS", "run_sessions", "train_on_sessions", "estimate_sessions",
           "item_features", "DEFAULT_TRUTH_TRAJECTORIES"]

BATCH = 2048
DEFAULT_TRUTH_TRAJECTORIES = 100_000
ESTIMATORS = {
    "dm": SequentialDirectMethod, "tis": TrajectoryWiseImportanceSampling, "pdis": PerDecisionImportanceSampling,
    "sntis": SelfNormalizedTIS, "snpdis": SelfNormalizedPDIS, "dr": SequentialDoublyRobust, "sndr": SelfNormalizedSequentialDoublyRobust,
    "mis": MIS, "mdr": MDR,
}  # fmt: skip

Probs = Callable[[np.ndarray], np.ndarray]



def run_sessions(env: SessionVectorEnv, probs_fn: Probs, n_sessions: int, seed: Any, *, gamma: float = 1.0,
                 record: bool = False, on_step: Callable | None = None) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """Run ``n_sessions`` sessions, each from a fresh user, acting by ``probs_fn`` ((B, d) -> (B, K)).

    Sessions run ``env.num_envs`` at a time (each slot's first session; the next-step autoreset
    is masked out). Batch b resets the env with seed ``(seed, b)``-derived entropy, and actions
    are drawn from a generator of the same seed, so runs are reproducible. Returns the
    discounted returns (n_sessions,) and, with ``record``, the steps: trajectory_id, step,
    context, action, reward, pscore, action_dist, terminated, truncated (time order within a
    session). ``on_step(x, a, r, alive)`` sees each step (online training).
    """
    B, T = env.num_envs, env.core.max_steps
    returns, steps = [], []
    for b in range(math.ceil(n_sessions / B)):
        ss = np.random.SeedSequence(np.random.SeedSequence(seed).entropy, spawn_key=(b,))
        rng = np.random.default_rng(ss)
        obs, _ = env.reset(seed=int(ss.generate_state(1)[0]))
        alive = np.ones(B, bool)
        ret = np.zeros(B)
        for t in range(T):
            x = obs.astype(np.float64)
            probs = probs_fn(x)
            a, ps = sample_categorical(probs, rng)
            obs, r, term, trunc, _ = env.step(a)
            r = np.asarray(r, np.float64)
            if on_step is not None:
                on_step(x[alive], a[alive], r[alive])
            if record:
                idx = np.flatnonzero(alive)
                steps.append(dict(trajectory_id=b * B + idx, step=np.full(idx.size, t), context=x[idx], action=a[idx],
                                  reward=r[idx], pscore=ps[idx], action_dist=probs[idx], terminated=term[idx],
                                  truncated=trunc[idx]))
            ret += alive * gamma**t * r
            alive &= ~(term | trunc)
            if not alive.any():
                break
        returns.append(ret)
    returns = np.concatenate(returns)[:n_sessions]
    if not record:
        return returns, None
    log = {k: np.concatenate([s[k] for s in steps]) for k in steps[0]}
    order = np.lexsort((log["step"], log["trajectory_id"]))  # sessions contiguous, in time order
    keep = log["trajectory_id"][order] < n_sessions
    return returns, {k: v[order][keep] for k, v in log.items()}


def train_on_sessions(env: SessionVectorEnv, agent: Any, n_steps: int, seed: Any) -> None:
    """Online training for about ``n_steps`` user-steps: the agent acts on each step's observation
    and learns from the immediate reward (a contextual bandit over session states)."""
    per_session = max(1.0, env.core.max_steps / 2)
    run_sessions(env, agent.action_probs, max(1, int(n_steps / per_session)), seed,
                 on_step=lambda x, a, r: agent.update(x, a, r) if len(a) else None)


def estimate_sessions(feedback: LoggedFeedback, dist: np.ndarray, estimators: list, *, gamma: float, fqe: dict,
                      ci: dict, seed: int, item_features: np.ndarray | None = None, fatigue_decay: float = 0.8,
                      weight_ridge: float = 1.0, weight_refits: int = 200, cache: dict | None = None
                      ) -> tuple[dict, dict, Any]:
    """Every sequential estimator of a target (``dist``: its (n_steps, K) distribution at the
    logged steps) on logged sessions, with intervals by ``ci`` (method, alpha,
    n_bootstrap_samples): (estimates, intervals, data).

    Q for DM, DR and MDR by fitted-Q evaluation: bilinear in state and item features
    (:class:`FeatureFQE` on :func:`session_state_features`) when ``item_features`` are given,
    one ridge per action otherwise. MIS and MDR: state-marginal weights regressed on the
    observation (:class:`StateMarginalWeights`), refit on ``weight_refits`` bootstrap resamples
    when the method is the bootstrap (their interval is then valid by the common rule). ``cache``
    (a dict kept across the targets of one log) keeps the features and FQE's factored Gram."""
    cache = {} if cache is None else cache
    a, r, tid = feedback.action, feedback.reward, feedback.trajectory_id
    arrays = dict(trajectory_id=tid, action=a, reward=r, pscore=feedback.pscore, evaluation_policy_action_dist=dist)
    if any(e.needs_q for e in estimators):
        fit = dict(action=a, reward=r, trajectory_id=tid, evaluation_policy_action_dist=dist, gamma=gamma)
        if item_features is not None:  # Q shared across items through their features
            if "fqe" not in cache:
                cache["phi"] = session_state_features(feedback.context, a, r, tid, item_features, decay=fatigue_decay)
                cache["fqe"] = FeatureFQE(item_features, ridge=fqe.get("ridge", 1.0), n_iterations=fqe.get("n_iterations"))
            q_hat = cache["fqe"].fit_predict(state_features=cache["phi"], **fit)
        else:
            q_hat = FQE(feedback.n_actions, ridge=fqe.get("ridge", 1.0), n_iterations=fqe.get("n_iterations")
                        ).fit_predict(context=feedback.context, **fit)
        arrays["state_action_value_prediction"] = q_hat
    marginal = [e for e in estimators if e.needs_state_weight]
    if marginal:
        # the weights regress on the observation alone: a richer class over-fits their heavy tails
        if "phi_w" not in cache:
            cache["phi_w"] = session_state_features(feedback.context, a, r, tid)
        ratio = dist[np.arange(len(dist)), a] / feedback.pscore
        model = StateMarginalWeights(ridge=weight_ridge)
        refit = lambda c: model.fit_predict(state_features=cache["phi_w"], ratio=ratio,  # noqa: E731
                                            trajectory_id=tid, sample_weight=c)
        arrays["state_marginal_weight"] = refit(None)
    estimates, intervals, data = estimate_all_sequential(
        estimators, gamma=gamma, alpha=ci["alpha"], method=ci["method"],
        n_bootstrap_samples=ci["n_bootstrap_samples"], random_state=seed, **arrays)
    if marginal and ci["method"] == "bootstrap" and weight_refits:
        intervals.update(refit_intervals(marginal, data, refit, gamma=gamma, alpha=ci["alpha"],
                                         n_bootstrap_samples=weight_refits, random_state=seed))
        for e in marginal:
            e.weights_refit()
    return estimates, intervals, data


def item_features(world: Any) -> np.ndarray | None:
    """(K, p) the world's item features (every item node, in name order), None without any."""
    values = world.item_values
    if not values:
        return None
    K = world.n_items
    return np.concatenate([np.asarray(values[k], np.float64).reshape(K, -1) for k in sorted(values)], axis=1)


@dataclass
class SessionData:
    """What a simulated session log keeps besides its feedback: the vector env its sessions ran
    in (the truth's rollouts run there too), the discount, the rollouts per truth, and what
    fitted-Q evaluation may use (the items' features, the env's fatigue decay)."""

    env: SessionVectorEnv
    gamma: float = 1.0
    truth_trajectories: int = DEFAULT_TRUTH_TRAJECTORIES
    item_features: np.ndarray | None = None
    fatigue_decay: float = 0.8


def _check_gamma(gamma: Any) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
        raise ValueError(f"gamma: expected a number in (0, 1], got {gamma!r}")
    return float(gamma)


class SessionLogs:
    """Sessions (Session-v0): simulate, truth by rollouts, targets and evaluation."""

    # ------------------------------------------------------------------ targets
    def targets(self, specs: Any, log: Any, *, n_actions: int, dim: int, seed: int, train_rounds: int | None,
                where: str = "targets", first: int = 0) -> dict[str, Any]:
        """``{label: Policy}``: Policy objects as given; names and mappings built for the log's
        observation and, on a SimulatedLog, trained online on sessions of its env for
        ``train_rounds`` user-steps (target i: seed + 1 + i, sessions seeded (seed, 10 + i))."""
        out = {}
        for i, (label, spec) in enumerate(resolve_agents(specs, where=where).items(), start=first):
            if is_policy(spec):
                out[label] = spec
                continue
            agent = make_agent(spec, n_actions=n_actions, dim=dim, seed=seed + 1 + i, where=f"{where}[{i - first}]")
            if isinstance(log, SimulatedLog):
                rounds = DEFAULT_TRAIN_ROUNDS if train_rounds is None else int(train_rounds)
                train_on_sessions(log.data.env, agent, rounds, [seed, 10 + i])
            out[label] = agent
        return out

    def policy(self, log: SimulatedLog, spec: Any, index: int = 0):
        if is_policy(spec):
            return spec
        (agent,) = self.targets([spec], log, n_actions=log.feedback.n_actions, dim=log.feedback.dim_context,
                                seed=log.seed, train_rounds=log.train_rounds, first=index).values()
        return agent

    # ------------------------------------------------------------------ simulate and truth
    def simulate(self, world: World, logger: Any, n_rounds: int, *, epsilon: float, slate_size: int, seed: int,
                 train_rounds: int | None, show_progress: bool, gamma: float = 1.0, env_kwargs: Mapping | None = None,
                 truth_trajectories: int = DEFAULT_TRUTH_TRAJECTORIES, **options: Any) -> SimulatedLog:
        no_options(options, "session logs")
        gamma = _check_gamma(gamma)
        if world.privileged:
            raise ValueError(f"world: session logs need a logger that sees only the observation; "
                             f"{world.name} gives it {', '.join(world.privileged)}")
        env = SessionVectorEnv(BATCH, world=world, **dict(env_kwargs or {}))
        K, dim = world.n_items, env.single_observation_space.shape[0]
        rounds = DEFAULT_TRAIN_ROUNDS if train_rounds is None else int(train_rounds)
        if is_policy(logger):
            policy = logger
            if train_rounds:
                train_on_sessions(env, policy, rounds, [seed, 3])
        else:
            (spec,) = resolve_agents([logger], where="logger").values()
            policy = make_agent(spec, n_actions=K, dim=dim, seed=seed, where="logger")
            train_on_sessions(env, policy, rounds, [seed, 3])
        behaviour = lambda x: (1 - epsilon) * policy.action_probs(x) + epsilon / K  # noqa: E731
        _, steps = run_sessions(env, behaviour, n_rounds, [seed, 2], gamma=gamma, record=True)
        meta = {"logging_policy": agent_label(logger), "epsilon": epsilon, "seed": seed, "gamma": gamma,
                "world": world.config, "env": {k: v for k, v in env.core.d.items() if isinstance(v, (int, float, str))}}
        feedback = LoggedFeedback(n_actions=K, **steps, metadata=meta)
        data = SessionData(env, gamma, int(truth_trajectories), item_features(world), float(env.core.d["fatigue_decay"]))
        return SimulatedLog(feedback, world, policy, epsilon, seed, rounds, Oracle(), setting="session", data=data)

    def truth_block(self, log: SimulatedLog, agent: Any, index: int = 0, n: int | None = None,
                    gamma: float | None = None) -> dict[str, Any]:
        """``{truth, truth_se, truth_trajectories}``: on-policy rollouts of ``agent``."""
        n = log.data.truth_trajectories if n is None else n
        returns, _ = run_sessions(log.data.env, agent.action_probs, n, [log.seed, 4, index],
                                  gamma=log.data.gamma if gamma is None else gamma)
        return {"truth": float(returns.mean()), "truth_se": float(returns.std(ddof=1) / math.sqrt(len(returns))),
                "truth_trajectories": len(returns)}

    def truth(self, log: SimulatedLog, policy: Any) -> float:
        return self.truth_block(log, self.policy(log, policy))["truth"]

    def population_truth(self, log: SimulatedLog, policy: Any, n_users: int, seed: int) -> tuple[float, float]:
        returns, _ = run_sessions(log.data.env, self.policy(log, policy).action_probs, n_users, [seed, 6],
                                  gamma=log.data.gamma)
        return float(returns.mean()), float(returns.std(ddof=1) / math.sqrt(len(returns)))

    # ------------------------------------------------------------------ evaluate
    def evaluate(self, log: Any, targets: Any, estimators: Any = None, *, ci: Any = "bootstrap", alpha: float = 0.05,
                 seed: int = 0, n_bootstrap_samples: int = 1000, train_rounds: int | None = None,
                 sensitivity: Any = None, gamma: float | None = None, fqe: Mapping | None = None,
                 weight_ridge: float = 1.0, weight_refits: int = 200, truth_trajectories: int | None = None,
                 reward_model: Any = None, reward_features: Any = None, n_folds: Any = None, fit_rows: Any = None,
                 batch_rows: Any = None, **options: Any) -> OPEResult:
        """:func:`~recsim_causal.ope.evaluate` of a session log (module doc). DM, DR, SNDR and MDR
        use fitted-Q evaluation (``fqe``: ridge, n_iterations), not ``reward_model``."""
        no_options(options, "session logs")
        log, feedback, _ = setting_log(log, sensitivity)
        simulated = isinstance(log, SimulatedLog)
        data = log.data if simulated else None
        gamma = _check_gamma(gamma if gamma is not None else data.gamma if simulated
                             else feedback.metadata.get("gamma", 1.0))
        methods = interval_methods(ci)
        ests = setting_estimators(estimators, ESTIMATORS, BaseSequentialEstimator,
                                  lambda cls, name: cls(estimator_name=name), "session")
        K = feedback.n_actions
        policies = self.targets(targets, log, n_actions=K, dim=feedback.dim_context,
                                seed=log.seed if simulated else seed,
                                train_rounds=(log.train_rounds if train_rounds is None else train_rounds)
                                if simulated else None)
        cache: dict = {}
        blocks = {}
        for t_i, (name, agent) in enumerate(policies.items()):
            dist = agent.action_probs(feedback.context)
            intervals = {}
            for m in methods:
                estimates, intervals[m], steps = estimate_sessions(
                    feedback, dist, list(ests.values()), gamma=gamma, fqe=dict(fqe or {}),
                    ci={"method": m, "alpha": alpha, "n_bootstrap_samples": n_bootstrap_samples}, seed=seed,
                    item_features=data.item_features if simulated else None,
                    fatigue_decay=data.fatigue_decay if simulated else 0.8,
                    weight_ridge=weight_ridge, weight_refits=weight_refits, cache=cache)
            truth = (self.truth_block(log, agent, t_i, truth_trajectories, gamma) if simulated else {"truth": None})
            # every row: interval_valid with its reason, and the diagnostics of the weights it uses
            steps_w = steps.weights()[steps.unit, steps.t]
            shared = overlap_diagnostics(steps_w, feedback.pscore, K, action_dist=dist, pi_b=feedback.action_dist)
            shared = {k: shared[k] for k in ("low_support_share", "low_support_source", "pscore_one_share")}
            diags = {n: e.weight_diagnostics(steps) for n, e in ests.items()}
            validity = {m: validity_rows(ests, diags, estimates, m, shared=shared, reward_bounded=False)
                        for m in methods}
            block = target_block(name, estimates, intervals[methods[0]], truth.pop("truth"),
                                 {"trajectory": steps.trajectory_weights()}, validity[methods[0]], method=methods[0],
                                 extra=truth)
            add_method_intervals(block, intervals, validity)
            widths = [(r["ci_high"] - r["ci_low"]) / (2 * 1.96) for r in block["estimators"].values()
                      if r["ci_low"] is not None and r["ci_high"] is not None]
            est_se = float(np.nanmedian(widths)) if widths else float("nan")
            block["estimator_se_median"] = est_se
            if truth.get("truth_se", 0.0) > 0.1 * est_se:
                block["warnings"].append(
                    f"WARNING {name}: truth_se {truth['truth_se']:.4g} is not below 1/10 of the estimators' median "
                    f"s.e. ({est_se:.4g}): raise truth_trajectories")
            blocks[name] = block
        n_sessions = int(len(np.unique(feedback.trajectory_id)))
        return OPEResult.from_blocks(blocks, setting="session", alpha=alpha, n_rounds=n_sessions)


SIMULATORS["session"] = SESSIONS = SessionLogs()
EVALUATORS["session"] = SESSIONS.evaluate
