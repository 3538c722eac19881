#!/usr/bin/env python
"""Calibrate the validity rule of bootstrap and normal intervals from the coverage experiment.

    python scripts/calibrate_validity.py [--replications 200] [--n-rounds 5000 20000]
        [--epsilons 0.05 0.2] [--n-items 100] [--workers 2] [--out recsim_causal/ope/validity.json] [--docs docs/trust.md]
    python scripts/calibrate_validity.py --from-raw docs/generated/validity_raw.npz   # re-choose, no simulation
    python scripts/calibrate_validity.py --docs-only   # rewrite the docs table from --out

For every grid point (logger exploration epsilon x logged rounds n x items K; the default
world, a LinUCB logger, the default coverage targets random, epsilon_greedy, softmax and
linucb) the script trains the logger and the targets once, computes each target's exact
population value, and draws ``--replications`` independent logs. On each log it fits the
default cross-fitted reward model (logistic on context x item features) and records, for IPS,
SNIPS, DR and SNDR, the estimate, the 95% percentile-bootstrap and normal intervals, whether
each covers the truth, and the target's weight diagnostics (logged and expected ESS and ESS
share, max weight, target mass on low-support actions).

One rule per estimator family (IPS and SNIPS; DR and SNDR) is then chosen from a grid: an
interval is valid when, on the ESS source s (logged, expected or the smaller), ESS share >= a
and ESS >= b, max weight <= c and low-support mass <= d. Among the rules under which each of
the family's estimators and methods covers at least ``--target-coverage`` pooled over its
valid-marked intervals, and no cell (grid point x target x estimator x method) with at least
``--min-valid`` valid replications covers significantly less, the one that marks the most
replications valid; a family with no such rule is never valid.
The grid of cells, their coverage and the chosen thresholds go to ``--out`` (JSON, read by
:mod:`recsim_causal.ope.diagnostics`) and, as a table, between the markers of ``--docs``.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from recsim_causal.experiment.coverage import population_values, trained_policies  # noqa: E402
from recsim_causal.build import reward_model_q_hat  # noqa: E402
from recsim_causal.io import write_json  # noqa: E402
from recsim_causal.ope import DM, DR, IPS, SNDR, SNIPS  # noqa: E402
from recsim_causal.ope.diagnostics import ESS_SOURCES, overlap_diagnostics, rule_ess  # noqa: E402
from recsim_causal.ope.inputs import reduce_dense  # noqa: E402
from recsim_causal.ope.intervals import estimate_intervals_from_terms  # noqa: E402
from recsim_causal.ope.simulate import collect  # noqa: E402
from recsim_causal.scm import World  # noqa: E402
from recsim_causal.threads import single_threaded_blas  # noqa: E402

ESTIMATORS = {"ipw": IPS(), "snipw": SNIPS(), "dr": DR(), "sndr": SNDR(), "dm": DM()}
CALIBRATED = ("ipw", "snipw", "dr", "sndr")  # the rule is chosen for these; DM's bias is reported beside them
METHODS = ("bootstrap", "normal")
TARGETS = ["random", "epsilon_greedy", "softmax", "linucb"]
DIAG = ("ess_ratio", "ess", "max_weight", "low_support_share", "expected_ess_ratio", "expected_ess", "support_max_weight")
#: one rule per estimator family (diagnostics.FAMILIES), chosen from its calibrated estimators
FAMILY_ESTIMATORS = {"ipw": ("ipw", "snipw"), "dr": ("dr", "sndr")}
# the rules searched: (ESS source, min ESS share, min ESS, max weight, max low-support mass)
MIN_ESS_RATIO = (0.0, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2)
MIN_ESS = (0.0, 50.0, 100.0, 200.0, 500.0)
MAX_WEIGHT = (math.inf, 1000.0, 300.0, 100.0, 50.0, 20.0, 10.0)
MAX_LOW_SUPPORT = (math.inf, 0.05, 0.01, 0.001)
BEGIN, END = "<!-- calibration:begin (scripts/calibrate_validity.py writes this block) -->", "<!-- calibration:end -->"


def run_grid_point(epsilon: float, n: int, K: int, R: int, B: int, seed: int, truth_users: int) -> dict:
    """Replications of one grid point: arrays (R, T, E) of estimates, and per method
    covers (R, T, E); diagnostics (R, T) per diagnostic."""
    world = World("default", n_items=K, seed=0, dtype="float64")
    exp = {"logger": {"agent": "linucb", "epsilon": epsilon}, "targets": TARGETS, "train_rounds": 20000,
           "reward_model": "logistic", "reward_features": "cross", "n_folds": 2}
    logger, targets = trained_policies(world, exp, seed)
    truth = population_values(world, targets, truth_users, np.random.default_rng([seed, 4]))
    T, E = len(targets), len(ESTIMATORS)
    est = np.empty((R, T, E))
    covers = {m: np.zeros((R, T, E), dtype=bool) for m in METHODS}
    diags = {k: np.empty((R, T)) for k in DIAG}
    tv = np.array([truth[k][0] for k in targets])
    for r in range(R):
        part, _ = collect(world, logger, n, epsilon, np.random.default_rng([seed, 2, r]), show_progress=False)
        q_hat = reward_model_q_hat(part, exp, seed + r, world)
        terms = []
        for t_i, k in enumerate(targets):
            pi_e = targets[k].action_probs(part.context)
            inputs = reduce_dense(action_dist=pi_e, reward=part.reward, action=part.action, pscore=part.pscore,
                                  estimated_rewards_by_reg_model=q_hat, pi_b=part.action_dist)
            d = overlap_diagnostics(inputs.iw(), part.pscore, K, action_dist=pi_e, pi_b=part.action_dist)
            for key in DIAG:
                diags[key][r, t_i] = d[key]
            for e_i, e in enumerate(ESTIMATORS.values()):
                tm = e.terms(inputs)
                terms.append(tm)
                est[r, t_i, e_i] = tm.value()
        for m in METHODS:
            out = estimate_intervals_from_terms(terms, method=m, alpha=0.05, n_bootstrap_samples=B,
                                                random_state=np.random.SeedSequence([seed, r]))
            lo = np.array([[v for key, v in o.items() if key != "mean"][0] for o in out]).reshape(T, E)
            hi = np.array([[v for key, v in o.items() if key != "mean"][1] for o in out]).reshape(T, E)
            covers[m][r] = (lo <= tv[:, None]) & (tv[:, None] <= hi)
        if (r + 1) % 10 == 0 or r + 1 == R:
            print(f"  eps={epsilon} n={n} K={K}: replication {r + 1}/{R}", flush=True)
    return {"epsilon": epsilon, "n_rounds": n, "n_items": K, "n_bootstrap": B, "targets": list(targets), "truth": tv.tolist(),
            "estimates": est, "covers": covers, "diagnostics": diags}


def save_raw(path: Path, points: list[dict]) -> None:
    """Every replication's coverage, estimates and diagnostics (npz), to re-choose the rule later."""
    arrays = {}
    for i, p in enumerate(points):
        arrays[f"p{i}_meta"] = np.array([p["epsilon"], p["n_rounds"], p["n_items"]])
        arrays[f"p{i}_truth"] = np.asarray(p["truth"])
        arrays[f"p{i}_estimates"] = p["estimates"]
        for m in METHODS:
            arrays[f"p{i}_covers_{m}"] = p["covers"][m]
        for k in DIAG:
            arrays[f"p{i}_diag_{k}"] = p["diagnostics"][k]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, n_points=len(points), targets=np.array(TARGETS), n_bootstrap=points[0]["n_bootstrap"],
                        **arrays)


