"""Adaptive agents in a changing world: measure the targets and write them into docs/dynamics.md.

    python scripts/dynamics_report.py                      # everything (about half an hour on 2 cores)
    python scripts/dynamics_report.py --only russac --russac-seeds 10

* Russac, Vernade & Cappé (NeurIPS 2019)'s two non-stationary linear bandits (scm=russac_abrupt,
  scm=russac_smooth): dynamic regret of LinUCB, D-LinUCB and SW-LinUCB at T = 6,000, in their
  setting: one shared parameter (``shared=True``), lambda = 0.1, delta = 0.01, S = 1, sigma = 1,
  alpha = 1, D-LinUCB's gamma = 1 - (B_T / (d T))^(2/3), SW-LinUCB's window (d T / B_T)^(2/3)
  (B_T: theta's path length, 4 + sqrt(2) abrupt, pi / 2 smooth); LinUCB is the same radius
  without forgetting (OFUL's: D-LinUCB with gamma = 1). Every agent meets the same users.
* scm=drift: the online runner (``run_online``, as ``scripts/run.py``) with the packaged agent
  configs, cumulative dynamic regret and the regret after each change point.
* scm=churn: new-item regret (a new item's first 1,000 impressions) of ``linucb_text`` and the
  id-only ``linucb``.
* ope_shift: ``experiment=ope_shift`` on scm=user_shift (only the users change) and scm=drift
  (the reward function changes): each estimator with and without the contexts' density ratio,
  against the exact values before and after the change.

The results go to a JSON file and replace the section between the ``results`` markers of
docs/dynamics.md.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

D, K, T = 2, 50, 6000
B_T = {"russac_abrupt": 4 + math.sqrt(2), "russac_smooth": math.pi / 2}
RUSSAC_COMMON = dict(lambda_=0.1, sigma=1.0, S=1.0, L=1.0, delta=0.01, alpha=1.0, shared=True)
MARK = "<!-- results:{part}:{edge} (scripts/dynamics_report.py) -->"


def russac_agents(scm: str, seed: int) -> dict:
    from recsim_causal.agents import DLinUCB, SWLinUCB

    gamma = 1 - (B_T[scm] / (D * T)) ** (2 / 3)
    window = int(round((D * T / B_T[scm]) ** (2 / 3)))
    return {"LinUCB": DLinUCB(K, K * D, gamma=1.0, seed=seed, **RUSSAC_COMMON),
            "D-LinUCB": DLinUCB(K, K * D, gamma=gamma, seed=seed, **RUSSAC_COMMON),
            "SW-LinUCB": SWLinUCB(K, K * D, window=window, seed=seed, **RUSSAC_COMMON)}


def russac_run(scm: str, seed: int) -> dict[str, float]:
    """Each agent's dynamic regret at T: sum_t max_a <a, theta_t> - <a_t, theta_t>, the same users for all."""
    from recsim_causal.scm import World

    world = World(scm, n_items=K, seed=0, dtype="float64")
    rng = np.random.default_rng([seed, 21])
    users = [world.sample_users(1, rng, t) for t in range(T)]
    best = np.array([float(world.expected_reward(u).max()) for u in users])
    out = {}
    for name, agent in russac_agents(scm, seed).items():
        act_rng = np.random.default_rng([seed, 22])
        regret = 0.0
        for t, u in enumerate(users):
            x = world.observe(u).astype(np.float64)
            a, _ = agent.act(x, act_rng)
            outcome = world.respond(u, a)
            regret += best[t] - float(outcome.expected_reward[0])
            agent.update(x, a, outcome.reward)
        out[name] = regret
    return out


def online(scm: str, agent: str, seed: int, steps: int, overrides: dict | None = None) -> dict:
    """One online run as ``scripts/run.py scm=<scm> agent=<agent> seed=<seed>`` would make it."""
    from omegaconf import OmegaConf

    from recsim_causal.experiment.online import run_online
    from recsim_causal.scm import load_scm_config
    from recsim_causal.scm.world import CONF_DIR

    cfg = {"agent": {**OmegaConf.to_container(OmegaConf.load(CONF_DIR / "agent" / f"{agent}.yaml")), **(overrides or {})},
           "env": OmegaConf.to_container(OmegaConf.load(CONF_DIR / "env" / "bandit.yaml")),
           "scm": load_scm_config(scm), "seed": seed,
           "experiment": {**OmegaConf.to_container(OmegaConf.load(CONF_DIR / "experiment" / "online.yaml")),
                          "steps": steps, "progress": False, "save_log": False}}
    with tempfile.TemporaryDirectory() as out:
        return run_online(cfg, out, resolved=cfg)


