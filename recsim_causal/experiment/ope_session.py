"""Session OPE against rollout truth: ``scripts/run.py experiment=ope env=session``.

One straight path:

1. collect  train the logger online on Session-v0 steps (as a contextual bandit on the session
            observation), then log ``experiment.session.n_trajectories`` sessions of it mixed
            with ``experiment.logger.epsilon`` uniform exploration: per step the observation,
            action, reward, pscore, step index and Gymnasium's done flags.
2. log      a LoggedFeedback with ``trajectory_id`` (logged.parquet in the output folder).
3. estimate every sequential estimator (TIS, PDIS, SNTIS, SNPDIS, DR, SNDR; DM with fitted-Q
            evaluation, which DR and SNDR use too), intervals by bootstrap over trajectories,
            diagnostics (ESS and max of the trajectory weights, mean session length).
4. truth    V(pi) = E[sum_t gamma^t r_t] by on-policy rollouts of the target in the vector env,
            ``experiment.session.truth_trajectories`` sessions seeded from the run's seed (the
            env draws all exogenous noise from its seed, so the truth is reproducible);
            ``truth_se`` is reported, with a WARNING when it is not below 1/10 of the
            estimators' median standard error (CI width / 3.92).
5. report   ope.json, ope.png, the W&B run (:mod:`recsim_causal.experiment.ope_report`).

The data source is the one thing that changes with ``experiment.data`` (a Parquet log of
sessions in the same columns, e.g. another run's logged.parquet): :class:`LoggedSessions`
instead of :class:`SimulatedSessions`, with the same path and no truth.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from recsim_causal.agents.base import sample_categorical
from recsim_causal.data import LoggedFeedback
from recsim_causal.envs import SessionVectorEnv
from recsim_causal.build import agent_config, make_agent, resolve_agents
from recsim_causal.experiment.ope_paths import check_setting
from recsim_causal.experiment.ope_report import report_rows, write_report
from recsim_causal.ope.evaluate import target_block
from recsim_causal.experiment.tracking import Tracker
from recsim_causal.ope.diagnostics import overlap_diagnostics, validity_rows
from recsim_causal.ope import (
    FQE,
    MIS,
    MDR,
    FeatureFQE,
    StateMarginalWeights,
    session_state_features,
    SequentialDirectMethod,
    SequentialDoublyRobust,
    PerDecisionImportanceSampling,
    SelfNormalizedSequentialDoublyRobust,
    SelfNormalizedPDIS,
    SelfNormalizedTIS,
    TrajectoryWiseImportanceSampling,
    estimate_all_sequential,
    refit_intervals,
)

BATCH = 2048
ESTIMATORS = {
    "dm": SequentialDirectMethod, "tis": TrajectoryWiseImportanceSampling, "pdis": PerDecisionImportanceSampling,
    "sntis": SelfNormalizedTIS, "snpdis": SelfNormalizedPDIS, "dr": SequentialDoublyRobust, "sndr": SelfNormalizedSequentialDoublyRobust,
    "mis": MIS, "mdr": MDR,
}  # fmt: skip
ENV_KEYS = ("n_items", "world_seed", "dtype", "max_steps", "drift", "fatigue_rate", "fatigue_decay",
            "satisfaction_rate", "leave_bias", "leave_satisfaction")

Probs = Callable[[np.ndarray], np.ndarray]


def make_env(resolved: dict, num_envs: int) -> SessionVectorEnv:
    """The run's Session-v0 vector env (its world from ``resolved["scm"]``)."""
    env_cfg = resolved["env"]
    return SessionVectorEnv(num_envs, scm=resolved["scm"], **{k: env_cfg[k] for k in ENV_KEYS if k in env_cfg})


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


def _check(exp: dict) -> None:
    check_setting(exp, "session", ("n_trajectories", "truth_trajectories"), ESTIMATORS)
    gamma = (exp.get("session") or {}).get("gamma", 1.0)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
        raise ValueError(f"experiment.session.gamma: expected a number in (0, 1], got {gamma!r}")


class SimulatedSessions:
    """Session-v0 as the data source: the trained logger's logged sessions, targets trained online,
    the truth by on-policy rollouts."""

    def __init__(self, resolved: dict, seed: int, gamma: float):
        exp, sess = resolved["experiment"], resolved["experiment"]["session"]
        self.exp, self.sess, self.seed, self.gamma = exp, sess, seed, gamma
        self.env = make_env(resolved, BATCH)
        self.n_actions, self.dim = self.env.world.n_items, self.env.single_observation_space.shape[0]
        logger = make_agent(agent_config(exp["logger"]["agent"]), n_actions=self.n_actions, dim=self.dim, seed=seed)
        train_on_sessions(self.env, logger, exp["train_rounds"], [seed, 3])
        eps, K = float(exp["logger"].get("epsilon", 0.0)), self.n_actions
        behaviour = lambda x: (1 - eps) * logger.action_probs(x) + eps / K  # noqa: E731
        _, steps = run_sessions(self.env, behaviour, sess["n_trajectories"], [seed, 2], gamma=gamma, record=True)
        self.feedback = LoggedFeedback(n_actions=K, **steps,
                                       metadata={"env": resolved["env"], "logger": exp["logger"], "seed": seed})
        self.facts = {"scm": self.env.world.name, "max_steps": self.env.core.max_steps, "logger": exp["logger"]}
        self.item_features = item_features(self.env.world)
        self.fatigue_decay = float(self.env.core.d["fatigue_decay"])

    def train(self, agent: Any, t_i: int) -> None:
        train_on_sessions(self.env, agent, self.exp["train_rounds"], [self.seed, 10 + t_i])

    def truth(self, agent: Any, t_i: int) -> dict[str, Any]:
        returns, _ = run_sessions(self.env, agent.action_probs, self.sess["truth_trajectories"], [self.seed, 4, t_i],
                                  gamma=self.gamma)
        return {"truth": float(returns.mean()), "truth_se": float(returns.std(ddof=1) / math.sqrt(len(returns))),
                "truth_trajectories": len(returns)}


