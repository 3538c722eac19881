"""Simulate a logged dataset in a World: train a logger online, log with exploration mixed in,
and keep what the simulation knows (the users, the oracle q(x, a)) so the truth is exact.

    from recsim_causal.ope import simulate_log
    log = simulate_log("default", "linucb", 20_000, epsilon=0.2, seed=0)
    log.truth(my_policy)                  # exact V(pi) on the logged users
    log.population_truth(my_policy)       # (V(pi), s.e.) on fresh users
    log.to_obp()                          # OBP's bandit_feedback dict
    log.save("logged.parquet")
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsim_causal.agents import validate_policy_output
from recsim_causal.config import check_integer
from recsim_causal.build import agent_label, is_policy, make_agent, make_world, resolve_agents
from recsim_causal.data import LoggedFeedback, save_parquet, to_obp
from recsim_causal.ope.propensity import marginal_action_probs, signal_quantile
from recsim_causal.ope.truth import policy_value
from recsim_causal.progress import progress
from recsim_causal.scm import World

__all__ = ["SimulatedLog", "simulate_log", "train", "collect", "population_value", "fresh_truth", "Oracle",
           "ENVS", "DEFAULT_TRAIN_ROUNDS", "SIMULATORS", "OneItemLogs", "no_options", "train_targets",
           "train_logger", "observe", "BATCH", "oracle_value", "write_simulated_log"]

BATCH = 2048
ENVS = ("bandit", "session")
DEFAULT_TRAIN_ROUNDS = 20_000  # the OPE experiment's default (conf/experiment/ope.yaml)


def observe(world: World, users, privileged: bool = False) -> np.ndarray:
    """The users' context as float64 (with the privileged signal when ``privileged``)."""
    return world.observe(users, privileged=privileged).astype(np.float64)


def train(world: World, agent, n_rounds: int, rng: np.random.Generator, *, privileged: bool = False,
          t: int = 0) -> None:
    """Online training on ``n_rounds`` fresh users of world time ``t`` (act, respond, update in batches)."""
    for start in range(0, n_rounds, BATCH):
        users = world.sample_users(min(BATCH, n_rounds - start), rng, t)
        x = observe(world, users, privileged)
        actions, _ = agent.act(x, rng)
        agent.update(x, actions, world.respond(users, actions).reward)


@dataclass
class Oracle:
    """What a simulation knows beyond the log: the users of each batch and, in a confounded
    world, the logger's full distribution pi_b(. | x, s) (n, K) and the quadrature's error
    bound on the logged pscores."""

    users: list = field(default_factory=list)
    pi_b_full: np.ndarray | None = None
    pscore_error_bound: float | None = None


def collect(world: World, logger, n_rounds: int, epsilon: float, rng: np.random.Generator, *,
            show_progress: bool = True, t: int = 0) -> tuple[LoggedFeedback, Oracle]:
    """Log ``n_rounds`` with the logger mixed with epsilon-uniform exploration, on users of
    world time ``t`` (a world with dynamics: the population and the items of that time; the
    log's ``t`` column records it when ``t`` > 0 or the world is not stationary).

    Returns the feedback (context = the logged, non-privileged context; pscore = P(a | x),
    exact; in a confounded world ``pscore_full`` = pi_b(a | x, s)) and the :class:`Oracle`.
    """
    confounded = bool(world.privileged)
    quantile = signal_quantile(world)[0] if confounded else None
    K = world.n_items
    parts: dict[str, list] = {k: [] for k in ("context", "action", "reward", "pscore", "action_dist",
                                              "expected_reward", "pscore_full", "pi_b_full")}
    oracle, bound = Oracle(), 0.0
    with progress(n_rounds, "logging", "rounds", enabled=show_progress) as bar:
        for start in range(0, n_rounds, BATCH):
            users = world.sample_users(min(BATCH, n_rounds - start), rng, t)
            x_full = observe(world, users, privileged=confounded)
            behaviour = (1 - epsilon) * logger.action_probs(x_full) + epsilon / K  # what the logger does
            validate_policy_output(logger, len(x_full), probs=behaviour)
            actions = np.minimum((behaviour.cumsum(axis=1) < rng.random((len(x_full), 1))).sum(axis=1), K - 1)
            rows = np.arange(len(actions))
            x = x_full[:, : world.obs_dim]
            if confounded:
                marginal, err = marginal_action_probs(logger, x, quantile)
                recorded = (1 - epsilon) * marginal + epsilon / K  # P(a | x), integrated over s
                bound = max(bound, (1 - epsilon) * float(err.max(initial=0.0)))
                parts["pscore_full"].append(behaviour[rows, actions])
                parts["pi_b_full"].append(behaviour)
            else:
                recorded = behaviour
            parts["context"].append(x)
            parts["action"].append(actions)
            parts["reward"].append(world.respond(users, actions).reward.astype(np.float64))
            parts["pscore"].append(recorded[rows, actions])
            parts["action_dist"].append(recorded)
            parts["expected_reward"].append(world.expected_reward(users).astype(np.float64))
            oracle.users.append(users)
            bar.update(len(actions))
    arrays = {k: np.concatenate(v) for k, v in parts.items() if v}
    if t or not world.is_stationary:
        arrays["t"] = np.full(n_rounds, int(t), dtype=np.int64)
    if confounded:
        oracle.pi_b_full, oracle.pscore_error_bound = arrays.pop("pi_b_full"), bound
    return LoggedFeedback(n_actions=K, **arrays), oracle