def mean_sd(values: list[float]) -> str:
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):,.1f} ± {sd:,.1f}"


def report_russac(seeds: int) -> tuple[dict, list[str]]:
    res = {scm: {} for scm in B_T}
    for scm in B_T:
        runs = [russac_run(scm, s) for s in range(seeds)]
        res[scm] = {name: [r[name] for r in runs] for name in runs[0]}
        print(scm, {k: round(float(np.mean(v)), 1) for k, v in res[scm].items()}, flush=True)
    lines = [f"Dynamic regret at T = 6,000 (mean ± sd over {seeds} seeds; lower is better):", "",
             "| scm | LinUCB | D-LinUCB | SW-LinUCB | ordering |", "| --- | --- | --- | --- | --- |"]
    for scm, r in res.items():
        lin, dl, sw = (float(np.mean(r[k])) for k in ("LinUCB", "D-LinUCB", "SW-LinUCB"))
        ok = "D-LinUCB, SW-LinUCB < LinUCB" if dl < lin and sw < lin else "not reproduced"
        lines.append(f"| {scm} | {mean_sd(r['LinUCB'])} | {mean_sd(r['D-LinUCB'])} | {mean_sd(r['SW-LinUCB'])} | {ok} |")
    lines += ["", "Russac et al. show these two scenarios as regret curves (their simulations section and the figures "
              "of their code, YRussac/WeightedLinearBandits), with D-LinUCB and SW-LinUCB well below LinUCB in both; "
              "they give no table of values at T, so the ordering is what is compared here."]
    return res, lines


def report_drift(seeds: int, steps: int, agents: list[str]) -> tuple[dict, list[str]]:
    res = {}
    for agent in agents:
        runs = [online("drift", agent, s, steps) for s in range(seeds)]
        res[agent] = {"cumulative_regret": [r["cumulative_regret"] for r in runs],
                      "recovery_regret": [float(np.sum(r["recovery_regret"])) for r in runs],
                      "change_points": runs[0]["change_points"], "wall_s": [r["wall_s"] for r in runs]}
        print("drift", agent, [round(x) for x in res[agent]["cumulative_regret"]], flush=True)
    base = float(np.mean(res["linucb"]["cumulative_regret"]))
    lines = [f"`scm=drift`, {steps:,} decisions (change points at {', '.join(f'{c:,}' for c in res['linucb']['change_points'])}), "
             f"{seeds} seeds, the packaged agent configs:", "",
             "| agent | cumulative dynamic regret | × LinUCB | regret in the 10,000 decisions after the changes |",
             "| --- | --- | --- | --- |"]
    for agent, r in res.items():
        ratio = float(np.mean(r["cumulative_regret"])) / base
        lines.append(f"| {agent} | {mean_sd(r['cumulative_regret'])} | {ratio:.2f} | {mean_sd(r['recovery_regret'])} |")
    best = min((a for a in res if a != "linucb"), key=lambda a: np.mean(res[a]["cumulative_regret"]))
    ratio = float(np.mean(res[best]["cumulative_regret"])) / base
    lines += ["", f"Best adaptive agent: `{best}`, {ratio:.2f} × LinUCB's dynamic regret (target ≤ 0.8: "
              f"{'met' if ratio <= 0.8 else 'not met'})."]
    return res, lines


CHURN_AGENTS = (("linucb", "linucb", {}), ("linucb (alpha=0.3)", "linucb", {"alpha": 0.3}),
                ("linucb_text", "linucb_text", {}))


def report_churn(seeds: int, steps: int) -> tuple[dict, list[str]]:
    res = {}
    for label, agent, overrides in CHURN_AGENTS:
        runs = [online("churn", agent, s, steps, overrides) for s in range(seeds)]
        res[label] = {k: [r[k] for r in runs] for k in ("new_item_regret", "new_item_impressions", "cumulative_regret")}
        print("churn", label, [round(x) for x in res[label]["new_item_regret"]], flush=True)
    lines = [f"`scm=churn`, {steps:,} decisions, {seeds} seeds: regret over each new item's first 1,000 impressions "
             "(`linucb_text` explores with alpha = 0.3; the id-only LinUCB is shown with its default alpha = 1 and "
             "with the same alpha = 0.3):", "",
             "| agent | new-item regret | new-item impressions | cumulative dynamic regret |",
             "| --- | --- | --- | --- |"]
    for label, r in res.items():
        lines.append(f"| {label} | {mean_sd(r['new_item_regret'])} | {np.mean(r['new_item_impressions']):,.0f} | "
                     f"{mean_sd(r['cumulative_regret'])} |")
    text = float(np.mean(res["linucb_text"]["new_item_regret"]))
    for label in ("linucb", "linucb (alpha=0.3)"):
        ratio = text / float(np.mean(res[label]["new_item_regret"]))
        lines.append(f"\n`linucb_text` / `{label}` new-item regret: {ratio:.2f} (target ≤ 0.7: "
                     f"{'met' if ratio <= 0.7 else 'not met'}).")
    return res, lines


