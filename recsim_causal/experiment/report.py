"""Turn a sweep into an answer: leaderboards keyed by what differs, one table per setting.

    python scripts/report.py multirun/2026-11-27/12-00-00 [--metric cumulative_regret] [--force]

Every run directory under the sweep is read: ``summary.json`` (online), ``ope.json`` (OPE),
``coverage.json`` (OPE coverage), ``ope_shift.json`` (OPE across a change), ``ops.json``
(off-policy selection) or ``offline.json`` (offline learning), with the run's resolved config from ``.hydra/config.yaml``
(or the ``config`` kept in the result file). Runs are split by *setting* (env id x scm x slate
size): ranks are only ever within one setting, and a mixed sweep gives one table per setting.
Inside a setting, a row is keyed by the resolved config values that differ across its runs
(agent target and parameters, experiment settings, ...); only seeds are averaged, each metric
with its mean and a 95% Student t interval over seeds (clipped to the metric's range: regret
is never below 0). With one seed a row says "1 seed, no interval".

OPE sweeps give one row per (config, target, estimator): mean error with its interval, RMSE,
the share of intervals that covered the truth (with a Wilson 95% interval) and the mean
interval width. Coverage sweeps give one row per (config, target, estimator, interval method)
with the replications' bias, RMSE, coverage and mean width. OPE-across-a-change sweeps give one
row per (config, target, estimator, weights): the OPE row's numbers against the truth *after*
the change, every log of every run one replication (a log two runs share counts once).
Selection sweeps give one row per (config, estimator): each selection metric's mean over seeds.

Files, into the sweep directory: ``leaderboard.md``, ``leaderboard.json`` (rows: ``setting``,
``config`` (the differing values), ``n_seeds``, every metric's mean, 95% CI and which direction
is better, and the per-seed values it came from), ``leaderboard.png`` (one panel per setting),
for online sweeps ``curves.png`` / ``curves.json``, and for OPE, coverage, OPE-across-a-change and
selection sweeps estimator x config heatmaps ``heatmap_<metric>.png`` of the error and of coverage
(coverage: a panel per interval method; selection: of its metric). A metric other than the default is
written as ``leaderboard_<metric>.*``; an existing report is never overwritten without
``force``.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from recsim_causal.io import atomic_write, write_json
from recsim_causal.results import better, fmt, read_result

# two-sided 95% Student t quantiles t_{0.975, df}, df = 1..30 (1.96 beyond)
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
RESULT_FILES = {"summary.json": "online", "ope.json": "ope", "coverage.json": "coverage", "compare.json": "compare",
                "offline.json": "offline", "ope_shift.json": "ope_shift", "ops.json": "ops"}
# ops: regret@1, the value lost by deploying the estimator's pick (ops.py's first top-k column)
DEFAULT_METRIC = {"online": "cumulative_regret", "ope": "rmse", "coverage": "rmse", "offline": "true_value",
                  "ope_shift": "rmse", "ops": "regret@1"}
# keys that never distinguish configs: the seed is averaged; tracking and display knobs change no number
IGNORED_PREFIXES = ("seed", "wandb.", "hydra.", "experiment.progress", "experiment.curve_points",
                    "experiment.save_log", "experiment.name")
SETTING_KEYS = ("env.id", "env.slate_size", "scm.name")
NONNEGATIVE_WORDS = ("regret", "rmse", "width", "wall", "steps_per_s", "coverage", "bias_se", "sharpe")
#: metrics (name before any ``@k``) that live in a bounded range: a share, nDCG, rank correlations
BOUNDED = {"coverage": (0.0, 1.0), "ndcg": (0.0, 1.0), "spearman": (-1.0, 1.0), "kendall": (-1.0, 1.0)}
FILE_KIND = {"online": "summary", "ope": "ope", "coverage": "coverage", "compare": "compare", "offline": "offline",
             "ope_shift": "ope_shift", "ops": "ops"}  # report kind -> result kind


def direction(metric: str, kind: str | None = None) -> str | None:
    """Which direction of ``metric`` is better, as its result kind declares it
    (:mod:`recsim_causal.results`): lower, higher, closer to 0, closer to 0.95 or None (a count)."""
    return better(metric, FILE_KIND.get(kind) if kind else None) if metric else None


def t975(df: int) -> float:
    return T975[df - 1] if df <= len(T975) else 1.96


def mean_ci(values: Iterable[float], metric: str = "") -> dict:
    """Mean and 95% t interval over seeds: ``{mean, ci_low, ci_high, ci95, n}``.

    The interval is clipped to the metric's range (>= 0 for regret, RMSE, widths, times and
    SharpeRatio; [0, 1] for coverage and nDCG; [-1, 1] for Spearman's and Kendall's correlations): clipping a confidence interval to the parameter space keeps its coverage.
    One value: no interval (``ci_low``/``ci_high``/``ci95`` None).
    """
    v = np.asarray([float(x) for x in values], float)
    n = len(v)
    out: dict[str, Any] = {"mean": float(v.mean()), "ci_low": None, "ci_high": None, "ci95": None, "n": n,
                           "better": direction(metric)}
    if n >= 2:
        half = t975(n - 1) * float(v.std(ddof=1)) / math.sqrt(n)
        lo, hi = out["mean"] - half, out["mean"] + half
        if any(w in metric for w in NONNEGATIVE_WORDS):
            lo = max(lo, 0.0)
        bounds = BOUNDED.get(metric.split("@")[0])
        if bounds is not None:
            lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        out.update(ci_low=lo, ci_high=hi, ci95=half)
    return out


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson 95% interval for a proportion k / n (the coverage of n intervals)."""
    z = 1.959964
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