def population_value(world: World, target, n_users: int, rng: np.random.Generator, *,
                     t: int = 0) -> tuple[float, float]:
    """V(pi) on ``n_users`` fresh users of world time ``t``, exact given the users (no reward
    sampling), and its standard error over users: (mean, std / sqrt(n))."""
    total = total_sq = 0.0
    for start in range(0, n_users, BATCH):
        users = world.sample_users(min(BATCH, n_users - start), rng, t)
        v = (target.action_probs(observe(world, users)) * world.expected_reward(users)).sum(axis=1)
        total += float(v.sum())
        total_sq += float((v * v).sum())
    mean = total / n_users
    var = max(total_sq / n_users - mean * mean, 0.0) * n_users / max(n_users - 1, 1)
    return mean, float(np.sqrt(var / n_users))


def oracle_value(world: World, n_users: int, *, seed: int = 0) -> tuple[float, float]:
    """The oracle's value E_x max_a E[r | x, do(a)] on ``n_users`` fresh users, exact given the
    users, and its standard error: the same users as :meth:`SimulatedLog.population_truth`
    with the same ``seed``."""
    rng = np.random.default_rng([seed, 4])
    best = np.concatenate([world.expected_reward(world.sample_users(min(BATCH, n_users - start), rng)).max(axis=1)
                           for start in range(0, n_users, BATCH)])
    return float(best.mean()), float(best.std(ddof=1) / np.sqrt(n_users))


def fresh_truth(world: World, target, n_users: int, rng: np.random.Generator) -> float:
    """V(pi) on ``n_users`` fresh users, exact given the users (:func:`population_value`'s mean)."""
    return population_value(world, target, n_users, rng)[0]


