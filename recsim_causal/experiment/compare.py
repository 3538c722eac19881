"""Paired comparison with common random numbers: the simulator's own A/B test.

    python scripts/run.py experiment=compare experiment.policies=[linucb,thompson]

Every policy meets the *same* users with the *same* exogenous noise (``World.sample_users``
keeps all of it, and ``World.respond`` is deterministic given the users), draws its own random
choices from the same stream, and learns from its own feedback. Differences between policies
then carry no user-to-user or noise-to-noise variation that the policies did not cause, so a
paired interval (from the per-replication differences) is narrower than the interval of
independent runs with the same budget. That unpaired width is *measured*: the replications
are run a second time with every policy on its own users (``experiment.unpaired``).

Per replication r = 0..n_seeds-1 and policy:

1. Learning: ``steps`` decisions in batches of ``env.num_envs`` users (act, respond, update;
   slates learn from each slot as in the online experiment). Recorded: mean reward (realized)
   and cumulative regret (exact: best expected reward minus the chosen action's, as online).
2. The final policy's exact value V(pi) = E_x sum_a pi(a|x) E[r | x, do(a)] on ``truth_users``
   fresh users, the same for every policy (one-item settings).
3. An A/B test of the final policies on ``eval_users`` fresh users: paired (same users, same
   noise, same uniforms for the action draw) and unpaired (each policy on its own users); both
   95% normal intervals for V(a) - V(b), whose truth is step 2's difference.

``compare.json``: per policy, the replications' metrics; per pair (a, b): for mean reward,
cumulative regret and final value, the mean difference a - b with its paired 95% t interval
over replications, the unpaired interval of the independent replications (Welch), and the
ratio of the widths; and the A/B test per replication (estimate, intervals, truth, covers) with
its coverage. Common random numbers: Law (2015), Simulation Modeling and Analysis, ch. 11.2.
"""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from recsim_causal.agents import validate_policy_output
from recsim_causal.build import make_agent, resolve_agents, world_from_config
from recsim_causal.config import as_resolved
from recsim_causal.ope.simulate import fresh_truth
from recsim_causal.experiment.report import t975
from recsim_causal.experiment.tracking import Tracker, compare_scalars
from recsim_causal.results import write_result
from recsim_causal.progress import progress
from recsim_causal.scm import World

Z975 = 1.959964
METRICS = ("mean_reward", "cumulative_regret", "final_value")


# --------------------------------------------------------------------------- the config


def _check(exp: dict) -> None:
    for key in ("steps", "n_seeds", "eval_users", "truth_users"):
        v = exp.get(key)
        minimum = 2 if key == "n_seeds" else 1
        if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
            raise ValueError(f"experiment.{key}: expected an integer >= {minimum}, got {v!r}")
    pols = exp.get("policies")
    if not isinstance(pols, list) or len(pols) < 2:
        raise ValueError(f"experiment.policies: expected a list of at least two agents, got {pols!r}")


# ------------------------------------------------------------------------- one decision


def _decide(world: World, agent, x: np.ndarray, users, q: np.ndarray, rng: np.random.Generator, check: bool):
    """The agent acts on one batch: (realized reward (n,), chosen expected reward (n,), best
    expected reward (n,), the (contexts, actions, rewards) it learns from)."""
    n, L = len(x), world.slate_size
    if L == 1:
        actions, pscores = agent.act(x, rng)
        if check:
            validate_policy_output(agent, n, actions=actions, pscores=pscores, probs=agent.action_probs(x))
        out = world.respond(users, actions)
        chosen, best = q[np.arange(n), actions], q.max(axis=1)
        return out.reward, chosen, best, (x, actions, out.reward)
    if not hasattr(agent, "act_slate"):
        raise ValueError(f"agent {type(agent).__name__}: slates need an act_slate(contexts, slate_size, rng) method")
    slates, _ = agent.act_slate(x, L, rng)
    out = world.respond(users, slates)
    chosen = world.expected_slate_reward(users, slates).sum(axis=1)
    best = world.expected_slate_reward(users, np.argsort(-q, axis=1)[:, :L]).sum(axis=1)
    return out.reward, chosen, best, (np.repeat(x, L, axis=0), slates.reshape(-1), out.slot_reward.reshape(-1))