class LoggedSessions:
    """A Parquet log of sessions from elsewhere (LoggedFeedback with ``trajectory_id``, e.g. a
    previous run's logged.parquet): targets learn from its first half of sessions (as contextual
    bandits on the logged steps) and are evaluated on the second half, without truth."""

    def __init__(self, path: str):
        p = Path(path)
        if p.suffix != ".parquet" or not p.is_file():
            raise ValueError(f"experiment.data: expected a .parquet log of sessions, got '{path}'")
        log = LoggedFeedback.from_parquet(p)
        if log.trajectory_id is None:
            raise ValueError(f"experiment.data: {path} has no trajectory_id column (a one-item log: use env=bandit)")
        ids = np.unique(log.trajectory_id)
        first = np.isin(log.trajectory_id, ids[: len(ids) // 2])
        self.train_log, self.feedback = log.subset(first), log.subset(~first)
        self.n_actions, self.dim = log.n_actions, log.dim_context
        self.facts = {"data": str(path), "logger": "external", "warning": "no truth: external data"}
        self.item_features, self.fatigue_decay = None, 0.8  # an external log: no item features

    def train(self, agent: Any, t_i: int) -> None:
        agent.update(self.train_log.context, self.train_log.action, self.train_log.reward)

    def truth(self, agent: Any, t_i: int) -> None:
        return None


def run_ope_session(resolved: dict, out_dir: str | Path, tracker: Tracker) -> dict:
    """The session OPE experiment (module doc); writes ope.json, ope.png, logged.parquet."""
    exp, seed = resolved["experiment"], int(resolved.get("seed", 0))
    sess = exp.get("session") or {}
    _check(exp)
    start = time.perf_counter()
    gamma = float(sess.get("gamma", 1.0))
    source = LoggedSessions(exp["data"]) if exp.get("data") else SimulatedSessions(resolved, seed, gamma)
    feedback, K = source.feedback, source.n_actions
    if isinstance(source, SimulatedSessions):
        feedback.to_parquet(Path(out_dir) / "logged.parquet")

    names = sess.get("estimators") or list(ESTIMATORS)
    estimators = [ESTIMATORS[n]() for n in names]
    fqe_cfg = sess.get("fqe") or {}
    cache: dict = {}
    lengths = np.unique(feedback.trajectory_id, return_counts=True)[1]
    results = {}
    labelled = resolve_agents(sess["targets"], where="experiment.session.targets")
    for t_i, (name, spec) in enumerate(labelled.items()):
        agent = make_agent(spec, n_actions=K, dim=source.dim, seed=seed + 1 + t_i,
                           where=f"experiment.session.targets[{t_i}]")
        source.train(agent, t_i)
        dist = agent.action_probs(feedback.context)
        estimates, intervals, data = estimate_sessions(
            feedback, dist, estimators, gamma=gamma, fqe=fqe_cfg, ci=exp["ci"], seed=seed,
            item_features=source.item_features, fatigue_decay=source.fatigue_decay,
            weight_ridge=sess.get("weight_ridge", 1.0), weight_refits=sess.get("weight_refits", 200), cache=cache)
        truth = source.truth(agent, t_i) or {"truth": None}
        # every row: interval_valid with its reason, and the diagnostics of the weights it uses
        by_name = dict(zip(names, estimators))
        steps_w = data.weights()[data.unit, data.t]
        shared = overlap_diagnostics(steps_w, feedback.pscore, K, action_dist=dist, pi_b=feedback.action_dist)
        shared = {k: shared[k] for k in ("low_support_share", "low_support_source", "pscore_one_share")}
        validity = validity_rows(by_name, {n: e.weight_diagnostics(data) for n, e in by_name.items()}, estimates,
                                 exp["ci"]["method"], shared=shared, reward_bounded=False)
        block = target_block(name, estimates, intervals, truth.pop("truth"), {"trajectory": data.trajectory_weights()},
                             validity, method=exp["ci"]["method"], extra=truth)
        est_se = float(np.median([(r["ci_high"] - r["ci_low"]) / (2 * 1.96) for r in block["estimators"].values()]))
        block["estimator_se_median"] = est_se
        if truth.get("truth_se", 0.0) > 0.1 * est_se:
            block["warnings"].append(f"WARNING {name}: truth_se {truth['truth_se']:.4g} is not below 1/10 of the "
                                     f"estimators' median s.e. ({est_se:.4g}): raise experiment.session.truth_trajectories")
        results[name] = block

    rows, warnings = report_rows(results)
    summary = {
        "experiment": "ope", "setting": "session", "seed": seed, "gamma": gamma, **source.facts,
        "n_rounds": int(len(lengths)), "n_steps": feedback.n_rounds, "mean_session_length": float(lengths.mean()),
        "targets": results, "wall_s": time.perf_counter() - start,
    }
    return write_report(summary, rows, warnings, out_dir, tracker,
                        title=f"Session OPE (gamma={gamma:g}, 95% CI)" + (" vs rollout truth" if isinstance(
                            source, SimulatedSessions) else ", external data: no truth"))