# ---------------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One run of a sweep: its directory, kind (a value of :data:`RESULT_FILES`), result
    file contents, flattened resolved config (dotted keys) and seed."""

    path: Path
    kind: str
    result: dict
    config: dict[str, Any]
    seed: Any = None


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """``{"agent": {"alpha": 1}}`` -> ``{"agent.alpha": 1}``; lists become their JSON text."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(d, (list, tuple)):
        out[prefix[:-1]] = json.dumps(d, sort_keys=True, default=str)
    else:
        out[prefix[:-1]] = d
    return out


def load_config(run_dir: Path, result: dict) -> dict:
    """The run's resolved config: ``.hydra/config.yaml`` (Hydra's record of the job), else the
    ``config`` kept in the result file, else {}."""
    path = run_dir / ".hydra" / "config.yaml"
    if path.is_file():
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(path)
        try:
            return OmegaConf.to_container(cfg, resolve=True)
        except Exception:  # an interpolation that needs Hydra's runtime: keep it as written
            return OmegaConf.to_container(cfg, resolve=False)
    for key in ("config", "resolved_config"):
        if isinstance(result.get(key), dict):
            return result[key]
    return {}


def _left_out(path: Path, why: str) -> None:
    print(f"warning: report: {path} left out: {why}", file=sys.stderr, flush=True)


def find_runs(sweep_dir: str | Path) -> list[Run]:
    """Every run under ``sweep_dir`` (a directory holding one of the result files)."""
    runs = []
    for name, kind in RESULT_FILES.items():
        for p in sorted(Path(sweep_dir).rglob(name)):
            try:
                _, result = read_result(p, FILE_KIND[kind])
            except ValueError as e:
                raise ValueError(f"report: {e}") from None
            config = load_config(p.parent, result)
            if not config:
                _left_out(p, "no .hydra/config.yaml beside it and no config in it: its settings are unknown")
                continue
            flat = flatten(config)
            if kind != "online":  # agent.* is the unused online default there: never a row key
                flat = {k: v for k, v in flat.items() if not k.startswith("agent.")}
            seed = flat.get("seed", result.get("seed"))
            runs.append(Run(p.parent, kind, result, flat, seed))
    return runs


def setting_of(run: Run) -> dict[str, Any]:
    """env id x scm x slate size of a run (from its config, else its result file)."""
    c, r = run.config, run.result
    env = c.get("env.id") or r.get("env") or "?"
    if run.kind in ("ope", "coverage") and (c.get("experiment.data") or r.get("data")):
        env = f"data:{c.get('experiment.data') or r.get('data')}"
    scm = c.get("scm.name") or r.get("scm") or "?"
    return {"env": str(env).rsplit("/", 1)[-1], "scm": scm, "slate_size": int(c.get("env.slate_size") or 1)}


def setting_label(s: dict) -> str:
    return f"{s['env']} · scm={s['scm']} · slate size {s['slate_size']}"


def differing_keys(runs: list[Run], always: Iterable[str] = ()) -> list[str]:
    """Config keys whose values differ across ``runs`` (a key missing in some runs differs),
    minus the seed, tracking knobs and the setting itself; ``always`` are kept regardless."""
    keys = sorted({k for r in runs for k in r.config})
    out = []
    for k in keys:
        if k.startswith(IGNORED_PREFIXES) or k in SETTING_KEYS:
            continue
        values = {json.dumps(r.config.get(k, "<missing>"), sort_keys=True, default=str) for r in runs}
        if len(values) > 1 or k in always:
            out.append(k)
    # a parameter that is constant among the runs of each _target_ (LinUCB's alpha next to
    # RandomPolicy, which has none) says nothing the target does not: keep the label short
    return [k for k in out if k in always or not _fixed_by_target(runs, k)]


def _fixed_by_target(runs: list[Run], key: str) -> bool:
    """True when ``key``'s value (missing included) is the same for all runs sharing the
    ``_target_`` next to it (``agent.alpha`` next to ``agent._target_``)."""
    prefix = key.rsplit(".", 1)[0] if "." in key else ""
    target = f"{prefix}._target_"
    if key.endswith("_target_") or not any(target in r.config for r in runs):
        return False
    seen: dict[str, str] = {}
    for r in runs:
        value = json.dumps(r.config.get(key, "<missing>"), sort_keys=True, default=str)
        if seen.setdefault(str(r.config.get(target)), value) != value:
            return False
    return True


def config_label(config: dict[str, Any]) -> str:
    """A short row label: the agent's class name, then ``name=value`` for the other keys (last
    dotted part when that is unambiguous)."""
    lasts = [k.rsplit(".", 1)[-1] for k in config]
    parts = []
    for k, v in config.items():
        if v is None and k != "agent._target_":
            continue
        if k.endswith("_target_"):
            parts.append(str(v).rsplit(".", 1)[-1])
            continue
        name = k.rsplit(".", 1)[-1]
        parts.append(f"{name if lasts.count(name) == 1 else k}={v}")
    return " ".join(parts) or "(all runs alike)"


def new_row(label: str, setting: dict, config: dict, runs: list[Run]) -> dict:
    """A leaderboard row (metrics filled in by the caller)."""
    return {"setting": label, "setting_values": setting, "config": config, "label": config_label(config),
            "n_seeds": len(runs), "seeds": [r.seed for r in runs], "runs": [str(r.path) for r in runs], "metrics": {}}


def _group(runs: list[Run], always: Iterable[str] = ()) -> dict[tuple, tuple[dict, list[Run]]]:
    """Runs of one setting grouped by their differing config values."""
    keys = differing_keys(runs, always)
    groups: dict[tuple, tuple[dict, list[Run]]] = {}
    for r in runs:
        cfg = {k: r.config.get(k) for k in keys}
        key = tuple(json.dumps(cfg[k], sort_keys=True, default=str) for k in keys)
        group = groups.setdefault(key, (cfg, []))[1]
        twin = next((o for o in group if o.seed == r.seed), None)
        if twin is not None:  # a copied job directory would count as another seed
            raise ValueError(f"report: {twin.path} and {r.path} are the same config with seed {r.seed!r} "
                             "(a copied job directory?); remove one")
        group.append(r)
    return groups