SHIFT_SCMS = ("user_shift", "drift")


def report_ope_shift(seeds: int, n_items: int = 50) -> tuple[dict, list[str]]:
    """``experiment=ope_shift`` with its packaged config (``seeds`` logs) on both kinds of shift."""
    from omegaconf import OmegaConf

    from recsim_causal.experiment.ope_shift import run_ope_shift
    from recsim_causal.scm import load_scm_config
    from recsim_causal.scm.world import CONF_DIR

    res, lines = {}, []
    exp = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "experiment" / "ope_shift.yaml"))
    for scm in SHIFT_SCMS:
        cfg = {"env": {**OmegaConf.to_container(OmegaConf.load(CONF_DIR / "env" / "bandit.yaml")), "n_items": n_items},
               "scm": load_scm_config(scm), "seed": 0, "experiment": {**exp, "seeds": seeds}}
        with tempfile.TemporaryDirectory() as out:
            s = run_ope_shift(cfg, out, resolved=cfg)
        res[scm] = {k: s[k] for k in ("rows", "weights", "t_before", "t_after")}
        print(s["table"], flush=True)
        target = s["rows"][0]["target"]
        ess = float(np.mean([w["ess_ratio"] for w in s["weights"]]))
        lines += [f"`experiment=ope_shift scm={scm}`, K = {n_items}, a log of {exp['n_rounds']:,} rounds at t = "
                  f"{s['t_before']:,} (LinUCB logger, epsilon {exp['logger']['epsilon']}), the `{target}` target "
                  f"evaluated for t = {s['t_after']:,}; means over {seeds} seeds; the context weights keep "
                  f"{100 * ess:.0f}% of the rounds (ESS):", "",
                  "| estimator | weights | estimate | V before | V after | error vs V after | RMSE | covers V after |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in s["rows"]:
            if r["target"] == target:
                lines.append(f"| {r['estimator']} | {r['weights']} | {r['estimate']:.4f} | {r['truth_before']:.4f} | "
                             f"{r['truth_after']:.4f} | {r['error_after']:+.4f} | {r['rmse_after']:.4f} | "
                             f"{r['covers_after']:.2f} |")
        lines.append("")
    return res, lines


def write_section(path: Path, part: str, body: list[str]) -> None:
    """Replace the part's section of the docs page (between its two markers; appended if absent)."""
    from recsim_causal.io import atomic_path

    begin, end = MARK.format(part=part, edge="begin"), MARK.format(part=part, edge="end")
    text = path.read_text()
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
    else:
        head, tail = text.rstrip() + "\n\n", "\n"
    with atomic_path(path) as tmp:
        Path(tmp).write_text(head + begin + "\n" + "\n".join(body) + "\n" + end + tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="russac,drift,churn,ope_shift")
    parser.add_argument("--russac-seeds", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=150_000)
    parser.add_argument("--drift-agents", default="linucb,d_linucb,sw_linucb,restart_linucb")
    parser.add_argument("--json", default=None)
    parser.add_argument("--docs", default=str(ROOT / "docs" / "dynamics.md"))
    args = parser.parse_args()
    from recsim_causal.io import write_json
    from recsim_causal.threads import single_threaded_blas

    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    results = {}
    with single_threaded_blas():
        for part in parts:
            start = time.perf_counter()
            if part == "russac":
                results[part], lines = report_russac(args.russac_seeds)
            elif part == "drift":
                results[part], lines = report_drift(args.seeds, args.steps, args.drift_agents.split(","))
            elif part == "churn":
                results[part], lines = report_churn(args.seeds, args.steps)
            elif part == "ope_shift":
                results[part], lines = report_ope_shift(args.seeds)
            else:
                sys.exit(f"--only: unknown part {part!r} (known: russac, drift, churn, ope_shift)")
            stamp = (f"Measured by `python scripts/dynamics_report.py --only {part}` on {time.strftime('%Y-%m-%d')} "
                     f"({os.cpu_count()} CPU cores, numpy {np.__version__}, {time.perf_counter() - start:,.0f} s).")
            body = [f"### {part}", "", stamp, "", *lines]
            write_section(Path(args.docs), part, body)
            print("\n".join(body), flush=True)
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
