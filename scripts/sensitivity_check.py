"""Do the sensitivity bounds at the logger's true Gamma* contain the SCM's truth?

Runs the default confounded OPE setting (scm=confounded with its logger, ``ope_logger``: a
softmax on the logged context plus the signal, epsilon 0.1; n = 20,000 logged rounds, the
default targets) for several seeds; for each, the logger's true
Gamma* from its full distribution, the bounds (sharp SNIPS, and ZSB's box beside them) at
Gamma = 1 and Gamma = Gamma* with their bootstrap interval, and whether the truth lies in
[lower_ci_low, upper_ci_high]; also the naive IPS bias the SCM implies, in IPS standard
errors. Prints a summary and writes it as JSON.

    python scripts/sensitivity_check.py --seeds 50 --workers 2 --out sensitivity_check.json [--jsonl runs.jsonl]
    python scripts/sensitivity_check.py --docs docs/sensitivity.md     # seed 0: the docs' table
    python scripts/sensitivity_check.py --strengths 0.5 1 2 --workers 3 --docs docs/sensitivity.md

``--docs`` rewrites the block between the markers ``<!-- sensitivity-table -->`` and
``<!-- /sensitivity-table -->`` (and ``<!-- sensitivity-check -->`` ... for a saved check).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

TARGETS = ["random", "epsilon_greedy", "softmax", "lin_thompson"]


def preset(strength: float | None = None) -> dict:
    """The confounded preset (its ``ope_logger`` included), at ``strength`` if given."""
    import yaml

    from recsim_causal.scm.world import CONF_DIR

    cfg = yaml.safe_load((CONF_DIR / "scm" / "confounded.yaml").read_text())
    return cfg if strength is None else {**cfg, "confounding_strength": strength}


def one_seed(seed: int, n_rounds: int = 20_000, train_rounds: int = 20_000, n_bootstrap: int = 200) -> dict:
    from recsim_causal.ope import IPS, fit_predict, policy_value
    from recsim_causal.ope.evaluate import reward_model_features
    from recsim_causal.ope.inputs import reduce_dense
    from recsim_causal.ope.sensitivity import gamma_star, sensitivity_analysis
    from recsim_causal.ope.simulate import simulate_log, train_targets
    from recsim_causal.ope.truth import ips_confounding_bias
    from recsim_causal.scm import World
    from recsim_causal.threads import single_threaded_blas

    start = time.perf_counter()
    with single_threaded_blas():
        # what experiment=ope scm=confounded does: the same seeds, logger, targets and reward model
        cfg = preset()
        world = World(cfg, n_items=100, seed=0, dtype="float64")
        log = simulate_log(world, cfg["ope_logger"]["agent"], n_rounds, epsilon=cfg["ope_logger"]["epsilon"], seed=seed,
                           train_rounds=train_rounds)
        targets = train_targets(TARGETS, world, seed=seed, train_rounds=train_rounds)
        fb, oracle = log.feedback, log.oracle
        features, action_context = reward_model_features("cross", world)
        q_hat = fit_predict(fb.context, fb.action, fb.reward, fb.n_actions, base_model="logistic", features=features,
                            action_context=action_context, n_folds=2, random_state=seed)
        dists = {k: t.action_probs(fb.context) for k, t in targets.items()}
        truths = {k: policy_value(d, fb.expected_reward) for k, d in dists.items()}
        star = gamma_star(oracle.pi_b_full, fb.action_dist, action=fb.action)
        gammas = [1.0, star["gamma_star"]]
        report = sensitivity_analysis(fb, dists, gammas, pairs=None, estimated_rewards=q_hat,
                                      pi_b_full=oracle.pi_b_full, truths=truths, n_bootstrap_samples=n_bootstrap,
                                      random_state=seed)
        out = {"seed": seed, "gamma_star": star, "targets": {}, "breakdown": report.breakdown}
        for k, d in dists.items():
            terms = IPS().terms(reduce_dense(action_dist=d, reward=fb.reward, action=fb.action, pscore=fb.pscore))
            se = float(terms.influence().std(ddof=1) / np.sqrt(n_rounds))
            implied = ips_confounding_bias(d, fb.expected_reward, oracle.pi_b_full, fb.action_dist)
            row = {"truth": truths[k], "implied_ips_bias": implied, "ipw_se": se,
                   "naive_ipw_bias": terms.value() - truths[k]}
            for method, b in (("sharp", report.targets[k]), ("zsb", report.zsb[k])):
                row[method] = {"lower": b.lower.tolist(), "upper": b.upper.tolist(), "lower_ci_low": b.lower_ci_low.tolist(),
                               "upper_ci_high": b.upper_ci_high.tolist(),
                               "covers_at_gamma_star": bool(b.lower_ci_low[1] <= truths[k] <= b.upper_ci_high[1]),
                               "covers_at_1": bool(b.lower_ci_low[0] <= truths[k] <= b.upper_ci_high[0])}
            out["targets"][k] = row
    out["wall_s"] = time.perf_counter() - start
    return out


def one_strength(strength: float, n_rounds: int = 20_000, train_rounds: int = 20_000, seed: int = 0) -> dict:
    """The IPS bias the SCM implies, in IPS standard errors, per default target, at one
    ``scm.confounding_strength``."""
    from recsim_causal.ope import IPS, policy_value
    from recsim_causal.ope.inputs import reduce_dense
    from recsim_causal.ope.simulate import simulate_log, train_targets
    from recsim_causal.ope.truth import ips_confounding_bias
    from recsim_causal.scm import World
    from recsim_causal.threads import single_threaded_blas

    with single_threaded_blas():
        cfg = preset(strength)
        world = World(cfg, n_items=100, seed=0, dtype="float64")
        log = simulate_log(world, cfg["ope_logger"]["agent"], n_rounds, epsilon=cfg["ope_logger"]["epsilon"], seed=seed,
                           train_rounds=train_rounds)
        targets = train_targets(TARGETS, world, seed=seed, train_rounds=train_rounds)
        fb, oracle = log.feedback, log.oracle
        out = {"strength": strength, "targets": {}}
        for k, t in targets.items():
            d = t.action_probs(fb.context)
            terms = IPS().terms(reduce_dense(action_dist=d, reward=fb.reward, action=fb.action, pscore=fb.pscore))
            se = float(terms.influence().std(ddof=1) / np.sqrt(n_rounds))
            implied = ips_confounding_bias(d, fb.expected_reward, oracle.pi_b_full, fb.action_dist)
            out["targets"][k] = {"implied_ips_bias": implied, "ipw_se": se,
                                 "naive_ipw_bias": terms.value() - policy_value(d, fb.expected_reward)}
    return out


def strength_text(rows: list[dict]) -> str:
    lines = ["| strength | " + " | ".join(TARGETS) + " |", "| --- |" + " --- |" * len(TARGETS)]
    for r in sorted(rows, key=lambda r: r["strength"]):
        cells = [f"{t['implied_ips_bias']:+.4f} ({t['implied_ips_bias'] / t['ipw_se']:+.1f} s.e.)"
                 for t in (r["targets"][k] for k in TARGETS)]
        lines.append(f"| {r['strength']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summarize(runs: list[dict]) -> dict:
    n = len(runs)
    out = {"n_seeds": n, "gamma_star": {"median": float(np.median([r["gamma_star"]["gamma_star"] for r in runs])),
                                        "median_q0.9": float(np.median([r["gamma_star"]["quantiles"]["0.9"] for r in runs]))},
           "targets": {}}
    for k in TARGETS:
        rows = [r["targets"][k] for r in runs]
        out["targets"][k] = {
            "covered_sharp": sum(r["sharp"]["covers_at_gamma_star"] for r in rows),
            "covered_zsb": sum(r["zsb"]["covers_at_gamma_star"] for r in rows),
            "covered_at_gamma_1": sum(r["sharp"]["covers_at_1"] for r in rows),
            "median_implied_bias_in_se": float(np.median([r["implied_ips_bias"] / r["ipw_se"] for r in rows])),
        }
    out["breakdown_median"] = float(np.median([r["breakdown"][0]["gamma"] for r in runs]))
    # sharp never wider than ZSB: every seed, target and Gamma (1e-9: floating-point ties at Gamma = 1)
    cells = [(s_lo >= z_lo - 1e-9) and (s_hi <= z_hi + 1e-9)
             for r in runs for t in r["targets"].values()
             for s_lo, s_hi, z_lo, z_hi in zip(t["sharp"]["lower"], t["sharp"]["upper"], t["zsb"]["lower"], t["zsb"]["upper"])]
    out["sharp_inside_zsb"] = {"cells": len(cells), "inside": int(sum(cells))}
    return out


def docs_table(run: dict) -> str:
    g = run["gamma_star"]
    lines = [f"Seed {run['seed']}: the logger's true Gamma* = {g['gamma_star']:,.4g} (per-row quantiles: "
             + ", ".join(f"{q} {v:,.3g}" for q, v in g["quantiles"].items()) + ").", "",
             "| target | truth | SNIPS (Gamma = 1) | sharp bounds at Gamma* (95% ci) | ZSB bounds at Gamma* | naive IPS bias (s.e.) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for k, r in run["targets"].items():
        s, z = r["sharp"], r["zsb"]
        lines.append(f"| {k} | {r['truth']:.4f} | {s['lower'][0]:.4f} | [{s['lower'][1]:.4f}, {s['upper'][1]:.4f}] "
                     f"([{s['lower_ci_low'][1]:.4f}, {s['upper_ci_high'][1]:.4f}]) | [{z['lower'][1]:.4f}, {z['upper'][1]:.4f}] "
                     f"| {r['naive_ipw_bias']:+.4f} ({r['ipw_se']:.4f}) |")
    b = run["breakdown"][0]
    lines += ["", f"Breakdown Gamma of {b['a']} vs {b['b']} (estimated difference {b['difference']:+.4f}): "
              f"{b['gamma']:,.4g}."]
    return "\n".join(lines)


def check_text(summary: dict) -> str:
    lines = [f"{summary['n_seeds']} seeds; median Gamma* {summary['gamma_star']['median']:,.4g} (median of the per-row "
             f"90% quantile: {summary['gamma_star']['median_q0.9']:,.3g}); median breakdown Gamma "
             f"{summary['breakdown_median']:,.4g}. The sharp bounds lie inside ZSB's in "
             f"{summary['sharp_inside_zsb']['inside']} of {summary['sharp_inside_zsb']['cells']} (seed, target, Gamma) cells.", "",
             "| target | truth in sharp bounds at Gamma* | in ZSB bounds at Gamma* | in the Gamma = 1 interval | median implied IPS bias / s.e. |",
             "| --- | --- | --- | --- | --- |"]
    n = summary["n_seeds"]
    for k, t in summary["targets"].items():
        lines.append(f"| {k} | {t['covered_sharp']}/{n} | {t['covered_zsb']}/{n} | {t['covered_at_gamma_1']}/{n} | "
                     f"{t['median_implied_bias_in_se']:+.2f} |")
    return "\n".join(lines)


def replace_block(path: Path, tag: str, text: str) -> None:
    doc = path.read_text()
    pattern = re.compile(rf"(<!-- {tag} -->\n).*?(<!-- /{tag} -->)", re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{path}: no <!-- {tag} --> ... <!-- /{tag} --> block")
    path.write_text(pattern.sub(lambda m: m.group(1) + text.rstrip("\n") + "\n" + m.group(2), doc))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--docs", type=Path, default=None, help="rewrite the table blocks of this markdown file")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--jsonl", type=Path, default=None, help="append each seed's run here as it finishes")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="a saved check (--out's .json or --jsonl's lines) to summarize / put into --docs")
    ap.add_argument("--strengths", type=float, nargs="+", default=None,
                    help="instead: the implied IPS bias in s.e. at these confounding strengths (seed 0)")
    args = ap.parse_args(argv)
    if args.strengths or (args.from_json and "strengths" in args.from_json.read_text()[:200]):
        if args.from_json:
            rows = json.loads(args.from_json.read_text())["strengths"]
        else:
            with ProcessPoolExecutor(max_workers=args.workers) as pool:
                rows = list(pool.map(one_strength, args.strengths))
        print(strength_text(rows))
        if args.out:
            from recsim_causal.io import write_json

            write_json(args.out, {"strengths": rows})
        if args.docs:
            replace_block(args.docs, "sensitivity-strength", strength_text(rows))
        return 0
    if args.from_json:
        text = args.from_json.read_text()
        runs = (json.loads(text)["runs"] if args.from_json.suffix == ".json"
                else [json.loads(line) for line in text.splitlines() if line.strip()])
        runs.sort(key=lambda r: r["seed"])
    else:
        runs = []
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            futures = [pool.submit(one_seed, s) for s in range(args.first_seed, args.first_seed + args.seeds)]
            for fut in as_completed(futures):
                runs.append(fut.result())
                if args.jsonl:
                    from recsim_causal.io import to_jsonable

                    with args.jsonl.open("a") as f:
                        f.write(json.dumps(to_jsonable(runs[-1])) + "\n")
        runs.sort(key=lambda r: r["seed"])
    summary = summarize(runs)
    print(check_text(summary))
    if args.out:
        from recsim_causal.io import write_json

        write_json(args.out, {"summary": summary, "runs": runs})
    if args.docs:
        replace_block(args.docs, "sensitivity-table", docs_table(runs[0]))
        if len(runs) > 1:
            replace_block(args.docs, "sensitivity-check", check_text(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