def load_raw(path: Path) -> list[dict]:
    z = np.load(path)
    out = []
    for i in range(int(z["n_points"])):
        eps, n, K = z[f"p{i}_meta"]
        out.append({"epsilon": float(eps), "n_rounds": int(n), "n_items": int(K), "n_bootstrap": int(z["n_bootstrap"]) if "n_bootstrap" in z.files else None,
                    "targets": [str(t) for t in z["targets"]],
                    "truth": z[f"p{i}_truth"].tolist(), "estimates": z[f"p{i}_estimates"],
                    "covers": {m: z[f"p{i}_covers_{m}"] for m in METHODS},
                    "diagnostics": {k: z[f"p{i}_diag_{k}"] for k in DIAG}})
    return out


def valid_mask(diags: dict, rule: tuple) -> np.ndarray:
    """(R, T) which replications ``rule`` = (ESS source, min ESS share, min ESS, max weight,
    max low-support mass) marks valid: the library's rule (diagnostics.interval_validity)
    on arrays."""
    source, a, b, c, d = rule
    ess, ratio, _ = rule_ess(diags, source)
    return (np.asarray(ratio) >= a) & (np.asarray(ess) >= b) & (diags["max_weight"] <= c) & (diags["low_support_share"] <= d)


def evaluate_rule(points: list[dict], rule: tuple, target_coverage: float, min_valid: int,
                  estimators: tuple[str, ...] = CALIBRATED) -> tuple[bool, int, dict, float | None]:
    """(the rule passes, replications it marks valid, {estimator/method: pooled coverage of the
    valid ones}, the worst judged cell's coverage) for ``estimators``. It passes when, for each
    of them and each method, the valid-marked intervals pooled over the grid cover at least
    ``target_coverage``, and no cell with at least ``min_valid`` valid replications covers
    significantly less (one-sided binomial test at 5%:
    coverage < target - 1.645 sqrt(target (1 - target) / n_valid))."""
    ok, n_valid, worst = True, 0, None
    idx = [list(ESTIMATORS).index(e) for e in estimators]
    hits = {f"{e}/{m}": [0, 0] for e in estimators for m in METHODS}
    for p in points:
        v = valid_mask(p["diagnostics"], rule)  # (R, T)
        n_valid += int(v.sum()) * len(estimators)
        for m in METHODS:
            cov = p["covers"][m]  # (R, T, E)
            for t_i in range(v.shape[1]):
                nv = int(v[:, t_i].sum())
                if nv == 0:
                    continue
                for e_i, e in zip(idx, estimators):
                    c = cov[v[:, t_i], t_i, e_i]
                    hits[f"{e}/{m}"][0] += int(c.sum())
                    hits[f"{e}/{m}"][1] += nv
                    if nv >= min_valid:
                        worst = float(c.mean()) if worst is None else min(worst, float(c.mean()))
                        slack = 1.645 * math.sqrt(target_coverage * (1 - target_coverage) / nv)
                        ok &= float(c.mean()) >= target_coverage - slack
    pooled = {k: (h / t if t else None) for k, (h, t) in hits.items()}
    ok &= all(v is None or v >= target_coverage for v in pooled.values())
    return ok, n_valid, pooled, worst