def by_setting(runs: list[Run]) -> dict[str, tuple[dict, list[Run]]]:
    """Runs by setting label, settings in alphabetical order."""
    out: dict[str, tuple[dict, list[Run]]] = {}
    for r in runs:
        s = setting_of(r)
        out.setdefault(setting_label(s), (s, []))[1].append(r)
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- online runs


def numeric_metrics(result: dict) -> list[str]:
    return [k for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seed"]


def online_rows(runs: list[Run], metric: str) -> list[dict]:
    """Leaderboard rows of online runs: per setting, per differing config, ranked by ``metric``."""
    known = sorted({k for r in runs for k in numeric_metrics(r.result)})
    if metric not in known:
        if any(metric in r.result for r in runs):
            raise ValueError(f"report.metric: '{metric}' is not a numeric metric (numeric: {', '.join(known)})")
        raise ValueError(f"report.metric: unknown metric '{metric}' (known: {', '.join(known)})")
    metrics = [metric] + [m for m in ("mean_reward", "cumulative_regret") if m != metric and m in known]
    # the training a policy had before its online run (PPO's total_timesteps): stated beside its regret
    if metric != "train_steps" and any((_num(r.result.get("train_steps")) or 0) > 0 for r in runs):
        metrics.append("train_steps")
    rows = []
    for label, (setting, srs) in by_setting(runs).items():
        srows = []
        for cfg, group in _group(srs, always=["agent._target_"]).values():
            group.sort(key=lambda r: (str(r.seed), str(r.path)))
            row = new_row(label, setting, cfg, group)
            for m in metrics:
                vals = [r.result.get(m) for r in group]
                vals = [float(v) for v in vals if isinstance(v, (int, float))]
                if vals:
                    row["metrics"][m] = {**mean_ci(vals, m), "values": vals}
            srows.append(row)
        rows.extend(_rank(srows, metric))
    return rows


def _rank(rows: list[dict], metric: str) -> list[dict]:
    better = direction(metric)
    if better is None:
        raise ValueError(f"report.metric: '{metric}' is a count, not a verdict (it declares no better direction)")

    def key(r):
        m = r["metrics"].get(metric)
        if m is None:
            return math.inf
        return m["mean"] if better == "lower" else abs(m["mean"]) if better == "closer to 0" else -m["mean"]

    rows.sort(key=key)
    # A row shares the rank of the best row of its group while their 95% intervals overlap:
    # the data cannot order them (a row with one seed has no interval: its mean stands for it).
    leader = None
    for i, r in enumerate(rows, 1):
        if leader is not None and _overlap(leader["metrics"].get(metric), r["metrics"].get(metric)):
            r["rank"], r["shares_rank"] = leader["rank"], True
        else:
            r["rank"], leader = i, r
    return rows


def _overlap(a: dict | None, b: dict | None) -> bool:
    """Whether two metrics' 95% intervals overlap (no interval: the mean)."""
    if a is None or b is None:
        return False
    lo_a, hi_a = (a["mean"], a["mean"]) if a.get("ci_low") is None else (a["ci_low"], a["ci_high"])
    lo_b, hi_b = (b["mean"], b["mean"]) if b.get("ci_low") is None else (b["ci_low"], b["ci_high"])
    return lo_a <= hi_b and lo_b <= hi_a


# -------------------------------------------------------------------------- offline runs


def offline_rows(runs: list[Run], metric: str) -> list[dict]:
    """Rows of offline-learning runs: one per (differing config, learner), ranked by ``metric``:
    the learner's exact value, its held-out and training-part estimates by the run's
    ``select_by`` estimator, and the training estimate's excess over the truth."""
    rows = []
    for label, (setting, srs) in by_setting(runs).items():
        srows, seen = [], set()
        for cfg, group in _group(srs).values():
            group.sort(key=lambda r: (str(r.seed), str(r.path)))
            for learner in dict.fromkeys(k for r in group for k in r.result.get("learners", {})):
                # another learner's swept settings do not change this one: one row per effective config
                own = {k: v for k, v in cfg.items()
                       if not k.startswith("experiment.learners.") or k.startswith(f"experiment.learners.{learner}.")}
                key = json.dumps([own, learner], sort_keys=True, default=str)
                if key in seen:
                    continue
                seen.add(key)
                row = new_row(label, setting, {**own, "learner": learner}, group)
                values: dict[str, list[float]] = defaultdict(list)
                for r in group:
                    lr, by = r.result["learners"].get(learner), r.result.get("selection", {}).get("by")
                    if lr is None or by is None:
                        continue
                    for name, v in (("true_value", lr.get("true_value")), ("heldout_estimate", lr["ope_heldout"].get(by)),
                                    ("train_estimate", lr["ope_train"].get(by))):
                        if _num(v) is not None:
                            values[name].append(float(v))
                    if _num(lr["ope_train"].get(by)) is not None:
                        values["train_minus_truth"].append(float(lr["ope_train"][by]) - float(lr["true_value"]))
                for m, vals in values.items():
                    row["metrics"][m] = {**mean_ci(vals, m), "values": vals}
                srows.append(row)
        rows.extend(_rank(srows, metric))
    return rows


def offline_selection(rows: list[dict]) -> dict[str, dict]:
    """Per setting, across the sweep's (config, learner) rows: the pick by the best mean held-out
    estimate, the truly best by exact value, and the pick's regret."""
    out = {}
    for label in dict.fromkeys(r["setting"] for r in rows):
        srows = [r for r in rows if r["setting"] == label and "heldout_estimate" in r["metrics"]]
        if not srows:
            continue
        pick = max(srows, key=lambda r: r["metrics"]["heldout_estimate"]["mean"])
        best = max(srows, key=lambda r: r["metrics"]["true_value"]["mean"])
        v_pick, v_best = pick["metrics"]["true_value"]["mean"], best["metrics"]["true_value"]["mean"]
        out[label] = {"pick": pick["label"], "pick_true_value": v_pick, "best": best["label"],
                      "best_true_value": v_best, "regret": v_best - v_pick,
                      "line": f"{label}: pick by held-out estimate: {pick['label']} (true {v_pick:.4g}); truly best: "
                              f"{best['label']} (true {v_best:.4g}); regret {v_best - v_pick:.4g}"}  # fmt: skip
    return out


# ------------------------------------------------------------------------------ OPE runs


def _ope_records(result: dict) -> Iterable[tuple[str, str, dict]]:
    """(target, estimator, record) of an ope.json, read defensively (fields may be added)."""
    targets = result.get("targets")
    if not isinstance(targets, dict):
        return
    for target, t in targets.items():
        ests = t.get("estimators") if isinstance(t, dict) else None
        if not isinstance(ests, dict):
            continue
        for est, rec in ests.items():
            if isinstance(rec, dict):
                yield target, est, {**rec, "_truth": rec.get("truth", t.get("truth")),
                                    "_diag": _diagnostics_for(t.get("diagnostics"), est)}


def _diagnostics_for(diag: Any, est: str) -> dict | None:
    """A target's weight diagnostics for estimator ``est``: ``diagnostics[est]``, else the entry of
    the family whose name starts ``est`` (``ipw`` for ``ipw-clip``), else a flat block."""
    if not isinstance(diag, dict):
        return None
    if isinstance(diag.get(est), dict):
        return diag[est]
    family = [k for k, v in diag.items() if isinstance(v, dict) and est.startswith(k)]
    if family:
        return diag[max(family, key=len)]
    return diag if "ess_ratio" in diag else None


def ope_rows(runs: list[Run], metric: str) -> list[dict]:
    """Per setting, per differing config, per target x estimator: mean error (95% CI over seeds),
    RMSE, coverage (Wilson interval), mean width; ranked by ``metric`` within config x target."""
    _check_ope_metric(metric)
    rows = []
    for label, (setting, srs) in by_setting(runs).items():
        for cfg, group in _group(srs).values():
            cells: dict[tuple, list[tuple[Run, dict]]] = defaultdict(list)
            for r in group:
                for target, est, rec in _ope_records(r.result):
                    cells[(target, est)].append((r, rec))
            by_target: dict[str, list[dict]] = defaultdict(list)
            for (target, est), recs in cells.items():
                by_target[target].append(_ope_row(label, setting, {**cfg, "target": target, "estimator": est}, recs))
            for target_rows in by_target.values():
                rows.extend(_rank(target_rows, metric))
    return rows


#: the metrics an OPE row ranks by (OPE and OPE across a change)
OPE_METRICS = ("rmse", "mean_error", "coverage_error", "mean_width", "abs_error")


def _check_ope_metric(metric: str) -> None:
    if metric not in OPE_METRICS:
        raise ValueError(f"report.metric: '{metric}' is not an OPE metric (known: {', '.join(OPE_METRICS)})")


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _add_means(row: dict, values: dict[str, Iterable[Any]]) -> dict:
    """Each metric's finite values (one per seed) into ``row``: their mean and 95% t interval
    (:func:`mean_ci`) and the values; a metric without a finite value is left out."""
    for m, raw in values.items():
        vals = [v for v in map(_num, raw) if v is not None]
        if vals:
            row["metrics"][m] = {**mean_ci(vals, m), "values": vals}
    return row


def _ope_row(label: str, setting: dict, ident: dict, recs: list[tuple[Run, dict]]) -> dict:
    """A row of OPE replications ``recs`` (run, record with estimate, ci_low, ci_high, covers,
    ``_truth`` and ``_diag``) under the row config ``ident``."""
    row = new_row(label, setting, ident, [r for r, _ in recs])
    estimates = [_num(rec.get("estimate")) for _, rec in recs]
    truths = [_num(rec.get("_truth")) for _, rec in recs]
    errors = [e - t for e, t in zip(estimates, truths) if e is not None and t is not None]
    widths = [_num(rec.get("ci_high")) - _num(rec.get("ci_low")) for _, rec in recs
              if _num(rec.get("ci_high")) is not None and _num(rec.get("ci_low")) is not None]
    covers = [bool(rec["covers"]) for _, rec in recs if isinstance(rec.get("covers"), (bool, int))]
    m = row["metrics"]
    ests = [e for e in estimates if e is not None]
    if ests:
        m["estimate"] = {**mean_ci(ests, "estimate"), "values": ests}
    if errors:
        m["mean_error"] = {**mean_ci(errors, "mean_error"), "values": errors}
        m["abs_error"] = {**mean_ci(np.abs(errors), "abs_error"), "values": list(np.abs(errors))}
        m["rmse"] = {"mean": math.sqrt(float(np.mean(np.square(errors)))), "ci_low": None, "ci_high": None,
                     "ci95": None, "n": len(errors), "better": "lower"}
    if covers:
        k, n = sum(covers), len(covers)
        lo, hi = wilson(k, n)
        m["coverage"] = {"mean": k / n, "ci_low": lo, "ci_high": hi, "n": n, "better": "closer to 0.95",
                         "values": covers}
        m["coverage_error"] = {"mean": abs(k / n - 0.95), "n": n, "better": "lower"}
    if widths:
        m["mean_width"] = {**mean_ci(widths, "mean_width"), "values": widths}
    for key in ("ess_ratio", "max_weight"):  # diagnostics, where the OPE run wrote them
        vals = [_num((rec.get("_diag") or {}).get(key, rec.get(key))) for _, rec in recs]
        vals = [v for v in vals if v is not None]
        if vals:
            m[key] = {**mean_ci(vals, key), "values": vals}
    return row


# --------------------------------------------------------------- OPE across a change runs

#: the fields of every per-log row of an ope_shift.json the report reads
SHIFT_FIELDS = ("target", "estimator", "weights", "estimate", "ci_low", "ci_high", "truth_after", "covers_after")


def _shift_logs(run: Run) -> list[dict]:
    """The per-log blocks (``{"rows": [...], "weights": {...}}``) of an ope_shift.json, checked:
    a file without them is one line naming the file and the field."""
    where = run.path / "ope_shift.json"
    logs = run.result.get("runs")
    if not isinstance(logs, list) or not logs:
        raise ValueError(f"report: {where}: runs: expected the per-log results (a non-empty list), got {logs!r:.60}")
    for i, log in enumerate(logs):
        rows = log.get("rows") if isinstance(log, dict) else None
        if not isinstance(rows, list):
            raise ValueError(f"report: {where}: runs[{i}].rows: expected a list of rows, got {rows!r:.60}")
        for j, row in enumerate(rows):
            missing = [f for f in SHIFT_FIELDS if not isinstance(row, dict) or f not in row]
            if missing:
                raise ValueError(f"report: {where}: runs[{i}].rows[{j}]: expected the fields {', '.join(SHIFT_FIELDS)} "
                                 f"(missing {', '.join(missing)})")
    return logs


def ope_shift_rows(runs: list[Run], metric: str) -> list[dict]:
    """Per setting, per differing config, per target x estimator x weights (none | context): the
    OPE row (:func:`_ope_row`) against the truth after the change, V_after, over every log of
    every run (each log one replication; a log seed two runs share, seed + i of
    ``experiment.seeds`` overlapping the sweep's seeds, is the same log and counts once); ranked
    by ``metric`` within config x target. The context-weighted rows carry the context weights'
    ESS ratio and largest weight."""
    _check_ope_metric(metric)
    rows = []
    for label, (setting, srs) in by_setting(runs).items():
        for cfg, group in _group(srs).values():
            group.sort(key=lambda r: (str(r.seed), str(r.path)))
            cells: dict[tuple, list[tuple[Run, dict]]] = defaultdict(list)
            log_seeds: dict[tuple, list] = defaultdict(list)
            seen: dict[Any, Run] = {}
            for r in group:
                for i, log in enumerate(_shift_logs(r)):
                    log_seed = r.seed + i if isinstance(r.seed, int) else (str(r.path), i)
                    if log_seed in seen:
                        print(f"warning: report: {r.path}: its log {i} (seed {log_seed}) is {seen[log_seed].path}'s "
                              "too: counted once", file=sys.stderr, flush=True)
                        continue
                    seen[log_seed] = r
                    for x in log["rows"]:
                        ident = (x["target"], x["estimator"], x["weights"])
                        cells[ident].append((r, {"estimate": x["estimate"], "ci_low": x["ci_low"], "ci_high": x["ci_high"],
                                                 "covers": x["covers_after"], "_truth": x["truth_after"],
                                                 "_diag": log.get("weights") if x["weights"] != "none" else None}))
                        log_seeds[ident].append(log_seed)
            by_target: dict[str, list[dict]] = defaultdict(list)
            for (target, est, weights), recs in cells.items():
                row = _ope_row(label, setting, {**cfg, "target": target, "estimator": est, "weights": weights}, recs)
                row.update(seeds=log_seeds[(target, est, weights)], runs=list(dict.fromkeys(row["runs"])))
                by_target[target].append(row)
            for target_rows in by_target.values():
                rows.extend(_rank(target_rows, metric))
    return rows


# --------------------------------------------------------------------- selection runs


def _ops_metrics(run: Run) -> dict[str, dict[str, Any]]:
    """{estimator: {metric: value or None}} of an ops.json (an estimator without a finite
    estimate for every candidate has no metrics: {}), checked: one line naming the file and field."""
    where = run.path / "ops.json"
    ests = run.result.get("estimators")
    if not isinstance(ests, dict) or not ests:
        raise ValueError(f"report: {where}: estimators: expected a mapping estimator -> selection, got {ests!r:.60}")
    out = {}
    for est, res in ests.items():
        if not isinstance(res, dict):
            raise ValueError(f"report: {where}: estimators.{est}: expected a mapping (selected, metrics, ...), "
                             f"got {res!r:.60}")
        metrics = res.get("metrics")
        if metrics is not None and not isinstance(metrics, dict):
            raise ValueError(f"report: {where}: estimators.{est}.metrics: expected a mapping metric -> number, "
                             f"got {metrics!r:.60}")
        bad = [m for m, v in (metrics or {}).items() if v is not None and _num(v) is None]
        if bad:
            raise ValueError(f"report: {where}: estimators.{est}.metrics.{bad[0]}: expected a number or null, "
                             f"got {metrics[bad[0]]!r}")
        out[est] = metrics or {}
    return out


def ops_rows(runs: list[Run], metric: str) -> list[dict]:
    """Per setting, per differing config, per estimator: each selection metric (Spearman,
    Kendall, regret@k, nDCG@k, SharpeRatio@k) with its mean and 95% t interval over seeds, and
    the candidate each seed's ranking picked; ranked by ``metric`` within a config."""
    per_run = {str(r.path): _ops_metrics(r) for r in runs}
    known = list(dict.fromkeys(m for ms in per_run.values() for e in ms.values() for m in e))
    if metric not in known:
        raise ValueError(f"report.metric: '{metric}' is not a selection metric of these runs (known: {', '.join(known)})")
    rows = []
    for label, (setting, srs) in by_setting(runs).items():
        for cfg, group in _group(srs).values():
            group.sort(key=lambda r: (str(r.seed), str(r.path)))
            crows = []
            for est in dict.fromkeys(e for r in group for e in per_run[str(r.path)]):
                mine = [r for r in group if est in per_run[str(r.path)]]
                row = new_row(label, setting, {**cfg, "estimator": est}, mine)
                row["selected"] = [r.result["estimators"][est].get("selected") for r in mine]
                crows.append(_add_means(row, {m: [per_run[str(r.path)][est].get(m) for r in mine] for m in known}))
            rows.extend(_rank(crows, metric))
    return rows


# ------------------------------------------------------------------------- coverage runs


COVERAGE_FIELDS = ("bias", "bias_se", "rmse", "coverage", "mean_width", "truth")


def _coverage_records(obj: Any, path: tuple = ()) -> Iterable[tuple[dict, dict]]:
    """(identity, record) of every record in a coverage.json that carries coverage and rmse:
    the experiment's own ``targets -> estimators -> intervals -> method`` nesting (one record per
    target x estimator x interval method), a list of rows with target / estimator / method
    fields, or nested mappings whose keys are the identity. Read defensively: the format may grow."""
    targets = obj.get("targets") if isinstance(obj, dict) and not path else None
    if isinstance(targets, dict) and any(isinstance(t, dict) and isinstance(t.get("estimators"), dict)
                                         for t in targets.values()):
        for target, t in targets.items():
            for est, rec in (t.get("estimators") or {}).items() if isinstance(t, dict) else ():
                for method, iv in (rec.get("intervals") or {}).items() if isinstance(rec, dict) else ():
                    if isinstance(iv, dict):
                        fields = {f: rec.get(f, t.get(f)) for f in ("truth", "bias", "bias_se", "rmse")}
                        yield {"target": target, "estimator": est, "method": method}, {**fields, **iv}
        return
    if isinstance(obj, dict):
        if _num(obj.get("coverage")) is not None and ("rmse" in obj or "bias" in obj):
            ident = {k: obj[k] for k in ("target", "estimator", "method", "interval", "interval_method", "n_rounds")
                     if k in obj and not isinstance(obj[k], (dict, list))}
            if not ident:
                ident = {f"key{i}": p for i, p in enumerate(path)}
            yield ident, obj
            return
        for k, v in obj.items():
            if k not in ("config",):
                yield from _coverage_records(v, (*path, k) if not isinstance(k, int) else path)
    elif isinstance(obj, list):
        for v in obj:
            yield from _coverage_records(v, path)


def coverage_rows(runs: list[Run], metric: str) -> list[dict]:
    """Per setting, per differing config, per (target, estimator, interval method): each
    coverage field's mean over seeds (with a 95% CI when there are several)."""
    if metric not in COVERAGE_FIELDS:
        raise ValueError(f"report.metric: '{metric}' is not a coverage metric (known: {', '.join(COVERAGE_FIELDS)})")
    rows = []
    for label, (setting, srs) in by_setting(runs).items():
        for cfg, group in _group(srs).values():
            cells: dict[str, list[tuple[Run, dict, dict]]] = defaultdict(list)
            for r in group:
                for ident, rec in _coverage_records(r.result):
                    cells[json.dumps(ident, sort_keys=True, default=str)].append((r, ident, rec))
            crow = []
            for recs in cells.values():
                full = {**cfg, **recs[0][1]}
                row = new_row(label, setting, full, [r for r, _, _ in recs])
                crow.append(_add_means(row, {f: [rec.get(f) for _, _, rec in recs] for f in COVERAGE_FIELDS}))
            rows.extend(_rank(crow, metric))
    return rows


# ------------------------------------------------------------------------------- output


def fmt_stat(m: dict | None) -> str:
    """``mean ± half-width``; ``mean [low, high]`` when the interval was clipped; one seed says so."""
    if m is None:
        return "-"
    if m.get("ci_low") is None:
        return f"{fmt(m['mean'])} (1 seed, no interval)" if m.get("n", 1) == 1 and "ci95" in m else fmt(m["mean"])
    if m.get("ci95") is not None and math.isclose(m["mean"] - m["ci_low"], m["ci_high"] - m["mean"], rel_tol=1e-9):
        return f"{fmt(m['mean'])} ± {fmt(m['ci95'])}"
    return f"{fmt(m['mean'])} [{fmt(m['ci_low'])}, {fmt(m['ci_high'])}]"


def _arrow(better: str) -> str:
    return {"lower": "↓ lower is better", "higher": "↑ higher is better", None: "no verdict"}.get(better, better)


def to_markdown(rows: list[dict], metric: str, kind: str) -> str:
    """One table per setting; ``metric`` first, ranked; the others after."""
    out = []
    settings: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        settings[r["setting"]].append(r)
    for label, srows in settings.items():
        names = [metric] + [m for m in _columns(kind) if m != metric and any(m in r["metrics"] for r in srows)]
        head = [m if m in COUNT_COLUMNS else f"{m} ({_arrow(direction(m) if m != 'coverage' else 'closer to 0.95')})"
                for m in names]
        out.append(f"### {label}\n")
        out.append("| rank | config | seeds | " + " | ".join(head) + " |")
        out.append("|---:|---|---:|" + "---:|" * len(names))
        for r in srows:
            cells = [_cell(r["metrics"].get(m), m, r["n_seeds"]) for m in names]
            out.append(f"| {r['rank']} | {r['label']} | {r['n_seeds']} | " + " | ".join(cells) + " |")
        out.append("")
        if any(r.get("shares_rank") for r in srows):  # (ranks restart per config x target in OPE tables)
            out.append("Rows share a rank where their 95% intervals overlap.\n")
    return "\n".join(out).rstrip() + "\n"


def _columns(kind: str) -> tuple[str, ...]:
    if kind == "online":
        return ("cumulative_regret", "mean_reward", "train_steps")
    if kind in ("ope", "ope_shift"):
        return ("rmse", "mean_error", "coverage", "mean_width", "ess_ratio")
    if kind == "ops":
        return ("spearman", "kendall", *(f"{m}@{k}" for m in ("regret", "ndcg", "sharpe") for k in range(1, 11)))
    if kind == "offline":
        return ("true_value", "heldout_estimate", "train_estimate", "train_minus_truth")
    return ("rmse", "bias", "coverage", "mean_width", "truth")


#: columns that state a setting (a count), not a verdict: shown exactly, without an arrow or an interval
COUNT_COLUMNS = ("train_steps",)


def _cell(m: dict | None, name: str, n_seeds: int | None = None) -> str:
    if m is None:
        return "-"
    if name in COUNT_COLUMNS:
        vals = sorted({int(v) for v in m.get("values") or [m["mean"]]})
        return " / ".join(f"{v:,}" for v in vals)
    if name == "coverage" and isinstance(m.get("values"), list) and m["values"] and isinstance(m["values"][0], bool):
        return f"{m['mean']:.0%} ({sum(m['values'])}/{m['n']})"
    # a seed whose value is null (a non-finite result) is not in the mean: say over how many it is
    short = n_seeds is not None and isinstance(m.get("n"), int) and m["n"] < n_seeds
    return fmt_stat(m) + (f" ({m['n']} of {n_seeds} seeds)" if short else "")


def _plot_label(row: dict) -> str:
    """A leaderboard figure's row label: the config, and the training steps a trained policy had."""
    steps = row["metrics"].get("train_steps")
    if steps is None or not steps["mean"]:
        return row["label"]
    from recsim_causal.plots import short_number

    return f"{row['label']} (trained {short_number(steps['mean'])} steps)"


def report_paths(sweep_dir: Path, metric: str, kind: str) -> dict[str, Path]:
    stem = "leaderboard" if metric == DEFAULT_METRIC.get(kind) else f"leaderboard_{metric}"
    return {ext: sweep_dir / f"{stem}.{ext}" for ext in ("md", "json", "png")}


#: config keys that name a heatmap's column (the estimator) and its panel (the interval method)
HEAT_COLUMN, HEAT_PANEL = "estimator", "method"
INTERVAL_METRICS = ("coverage", "coverage_error", "mean_width")  # the metrics that depend on the interval method


def heatmap_panels(rows: list[dict], metric: str) -> dict[str, tuple[list[str], list[str], np.ndarray]]:
    """OPE, coverage, OPE-across-a-change or selection leaderboard rows as estimator x config
    grids of ``metric``'s mean: per setting (and, for coverage sweeps, per interval method) a row
    per config and target (and weights), a column per estimator (best median over the rows first); NaN where a cell has no value."""
    cells: dict[str, dict[str, dict[str, float]]] = {}
    for r in rows:
        cfg = dict(r["config"])
        est, method = str(cfg.pop(HEAT_COLUMN, "?")), cfg.pop(HEAT_PANEL, None)
        # an error does not depend on the interval method: one panel, not one per method
        per_method = method is not None and metric in INTERVAL_METRICS
        title = r["setting"] + (f"\n{method} intervals" if per_method else "")
        m = r["metrics"].get(metric)
        grid = cells.setdefault(title, {}).setdefault(config_label(cfg), {})
        grid.setdefault(est, m["mean"] if m is not None and _num(m.get("mean")) is not None else math.nan)
    better = "closer to 0.95" if metric == "coverage" else direction(metric)
    out = {}
    for title, grid in cells.items():
        cols = list(dict.fromkeys(c for row in grid.values() for c in row))
        values = np.array([[row.get(c, math.nan) for c in cols] for row in grid.values()])
        # estimators left to right from the best median over the panel's rows
        with warnings.catch_warnings():  # an all-NaN column has no median: it goes last
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(values, axis=0)
        if better and better.startswith("closer to "):
            key = np.abs(median - float(better.removeprefix("closer to ")))
        else:
            key = -median if better == "higher" else median
        order = sorted(range(len(cols)), key=lambda j: (not np.isfinite(key[j]), key[j] if np.isfinite(key[j]) else 0, j))
        out[title] = (list(grid), [cols[j] for j in order], values[:, order])
    return out


def heatmap_metrics(kind: str, metric: str) -> list[str]:
    """The heatmaps an OPE, coverage or OPE-across-a-change report draws: its metric's (an error
    or width) and, with the default metric's report, coverage's; a selection report: its metric's."""
    if kind == "ops":
        return [metric]
    if kind not in ("ope", "coverage", "ope_shift"):
        return []
    wanted = [metric if metric != "coverage_error" else "coverage"]
    if metric == DEFAULT_METRIC[kind] and "coverage" not in wanted:
        wanted.append("coverage")
    return wanted


def write_report(sweep_dir: str | Path, metric: str | None = None, *, force: bool = False,
                 kind: str | None = None) -> str:
    """Write the leaderboard (md, json, png) and, for online sweeps, curves.png/.json into
    ``sweep_dir``; return the markdown. ``kind`` picks one of :data:`ROW_BUILDERS` when a sweep
    holds several; ``force`` overwrites an earlier report of the same metric."""
    return build_report(sweep_dir, metric, force=force, kind=kind)[0]


def _written_at_sweep_end(path: Path) -> bool:
    """Whether the report json at ``path`` was written by the sweep's own callback (then a
    later report replaces it without ``force``)."""
    try:
        return json.loads(path.read_text()).get("written_by") == "sweep"
    except (OSError, ValueError, AttributeError):
        return False


def build_report(sweep_dir: str | Path, metric: str | None = None, *, force: bool = False,
                 kind: str | None = None, auto: bool = False) -> tuple[str, list[Path]]:
    """:func:`write_report`, returning (markdown, the files written). ``auto``: written by the
    sweep's callback as the sweep ends (a later report replaces it without ``force``)."""
    from recsim_causal.plots import curves_plot, heatmap_plot, leaderboard_plot

    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ValueError(f"report: sweep directory '{sweep_dir}' does not exist")
    runs = find_runs(sweep_dir)
    kinds = sorted({r.kind for r in runs} & set(ROW_BUILDERS))
    if not kinds:
        hint = " (experiment=compare runs: each compare.json is its own report)" if runs else ""
        files = [f for f, k in RESULT_FILES.items() if k in ROW_BUILDERS]
        raise ValueError(f"report: no {', '.join(files[:-1])} or {files[-1]} under '{sweep_dir}'{hint}")
    if kind is None:
        if len(kinds) > 1:
            raise ValueError(f"report: the sweep holds {', '.join(kinds)} runs; pick one with --kind")
        kind = kinds[0]
    elif kind not in kinds:
        raise ValueError(f"report.kind: no {kind} runs under '{sweep_dir}' (found: {', '.join(kinds)})")
    runs = [r for r in runs if r.kind == kind]
    metric = metric or DEFAULT_METRIC[kind]
    paths = report_paths(sweep_dir, metric, kind)
    # curves do not depend on the metric: written with the default metric's report
    extra = {"curves_png": sweep_dir / "curves.png", "curves_json": sweep_dir / "curves.json"} \
        if kind == "online" and metric == DEFAULT_METRIC[kind] else {}
    heatmaps = {m: sweep_dir / f"heatmap_{m}.png" for m in heatmap_metrics(kind, metric)}
    existing = [p for p in [*paths.values(), *extra.values(), *heatmaps.values()] if p.exists()]
    if existing and not force and not _written_at_sweep_end(paths["json"]):
        raise ValueError(f"report: {existing[0]} exists (an earlier report); pass --force to overwrite it")

    rows = ROW_BUILDERS[kind](runs, metric)
    if not rows:
        raise ValueError(f"report: no {kind} results to tabulate under '{sweep_dir}'")
    table = to_markdown(rows, metric, kind)
    selection = offline_selection(rows) if kind == "offline" else None
    if selection:
        table += "\n" + "\n".join(s["line"] for s in selection.values()) + "\n"
    with atomic_write(paths["md"]) as f:
        f.write(table)
    write_json(paths["json"], {"sweep": str(sweep_dir), "written_by": "sweep" if auto else "recsim-report",
                               "kind": kind, "metric": metric,
                               "better": direction(metric), "n_runs": len(runs), "rows": rows,
                               **({"selection": selection} if selection else {})})
    panels = defaultdict(list)
    for r in rows:
        if metric in r["metrics"]:
            panels[r["setting"]].append(r)
    leaderboard_plot({s: [(_plot_label(r), r["metrics"][metric]) for r in rs] for s, rs in panels.items()},
                     paths["png"], metric=metric, better=direction(metric))
    written = list(paths.values())
    for m, path in heatmaps.items():
        panels_m = heatmap_panels(rows, m)
        if any(np.isfinite(v).any() for _, _, v in panels_m.values()):
            heatmap_plot(panels_m, path, metric=m, better="closer to 0.95" if m == "coverage" else direction(m, kind))
            written.append(path)
    if extra:
        curves = collect_curves(runs, rows)
        if curves:
            write_json(extra["curves_json"], curves)
            curves_plot(curves, extra["curves_png"])
            written += list(extra.values())
    return table, written


#: report kind -> (its runs, the ranking metric) -> leaderboard rows (compare.json: its own report)
ROW_BUILDERS = {"online": online_rows, "ope": ope_rows, "coverage": coverage_rows, "offline": offline_rows,
                "ope_shift": ope_shift_rows, "ops": ops_rows}


# -------------------------------------------------------------------------------- curves


def read_curve(run: Run) -> dict[str, list] | None:
    """A run's learning curve as columns (``step``, ``cumulative_regret``, ``mean_reward``) from
    ``summary["curve"]`` (columns, ``steps`` or ``step``, or a list of points); None without one."""
    c = run.result.get("curve")
    if isinstance(c, list) and c and isinstance(c[0], dict):
        c = {k: [p.get(k) for p in c] for k in c[0]}
    if not isinstance(c, dict):
        return None
    step = c.get("step", c.get("steps"))
    if step is None or "cumulative_regret" not in c:
        return None
    return {"step": list(step), **{k: list(c[k]) for k in ("cumulative_regret", "mean_reward") if k in c}}


def collect_curves(runs: list[Run], rows: list[dict]) -> list[dict]:
    """Per setting, per leaderboard row: the mean curve over seeds and a 95% t band, on the
    first seed's step grid (other seeds interpolated onto it)."""
    by_path = {str(r.path): r for r in runs}
    out = []
    for row in rows:
        curves = [c for c in (read_curve(by_path[p]) for p in row["runs"]) if c is not None]
        if not curves:
            continue
        grid = np.asarray(curves[0]["step"], float)
        entry = {"setting": row["setting"], "setting_values": row["setting_values"], "label": row["label"],
                 "n_seeds": len(curves), "step": grid.tolist()}
        for key in ("cumulative_regret", "mean_reward"):
            ys = [np.interp(grid, np.asarray(c["step"], float), np.asarray(c[key], float)) for c in curves if key in c]
            if not ys:
                continue
            y = np.stack(ys)
            mean = y.mean(axis=0)
            if len(ys) > 1:
                half = t975(len(ys) - 1) * y.std(axis=0, ddof=1) / math.sqrt(len(ys))
                lo, hi = mean - half, mean + half
                if key == "cumulative_regret":
                    lo = np.maximum(lo, 0.0)
            else:
                lo = hi = mean
            entry[key] = {"mean": mean.tolist(), "low": lo.tolist(), "high": hi.tolist(),
                          "per_seed": [v.tolist() for v in y]}
        out.append(entry)
    return out
