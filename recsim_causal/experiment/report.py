"""Turn a sweep into an answer: a leaderboard of agents, mean and 95% CI over seeds.

    python scripts/report.py multirun/2026-11-27/12-00-00 [--metric cumulative_regret]

Reads every ``summary.json`` under the sweep directory, groups runs by (agent, env, scm),
and writes ``leaderboard.md`` and ``leaderboard.png`` (error bars) into the sweep directory.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from recsim_causal.experiment.plots import errorbar_plot
from recsim_causal.io import atomic_write

# two-sided 95% Student t quantiles t_{0.975, df}, df = 1..30 (1.96 beyond)
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
LOWER_IS_BETTER = {"cumulative_regret", "regret_second_half", "regret_first_half", "wall_s"}


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t confidence interval (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, (T975[n - 2] if n - 1 <= len(T975) else 1.96) * sd / math.sqrt(n)


def load_summaries(sweep_dir: str | Path) -> list[dict]:
    paths = sorted(Path(sweep_dir).rglob("summary.json"))
    return [json.loads(p.read_text()) | {"_path": str(p)} for p in paths]


def leaderboard(summaries: list[dict], metric: str = "cumulative_regret") -> list[dict]:
    """One row per (agent, env, scm): n_seeds, mean and 95% CI of ``metric`` and of mean_reward,
    best first."""
    if not summaries:
        raise ValueError("report: no summary.json found under the sweep directory")
    if metric not in summaries[0]:
        raise ValueError(f"report.metric: unknown metric '{metric}' (known: {', '.join(k for k in summaries[0] if not k.startswith('_'))})")
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for s in summaries:
        groups[(s.get("agent"), s.get("env"), s.get("scm"))].append(s)
    rows = []
    for (agent, env, scm), runs in groups.items():
        m, ci = mean_ci([float(r[metric]) for r in runs])
        rm, rci = mean_ci([float(r["mean_reward"]) for r in runs])
        rows.append({"agent": agent, "env": env, "scm": scm, "n_seeds": len(runs), "metric": metric,
                     "mean": m, "ci95": ci, "mean_reward": rm, "mean_reward_ci95": rci})
    rows.sort(key=lambda r: r["mean"], reverse=metric not in LOWER_IS_BETTER)
    return rows


def to_markdown(rows: list[dict]) -> str:
    metric = rows[0]["metric"]
    lines = [f"| rank | agent | env | scm | seeds | {metric} (mean ± 95% CI) | mean_reward (mean ± 95% CI) |",
             "|---:|---|---|---|---:|---:|---:|"]
    for i, r in enumerate(rows, 1):
        lines.append(f"| {i} | {r['agent']} | {r['env']} | {r['scm']} | {r['n_seeds']} | "
                     f"{r['mean']:,.2f} ± {r['ci95']:,.2f} | {r['mean_reward']:.4f} ± {r['mean_reward_ci95']:.4f} |")
    return "\n".join(lines)


def write_report(sweep_dir: str | Path, metric: str = "cumulative_regret") -> str:
    """Write leaderboard.md and leaderboard.png into ``sweep_dir``; return the markdown table."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ValueError(f"report: sweep directory '{sweep_dir}' does not exist")
    rows = leaderboard(load_summaries(sweep_dir), metric)
    table = to_markdown(rows)
    with atomic_write(sweep_dir / "leaderboard.md") as f:
        f.write(table + "\n")
    labels = [f"{r['agent']} ({r['scm']})" if len({x['scm'] for x in rows}) > 1 else r["agent"] for r in rows]
    errorbar_plot(labels, [r["mean"] for r in rows], [r["mean"] - r["ci95"] for r in rows],
                  [r["mean"] + r["ci95"] for r in rows], sweep_dir / "leaderboard.png",
                  xlabel=f"{metric} (mean, 95% CI over seeds)", title=f"Leaderboard: {sweep_dir.name}")
    return table