def rules() -> itertools.product:
    return itertools.product(ESS_SOURCES, MIN_ESS_RATIO, MIN_ESS, MAX_WEIGHT, MAX_LOW_SUPPORT)


def choose_rule(points: list[dict], target_coverage: float, min_valid: int,
                estimators: tuple[str, ...] = CALIBRATED) -> tuple | None:
    """Among the rules that pass (:func:`evaluate_rule`) for ``estimators``, the one that marks
    the most replications valid; among ties the last searched, i.e. the strictest limits that
    still mark those replications valid (the rule does not extrapolate past what the grid
    showed to cover: e.g. weights far larger than any valid-marked log had); None when no rule
    of the grid passes."""
    best, best_n = None, 0
    for rule in rules():
        ok, n_valid, _, _ = evaluate_rule(points, rule, target_coverage, min_valid, estimators)
        if ok and n_valid > 0 and n_valid >= best_n:
            best, best_n = rule, n_valid
    return best


def family_of(estimator: str) -> str | None:
    return next((f for f, es in FAMILY_ESTIMATORS.items() if estimator in es), None)


def cell_table(points: list[dict], family_rules: dict[str, tuple | None]) -> list[dict]:
    rows = []
    for p in points:
        masks = {f: (valid_mask(p["diagnostics"], r) if r is not None else np.zeros(p["estimates"].shape[:2], bool))
                 for f, r in family_rules.items()}
        for t_i, target in enumerate(p["targets"]):
            med = {k: float(np.median(p["diagnostics"][k][:, t_i])) for k in DIAG}
            for e_i, e in enumerate(ESTIMATORS):
                err = p["estimates"][:, t_i, e_i] - p["truth"][t_i]
                fam = family_of(e)
                v = masks[fam][:, t_i] if fam else np.zeros(len(err), bool)  # DM: never valid
                row = {"epsilon": p["epsilon"], "n_rounds": p["n_rounds"], "n_items": p["n_items"], "target": target,
                       "estimator": e, "truth": p["truth"][t_i], "bias": float(err.mean()),
                       "rmse": float(np.sqrt(np.mean(err**2))), "valid_share": float(v.mean()),
                       "median_diagnostics": med}
                for m in METHODS:
                    cov = p["covers"][m][:, t_i, e_i]
                    row[f"coverage_{m}"] = float(cov.mean())
                    row[f"coverage_{m}_valid"] = float(cov[v].mean()) if v.any() else None
                rows.append(row)
    return rows