@dataclass(eq=False)
class SimulatedLog:
    """A log simulated in ``world``: the logged feedback plus what the simulation knows.

    Attributes: ``feedback`` (:class:`~recsim_causal.data.LoggedFeedback`; one item per row
    with the oracle ``expected_reward`` q(x_i, a) of every logged user; a slate per
    ``slate_id`` in OBP's long format; a session per ``trajectory_id``), ``world``, ``logger``
    (the trained logging Policy; for slates the SlatePolicy), ``epsilon``, ``seed``,
    ``train_rounds`` (targets given by name are trained as long as the logger was),
    ``oracle`` (the logged users, batch by batch), ``setting`` (``one_item``, ``slate`` or
    ``session``), ``data`` (what that setting keeps besides: the wide slates, the session
    env and discount) and ``t`` (one item: the world time of the logged users, and of the
    logger's and named targets' training users)."""

    feedback: LoggedFeedback
    world: World
    logger: Any
    epsilon: float = 0.0
    seed: int = 0
    train_rounds: int = DEFAULT_TRAIN_ROUNDS
    oracle: Oracle = field(default_factory=lambda: Oracle())
    setting: str = "one_item"
    data: Any = None
    t: int = 0

    @property
    def n_rounds(self) -> int:
        return self.feedback.n_rounds

    def policy(self, spec: Any, index: int = 0):
        """A target from a spec (name, mapping or Policy; a slate log: a SlatePolicy or
        ``{agent, slate, epsilon, name}`` too); names and mappings are trained online in this
        log's world for ``train_rounds`` (as the logger was), on their own users."""
        return SIMULATORS[self.setting].policy(self, spec, index)

    def truth(self, policy: Any) -> float:
        """V(pi) on the logged users: exact, mean_i sum_a pi(a | x_i) q(x_i, a) (slates: from the
        SCM's exact expected slot rewards; sessions: by on-policy rollouts, see
        :meth:`population_truth`)."""
        return SIMULATORS[self.setting].truth(self, policy)

    def population_truth(self, policy: Any, n_users: int = 100_000, *, seed: int | None = None,
                         t: int | None = None) -> tuple[float, float]:
        """(V(pi), standard error) on ``n_users`` fresh users of the world (exact given the users;
        sessions: ``n_users`` on-policy sessions). One item: at world time ``t`` (default the
        log's; another ``t``: the value after a change, docs/dynamics.md)."""
        check_integer(n_users, "n_users", minimum=2)
        when = {}
        if t is not None:
            if self.setting != "one_item":
                raise ValueError(f"t: the value at another world time is for one-item logs, not {self.setting} logs")
            when["t"] = check_integer(t, "t", minimum=0)
        return SIMULATORS[self.setting].population_truth(self, policy, int(n_users),
                                                         self.seed if seed is None else seed, **when)

    def to_obp(self) -> dict[str, Any]:
        """OBP's ``bandit_feedback`` dict (keys n_rounds, n_actions, context, action_context,
        action, position (None: one slot, as OBP's synthetic data), reward, pscore, expected_reward,
        pi_b (n, K, 1)), with the catalog's item features as ``action_context``; OBP code runs on it."""
        out = to_obp(self.feedback)
        if out["action_context"] is None:
            feats = self.world.catalog.features
            out["action_context"] = np.concatenate(
                [np.asarray(feats[k], dtype=np.float64).reshape(self.world.n_items, -1) for k in sorted(feats)], axis=1)
        return out

    def save(self, path: str | Path) -> Path:
        """Write the log (its truth columns where it has them) as Parquet; returns the path.
        :func:`~recsim_causal.ope.evaluate` reads it back, the setting read from its columns."""
        return save_parquet(self.feedback, path)


class OneItemLogs:
    """One item per user (Bandit-v0, slate_size 1): how such logs are simulated and their truth."""

    def simulate(self, world: World, logger: Any, n_rounds: int, *, epsilon: float, slate_size: int, seed: int,
                 train_rounds: int | None, show_progress: bool, t: int = 0, **options: Any) -> SimulatedLog:
        no_options(options, "one-item logs (env='bandit', slate_size=1)")
        t = check_integer(t, "t", minimum=0)
        rounds = DEFAULT_TRAIN_ROUNDS if train_rounds is None else int(train_rounds)
        policy = train_logger(world, logger, seed=seed, train_rounds=train_rounds, t=t)
        feedback, oracle = collect(world, policy, int(n_rounds), float(epsilon), np.random.default_rng([seed, 2]),
                                   show_progress=show_progress, t=t)
        feedback.metadata.update({"logging_policy": agent_label(logger), "epsilon": float(epsilon), "seed": seed,
                                  "world": world.config})
        return SimulatedLog(feedback, world, policy, float(epsilon), seed, rounds, oracle, t=t)

    def policy(self, log: SimulatedLog, spec: Any, index: int = 0):
        if is_policy(spec):
            return spec
        return train_targets([spec], log.world, seed=log.seed, train_rounds=log.train_rounds, first=index,
                             t=log.t)[agent_label(spec)]

    def truth(self, log: SimulatedLog, policy: Any) -> float:
        policy = self.policy(log, policy)
        return policy_value(policy.action_probs(log.feedback.context), log.feedback.expected_reward)

    def population_truth(self, log: SimulatedLog, policy: Any, n_users: int, seed: int,
                         t: int | None = None) -> tuple[float, float]:
        return population_value(log.world, self.policy(log, policy), n_users, np.random.default_rng([seed, 4]),
                                t=log.t if t is None else t)