def learn(world: World, agents: dict, steps: int, batch: int, user_rngs: dict, act_rngs: dict,
          bar: Any = None) -> dict[str, dict]:
    """Every agent learns for ``steps`` decisions, batch by batch in lockstep. Agents that share
    a user generator (the same object in ``user_rngs``) meet the same users and noise; each
    agent draws its choices from its generator in ``act_rngs`` (equal seeds: equal streams).
    Returns per agent ``{mean_reward, cumulative_regret}``."""
    totals = {k: [0.0, 0.0] for k in agents}
    done = 0
    while done < steps:
        n = min(batch, steps - done)
        drawn: dict[int, tuple] = {}  # one draw per distinct generator: shared users are drawn once
        for k, agent in agents.items():
            g = user_rngs[k]
            if id(g) not in drawn:
                users = world.sample_users(n, g)
                drawn[id(g)] = (users, world.observe(users), world.expected_reward(users))
            users, x, q = drawn[id(g)]
            reward, chosen, best, fb = _decide(world, agent, x, users, q, act_rngs[k], check=done == 0)
            agent.update(*fb)
            totals[k][0] += float(reward.sum())
            totals[k][1] += float((best - chosen).sum())
            if bar is not None:
                bar.update(n)
        done += n
    return {k: {"mean_reward": r / steps, "cumulative_regret": g} for k, (r, g) in totals.items()}


def ab_test(world: World, a, b, n_users: int, rng_paired: np.random.Generator,
            rng_unpaired: np.random.Generator, batch: int) -> dict:
    """A/B test of two fixed one-item policies: realized rewards on ``n_users`` users.

    Paired: both policies on the same users, noise and action uniforms; the interval is
    mean(r_a - r_b) +- 1.96 sd / sqrt(n). Unpaired: ``a`` on those users, ``b`` on others;
    the interval is the difference of means +- 1.96 sqrt(var_a / n + var_b / n).
    """
    def rewards(policy, users, u):
        probs = policy.action_probs(world.observe(users))
        actions = np.minimum((probs.cumsum(axis=1) < u[:, None]).sum(axis=1), world.n_items - 1)
        return world.respond(users, actions).reward.astype(np.float64)

    ra, rb, rb_other = [], [], []
    for start in range(0, n_users, batch):
        n = min(batch, n_users - start)
        users, u = world.sample_users(n, rng_paired), rng_paired.random(n)
        ra.append(rewards(a, users, u))
        rb.append(rewards(b, users, u))
        rb_other.append(rewards(b, world.sample_users(n, rng_unpaired), rng_unpaired.random(n)))
    ra, rb, rb_other = (np.concatenate(v) for v in (ra, rb, rb_other))
    d = ra - rb
    half = Z975 * d.std(ddof=1) / math.sqrt(n_users)
    diff_u = ra.mean() - rb_other.mean()
    half_u = Z975 * math.sqrt(ra.var(ddof=1) / n_users + rb_other.var(ddof=1) / n_users)
    return {"estimate": float(d.mean()), "ci_low": float(d.mean() - half), "ci_high": float(d.mean() + half),
            "ci_width": 2 * half, "unpaired_estimate": float(diff_u), "unpaired_ci_low": diff_u - half_u,
            "unpaired_ci_high": diff_u + half_u, "unpaired_ci_width": 2 * half_u}


# ---------------------------------------------------------------------------- intervals