def _limit(v) -> str:
    return "no limit" if v is None else f"{v:g}"


def _fmt(v, spec=".3f") -> str:
    return "–" if v is None else format(v, spec)


SHOWN = {"ipw": "IPS", "snipw": "SNIPS", "dr": "DR", "sndr": "SNDR"}


def _rule_text(th: dict | None) -> str:
    if th is None:
        return "never valid (no rule of the searched grid reaches the target coverage)"
    ess = {"logged": "the logged weights' ESS", "expected": "the expected ESS",
           "min": "the smaller of the logged and the expected ESS"}[th["ess_source"]]
    return (f"valid when, on {ess}, ESS share >= {th['min_ess_ratio']:g} and ESS >= {th['min_ess']:g}; "
            f"max weight <= {_limit(th['max_weight'])}; target mass on low-support actions <= "
            f"{_limit(th['max_low_support_share'])}")


def docs_block(result: dict) -> str:
    fams = "; ".join(f"{SHOWN[f]} family ({', '.join(SHOWN[e] for e in FAMILY_ESTIMATORS[f])}): {_rule_text(th)}"
                     for f, th in result["thresholds"].items())
    lines = [BEGIN, "",
             f"Chosen rules for bootstrap and normal intervals, one per estimator family: {fams}.",
             "",
             f"Grid: LinUCB logger with epsilon in {result['grid']['epsilons']}, n in {result['grid']['n_rounds']}, "
             f"K in {result['grid']['n_items']}; targets {', '.join(TARGETS)}; {result['replications']} replications "
             f"per grid point, {result['n_bootstrap_samples']} bootstrap resamples; {result['searched']['rules_searched']} "
             "rules searched per family (ESS source x ESS share x ESS x max weight x low-support mass). Required: for "
             f"each estimator and method, the valid-marked intervals pooled over the grid cover at least "
             f"{result['target_coverage']} (nominal 0.95), and no cell with at least {result['min_valid']} valid "
             "replications covers significantly less (one-sided binomial test at 5%); among the rules that pass, the "
             "one marking the most replications valid. Pooled coverage of the valid-marked intervals: "
             + ", ".join(f"{k} {_fmt(v)}" for k, v in result["pooled_valid_coverage"].items())
             + f"; the worst judged cell {_fmt(result['worst_valid_coverage'])}; "
             f"{100 * result['valid_share']:.1f}% of the calibrated estimators' replications are marked valid.",
             "",
             "| eps | n | K | target | estimator | bias | coverage (all, bootstrap) | valid share | coverage of valid (bootstrap) | coverage of valid (normal) | median ESS share (logged / expected) | median max weight |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["cells"]:
        md = r["median_diagnostics"]
        calibrated = r["estimator"] in CALIBRATED  # DM: never valid (its bias is not in the interval)
        valid = (f"{r['valid_share']:.2f} | {_fmt(r['coverage_bootstrap_valid'])} | {_fmt(r['coverage_normal_valid'])}"
                 if calibrated else "never | – | –")
        lines.append(f"| {r['epsilon']} | {r['n_rounds']} | {r['n_items']} | {r['target']} | {r['estimator']} | "
                     f"{r['bias']:+.4f} | {r['coverage_bootstrap']:.3f} | {valid} | "
                     f"{100 * md['ess_ratio']:.2f}% / {100 * md['expected_ess_ratio']:.2f}% | {md['max_weight']:.1f} |")
    dm = [r for r in result["cells"] if r["estimator"] == "dm"]
    if dm:
        worst = max(dm, key=lambda r: abs(r["bias"]))
        lines += ["", f"DM (logistic reward model on context x item features): largest |bias| over the grid "
                      f"{abs(worst['bias']):.4f} ({worst['target']}, epsilon {worst['epsilon']}, n {worst['n_rounds']})."]
    lines += ["", END]
    return "\n".join(lines)


def write_docs(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replications", type=int, default=200)
    ap.add_argument("--n-rounds", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--epsilons", type=float, nargs="+", default=[0.05, 0.2])
    ap.add_argument("--n-items", type=int, nargs="+", default=[100])
    ap.add_argument("--bootstrap", type=int, default=500)
    ap.add_argument("--truth-users", type=int, default=200000)
    ap.add_argument("--target-coverage", type=float, default=0.93)
    ap.add_argument("--min-valid", type=int, default=10, help="cells with fewer valid replications are not judged "
                    "(default 10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1, help="grid points run in parallel (processes)")
    ap.add_argument("--out", type=Path, default=ROOT / "recsim_causal" / "ope" / "validity.json")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs" / "trust.md")
    ap.add_argument("--docs-only", action="store_true", help="rewrite --docs from the existing --out file, no run")
    ap.add_argument("--raw", type=Path, default=ROOT / "docs" / "generated" / "validity_raw.npz",
                    help="where the replications' raw results go (to re-choose the rule without a run)")
    ap.add_argument("--from-raw", type=Path, default=None, help="choose the rule from a --raw file, no run")
    args = ap.parse_args(argv)
    if args.docs_only:
        import json

        result = json.loads(args.out.read_text())
        write_docs(args.docs, docs_block(result))
        return result
    if args.replications < 2:
        raise SystemExit("--replications: expected an integer >= 2")
    start = time.perf_counter()
    if args.from_raw is not None:
        points = load_raw(args.from_raw)
        args.replications = int(points[0]["estimates"].shape[0])
        args.n_rounds = sorted({p["n_rounds"] for p in points})
        args.epsilons = sorted({p["epsilon"] for p in points})
        args.n_items = sorted({p["n_items"] for p in points})
        args.bootstrap = points[0]["n_bootstrap"] or args.bootstrap
    else:
        grid = [(eps, n, K, args.replications, args.bootstrap, args.seed, args.truth_users)
                for K, eps, n in itertools.product(args.n_items, args.epsilons, args.n_rounds)]
        with single_threaded_blas():
            if args.workers > 1:
                from concurrent.futures import ProcessPoolExecutor

                with ProcessPoolExecutor(args.workers) as pool:
                    points = list(pool.map(run_grid_point, *zip(*grid)))
            else:
                points = [run_grid_point(*g) for g in grid]
        save_raw(args.raw, points)
    min_valid = args.min_valid
    chosen = {f: choose_rule(points, args.target_coverage, min_valid, es) for f, es in FAMILY_ESTIMATORS.items()}
    pooled, n_valid, judged = {}, 0, []
    for f, es in FAMILY_ESTIMATORS.items():
        if chosen[f] is not None:
            _, nv, pf, worst = evaluate_rule(points, chosen[f], args.target_coverage, min_valid, es)
            pooled.update(pf)
            n_valid += nv
            judged += [worst] if worst is not None else []
        else:
            pooled.update({f"{e}/{m}": None for e in es for m in METHODS})
    cells = cell_table(points, chosen)
    total = sum(p["diagnostics"]["ess"].size for p in points) * len(CALIBRATED)
    finite = lambda v: v if math.isfinite(v) else None  # noqa: E731  (strict JSON: no Infinity)
    thresholds = {f: (None if r is None else {"ess_source": r[0], "min_ess_ratio": r[1], "min_ess": r[2],
                                              "max_weight": finite(r[3]), "max_low_support_share": finite(r[4])})
                  for f, r in chosen.items()}
    result = {"feasible": all(r is not None for r in chosen.values()), "thresholds": thresholds,
              "target_coverage": args.target_coverage, "nominal": 0.95, "min_valid": min_valid,
              "replications": args.replications, "n_bootstrap_samples": args.bootstrap,
              "grid": {"epsilons": args.epsilons, "n_rounds": args.n_rounds, "n_items": args.n_items,
                       "logger": "linucb", "targets": TARGETS, "reward_model": "logistic, cross features, cross-fitted"},
              "searched": {"ess_source": list(ESS_SOURCES), "min_ess_ratio": list(MIN_ESS_RATIO), "min_ess": list(MIN_ESS),
                           "max_weight": [finite(v) for v in MAX_WEIGHT],
                           "max_low_support_share": [finite(v) for v in MAX_LOW_SUPPORT],
                           "rules_searched": sum(1 for _ in rules())},
              "pooled_valid_coverage": pooled, "worst_valid_coverage": min(judged) if judged else None,
              "valid_share": n_valid / total, "cells": cells, "wall_s": time.perf_counter() - start}
    write_json(args.out, result)
    write_docs(args.docs, docs_block(result))
    print(f"thresholds {result['thresholds']}; pooled {pooled}; worst valid coverage "
          f"{_fmt(result['worst_valid_coverage'])}; {100 * result['valid_share']:.1f}% valid; "
          f"{result['wall_s']:.0f} s -> {args.out}, {args.docs}")
    return result


if __name__ == "__main__":
    main()