def no_options(options: Mapping, what: str) -> None:
    """Refuse a setting's options given to another setting (one line naming the first)."""
    if options:
        raise ValueError(f"{next(iter(options))}: not an option of {what}")


#: setting -> how its logs are simulated and their truth computed (``simulate``, ``policy``,
#: ``truth``, ``population_truth``); slates and sessions register theirs
#: (:mod:`recsim_causal.ope.slate_log`, :mod:`recsim_causal.ope.session_log`).
SIMULATORS: dict[str, Any] = {"one_item": OneItemLogs()}

#: env -> the setting of a log of it, given the slate size.
ENV_SETTINGS = {"bandit": lambda slate_size: "slate" if slate_size > 1 else "one_item",
                "session": lambda slate_size: "session"}


def train_targets(specs: Any, world: World, *, seed: int = 0, train_rounds: int = DEFAULT_TRAIN_ROUNDS,
                  first: int = 0, where: str = "targets", t: int = 0) -> dict[str, Any]:
    """``{label: Policy}``: Policy objects as they are; names and mappings built for the world and
    trained online for ``train_rounds`` on their own users of world time ``t`` (target i: seed + 1 + i)."""
    out = {}
    for i, (label, spec) in enumerate(resolve_agents(specs, where=where).items(), start=first):
        if is_policy(spec):
            out[label] = spec
            continue
        target = make_agent(spec, n_actions=world.n_items, dim=world.obs_dim, seed=seed + 1 + i, world=world,
                            where=f"{where}[{i - first}]")
        train(world, target, train_rounds, np.random.default_rng([seed, 10 + i]), t=t)
        out[label] = target
    return out


def train_logger(world: World, logger: Any, *, seed: int = 0, train_rounds: int | None = None,
                 where: str = "logger", t: int = 0):
    """The logging Policy: a name or mapping built for the world (on the logged context plus any
    privileged signal) and trained online for ``train_rounds`` (default 20,000) on its own
    users; a Policy as given (trained only if ``train_rounds`` is given)."""
    confounded = bool(world.privileged)
    if is_policy(logger):
        if train_rounds:
            train(world, logger, int(train_rounds), np.random.default_rng([seed, 3]), privileged=confounded, t=t)
        return logger
    dim_full = world.obs_dim + sum(world.mech[n].dim for n in world.privileged)
    (spec,) = resolve_agents([logger], where=where).values()
    policy = make_agent(spec, n_actions=world.n_items, dim=dim_full, seed=seed, where=where)
    rounds = DEFAULT_TRAIN_ROUNDS if train_rounds is None else int(train_rounds)
    train(world, policy, rounds, np.random.default_rng([seed, 3]), privileged=confounded, t=t)
    return policy