def paired_ci(a: list[float], b: list[float]) -> dict:
    """Mean of a - b over replications with its 95% t interval (n - 1 degrees of freedom)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    n = len(d)
    half = t975(n - 1) * d.std(ddof=1) / math.sqrt(n)
    return {"difference": float(d.mean()), "ci_low": float(d.mean() - half), "ci_high": float(d.mean() + half),
            "ci_width": 2 * half, "n": n}


def welch_ci(a: list[float], b: list[float]) -> dict:
    """Difference of means of two independent samples with Welch's 95% t interval."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se > 0 else len(a) + len(b) - 2
    half = t975(max(1, int(df))) * se
    diff = float(a.mean() - b.mean())
    return {"difference": diff, "ci_low": diff - half, "ci_high": diff + half, "ci_width": 2 * half, "df": df}


# ---------------------------------------------------------------------------- the run


def run_compare(cfg: Any, out_dir: str | Path, tracker: Tracker | None = None, *, resolved: dict | None = None) -> dict:
    """Run the paired comparison; write compare.json into ``out_dir``; return the summary."""
    resolved = as_resolved(cfg, resolved)
    exp, env_cfg, seed = resolved["experiment"], resolved["env"], int(resolved.get("seed", 0))
    _check(exp)
    if env_cfg["id"] != "RecSimCausal/Bandit-v0":
        raise ValueError(f"env: experiment=compare runs Bandit-v0 (one item or slates), got {env_cfg['id']}")
    tracker = tracker or Tracker(mode="disabled")
    policies = resolve_agents(exp["policies"], where="experiment.policies")
    world = world_from_config(resolved, dtype=env_cfg.get("dtype", "float32"))
    one_item = world.slate_size == 1
    batch, R, steps = int(env_cfg["num_envs"]), exp["n_seeds"], exp["steps"]
    unpaired = bool(exp.get("unpaired", True))
    names = list(policies)
    start = time.perf_counter()

    runs: dict[str, dict[str, list]] = {k: {m: [] for m in METRICS} for k in names}
    independent: dict[str, dict[str, list]] = {k: {m: [] for m in METRICS} for k in names}
    ab: dict[tuple, list[dict]] = {pair: [] for pair in itertools.combinations(names, 2)}
    total = R * len(names) * steps * (2 if unpaired else 1)
    with progress(total, desc="compare", unit="step", enabled=exp.get("progress", True)) as bar:
        for r in range(R):
            # paired: every policy on stream 0 (users, noise, its own draws); unpaired: policy i on stream i + 1
            streams = [("paired", runs, lambda k: 0)] + \
                ([("unpaired", independent, lambda k: 1 + names.index(k))] if unpaired else [])
            for mode, store, which in streams:
                agents = {k: make_agent(policies[k], n_actions=world.n_items, dim=world.obs_dim,
                                        seed=_agent_seed(seed, r, which(k)), world=world) for k in names}
                gens = {i: np.random.default_rng([seed, 100 + i, r]) for i in {which(k) for k in names}}
                acts = {k: np.random.default_rng([seed, 200 + which(k), r]) for k in names}
                result = learn(world, agents, steps, batch, {k: gens[which(k)] for k in names}, acts, bar)
                for k in names:
                    store[k]["mean_reward"].append(result[k]["mean_reward"])
                    store[k]["cumulative_regret"].append(result[k]["cumulative_regret"])
                    if one_item:  # exact V on common fresh users (the same draws for every policy)
                        store[k]["final_value"].append(
                            fresh_truth(world, agents[k], exp["truth_users"], np.random.default_rng([seed, 400, r])))
                if mode == "paired" and one_item:
                    for a, b in ab:
                        test = ab_test(world, agents[a], agents[b], exp["eval_users"],
                                       np.random.default_rng([seed, 300, r]), np.random.default_rng([seed, 301, r]), batch)
                        truth = store[a]["final_value"][-1] - store[b]["final_value"][-1]
                        ab[(a, b)].append({"replication": r, **test, "truth": truth,
                                           "covers": test["ci_low"] <= truth <= test["ci_high"],
                                           "unpaired_covers": test["unpaired_ci_low"] <= truth <= test["unpaired_ci_high"]})

    pairs = []
    for a, b in ab:
        entry: dict[str, Any] = {"a": a, "b": b}
        for m in METRICS:
            if not runs[a][m]:
                continue
            p = paired_ci(runs[a][m], runs[b][m])
            if unpaired:
                u = welch_ci(independent[a][m], independent[b][m])
                p.update(unpaired=u, width_ratio=_ratio(u["ci_width"], p["ci_width"]))
            entry[m] = p
        if ab[(a, b)]:
            tests = ab[(a, b)]
            entry["ab_test"] = {
                "eval_users": exp["eval_users"],
                "coverage": float(np.mean([t["covers"] for t in tests])),
                "unpaired_coverage": float(np.mean([t["unpaired_covers"] for t in tests])),
                "mean_ci_width": float(np.mean([t["ci_width"] for t in tests])),
                "mean_unpaired_ci_width": float(np.mean([t["unpaired_ci_width"] for t in tests])),
                "width_ratio": _ratio(np.mean([t["unpaired_ci_width"] for t in tests]),
                                      np.mean([t["ci_width"] for t in tests])),
                "replications": tests,
            }
        pairs.append(entry)

    summary = {
        "experiment": "compare",
        "env": env_cfg["id"], "scm": world.name, "slate_size": world.slate_size, "seed": seed,
        "policies": names, "policy_configs": policies,
        "n_seeds": R, "steps": steps, "batch": batch, "eval_users": exp["eval_users"],
        "truth_users": exp["truth_users"], "unpaired": unpaired,
        "per_policy": {k: {m: v for m, v in runs[k].items() if v} for k in names},
        "per_policy_unpaired": {k: {m: v for m, v in independent[k].items() if v} for k in names} if unpaired else None,
        "pairs": pairs,
        "wall_s": time.perf_counter() - start,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_result(out_dir / "compare.json", "compare", summary)
    columns, rows = table_rows(pairs)
    tracker.estimates("compare", compare_scalars(pairs))
    tracker.table("compare", columns, rows)
    tracker.summary({"wall_s": summary["wall_s"], "n_seeds": R, "steps": steps})
    return {**summary, "table": format_table(columns, rows, summary)}


def _ratio(unpaired_width: float, paired_width: float) -> float | None:
    """How many times narrower the paired interval is (None when it has width 0)."""
    return float(unpaired_width / paired_width) if paired_width > 0 else None


def _agent_seed(seed: int, replication: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, replication, stream]).generate_state(1)[0] % 2**31)