def simulate_log(world: World | str | Mapping, logger: Any, n_rounds: int, *, epsilon: float = 0.0,
                 slate_size: int = 1, env: str = "bandit", seed: int = 0, train_rounds: int | None = None,
                 n_items: int = 100, show_progress: bool = False, **options: Any) -> SimulatedLog:
    """Simulate a logged dataset.

    Parameters
    ----------
    world: a :class:`~recsim_causal.scm.World`, or an SCM preset name (``"default"``,
        ``"confounded"``, ``"position_bias"``, ...) or mapping (then built with ``n_items``
        items and ``slate_size`` slots).
    logger: the logging policy: a name from conf/agent (``"linucb"``), a mapping with
        ``_target_``, or a Policy object. A name or mapping is built for the world and trained
        online first for ``train_rounds`` rounds on its own users (sessions: user-steps); a
        Policy is used as given (trained first only if ``train_rounds`` is given). In a
        confounded world the logger sees the logged context plus the privileged signal.
    n_rounds: logged rounds: users (one item or one slate each) or sessions.
    epsilon: uniform exploration mixed into the logger: pi_b = (1 - epsilon) pi + epsilon / K.
    slate_size: items per slate; > 1 logs slates (Bandit-v0; the world's click model, e.g.
        ``scm.slate.model`` pbm or cascade, answers each slot).
    env: ``"bandit"`` (one decision per user) or ``"session"`` (Session-v0: several steps per
        user, the user's state evolving).
    seed: seeds the logger, its training users and the logged users.
    train_rounds: online training rounds (default 20,000 for a name or mapping).
    options: the setting's own. One item: ``t`` (the world time of the log, in a world with
        dynamics: the logger is trained on, and logs, users of that time; the log's truth is the
        value at ``t``, ``population_truth(policy, t=t_after)`` the value after a change). Slates: ``slate_policy`` (``plackett_luce`` (default) or
        ``greedy``: how the logger's distribution becomes a slate), ``truth_slates`` (slates
        drawn per user where the truth cannot be enumerated, default 32). Sessions: ``gamma``
        (discount, default 1), ``env_kwargs`` (Session-v0's dynamics: max_steps, drift,
        fatigue_rate, ...), ``truth_trajectories`` (on-policy sessions for the truth,
        default 100,000).

    Returns a :class:`SimulatedLog` that keeps the logged users, so its truth is exact (sessions:
    by on-policy rollouts, with its standard error).
    """
    if env not in ENVS:
        raise ValueError(f"env: expected one of {', '.join(ENVS)}, got {env!r}")
    check_integer(slate_size, "slate_size", minimum=1)
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon: expected a number in [0, 1], got {epsilon!r}")
    if isinstance(n_rounds, bool) or not isinstance(n_rounds, (int, np.integer)) or n_rounds < 1:
        raise ValueError(f"n_rounds: expected an integer >= 1, got {n_rounds!r}")
    world = make_world(world, n_items=n_items, slate_size=slate_size)
    setting = ENV_SETTINGS[env](slate_size)
    return SIMULATORS[setting].simulate(world, logger, int(n_rounds), epsilon=float(epsilon), slate_size=slate_size,
                                        seed=seed, train_rounds=train_rounds, show_progress=show_progress, **options)


def write_simulated_log(path: str | Path, world: World | str | Mapping, logger: Any, n_rounds: int, *,
                        epsilon: float = 0.0, seed: int = 0, train_rounds: int | None = None, n_items: int = 100,
                        show_progress: bool = False, metadata: Mapping | None = None):
    """:func:`simulate_log` straight to a Parquet file, chunk by chunk: memory stays flat in
    ``n_rounds`` (the logged users are not kept; the truth column ``expected_reward`` is in the
    file). The same rounds as :func:`simulate_log` with the same arguments. Returns the trained
    logging Policy. Evaluate the file with :func:`~recsim_causal.ope.evaluate` (streamed)."""
    from recsim_causal.data import ParquetLogWriter

    if isinstance(n_rounds, bool) or not isinstance(n_rounds, (int, np.integer)) or n_rounds < 1:
        raise ValueError(f"n_rounds: expected an integer >= 1, got {n_rounds!r}")
    world = make_world(world, n_items=n_items)
    policy = train_logger(world, logger, seed=seed, train_rounds=train_rounds)
    rng = np.random.default_rng([seed, 2])
    chunk = 32 * BATCH  # a multiple of BATCH: the same draws as one collect() over every round
    meta = {"logging_policy": agent_label(logger), "epsilon": float(epsilon), "seed": seed, "world": world.config,
            "confounded": world.is_confounded, **dict(metadata or {})}
    with ParquetLogWriter(path) as writer, progress(int(n_rounds), "logging", "rounds", enabled=show_progress) as bar:
        for start in range(0, int(n_rounds), chunk):
            part, _ = collect(world, policy, min(chunk, int(n_rounds) - start), float(epsilon), rng, show_progress=False)
            part.metadata = meta
            writer.write(part)
            bar.update(part.n_rounds)
    return policy