def table_rows(pairs: list[dict]) -> tuple[list[str], list[list]]:
    columns = ["a - b", "metric", "difference", "paired 95% CI", "unpaired 95% CI", "width ratio"]
    rows = []
    for p in pairs:
        for m in METRICS:
            if m not in p:
                continue
            x, u = p[m], p[m].get("unpaired")
            rows.append([f"{p['a']} - {p['b']}", m, x["difference"], f"[{x['ci_low']:.5g}, {x['ci_high']:.5g}]",
                         f"[{u['ci_low']:.5g}, {u['ci_high']:.5g}]" if u else "-",
                         x.get("width_ratio")])
        if "ab_test" in p:
            t = p["ab_test"]
            rows.append([f"{p['a']} - {p['b']}", f"A/B test of final policies ({t['eval_users']:,} users)",
                         float(np.mean([r["estimate"] for r in t["replications"]])),
                         f"covers the truth {t['coverage']:.0%}, mean width {t['mean_ci_width']:.3g}",
                         f"covers {t['unpaired_coverage']:.0%}, mean width {t['mean_unpaired_ci_width']:.3g}",
                         t["width_ratio"]])
    return columns, rows


def format_table(columns: list[str], rows: list[list], summary: dict) -> str:
    def cell(v):
        return "-" if v is None else f"{v:.5g}" if isinstance(v, float) else str(v)

    cells = [columns] + [[cell(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    head = (f"paired comparison (common random numbers): {summary['env'].rsplit('/', 1)[-1]} · scm={summary['scm']} · "
            f"slate size {summary['slate_size']}; {summary['n_seeds']} replications x {summary['steps']:,} steps")
    return "\n".join([head] + ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells])
