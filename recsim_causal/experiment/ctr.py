"""The CTR experiment: does a click model that reads item texts rank new items better?

1. Train a logging policy online, then log ``n_rounds`` with it mixed with epsilon-uniform
   exploration (every item is shown), as the OPE experiment does.
2. Hold out (a) the later ``test_fraction`` of the rounds (warm test) and (b) the rows of
   ``cold_fraction`` of the items, drawn at random, in every round (cold-start test: these
   items are never in a training row).
3. Train each model of ``models`` on the remaining rows: ``logistic`` (user features x item
   one-hot, the id baseline), ``mlp`` (same inputs), ``features`` (the catalog's structured
   item features: the oracle reference) and ``bert`` (the item text through MiniLM).
4. Report per model and test set ROC AUC (with its standard error), log loss and ECE (10
   bins), next to the AUC of the world's true click probability (the ceiling, from the SCM).

Writes ``ctr.json``, ``ctr_predictions.parquet`` (row, test set, action, label, true
probability, each model's prediction), ``ctr.png`` (ROC curves and reliability diagrams per
test set) and a W&B run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from recsim_causal.ctr import (
    MODELS,
    CTRConfig,
    CTRModel,
    catalog_item_features,
    click_metrics,
    cold_start_split,
)
from recsim_causal.agents.base import check_float
from recsim_causal.config import as_resolved, check_integer
from recsim_causal.ctr.metrics import reliability_bins, roc_curve
from recsim_causal.build import ctr_config, one_item_world
from recsim_causal.ope.simulate import collect, train_logger
from recsim_causal.results import format_table
from recsim_causal.plots import _figure, save_figure
from recsim_causal.experiment.tracking import Tracker
from recsim_causal.io import atomic_path
from recsim_causal.results import write_result
from recsim_causal.scm import World

TEST_SETS = ("warm", "cold")


def _check(exp: dict) -> None:
    for key in ("n_rounds", "train_rounds"):
        check_integer(exp.get(key), f"experiment.{key}", 1)
    check_float("experiment.logger", "epsilon", exp["logger"].get("epsilon", 0.0), low=0.0, high=1.0)
    models = exp.get("models")
    if not models or not isinstance(models, list):
        raise ValueError(f"experiment.models: expected a non-empty list of models, got {models!r}")
    for m in models:
        if m not in MODELS:
            raise ValueError(f"experiment.models: unknown model '{m}' (known: {', '.join(MODELS)})")
    unknown = sorted(set(exp.get("settings") or {}) - set(models))
    if unknown:
        raise ValueError(f"experiment.settings: '{unknown[0]}' is not in experiment.models ({', '.join(models)})")
    for m in models:  # every setting checked before any work
        model_config(exp, m, 0)


def model_config(exp: dict, name: str, seed: int) -> CTRConfig:
    """The CTRConfig of model ``name``: its ``experiment.settings`` section over the defaults."""
    return ctr_config((exp.get("settings") or {}).get(name), where=f"experiment.settings.{name}", model=name,
                      seed=seed, device=exp.get("device", "cpu"), threads=exp.get("threads"))


def log_clicks(world: World, exp: dict, seed: int):
    """Train the logger, log ``n_rounds``; returns the feedback (rewards must be clicks)."""
    logger = train_logger(world, exp["logger"]["agent"], seed=seed, train_rounds=exp["train_rounds"],
                          where="experiment.logger.agent")
    feedback, _ = collect(world, logger, exp["n_rounds"], exp["logger"].get("epsilon", 0.0),
                          np.random.default_rng([seed, 2]))
    if not np.isin(feedback.reward, (0.0, 1.0)).all():
        raise ValueError(f"scm.reward: experiment=ctr needs a click reward (0 / 1); world '{world.name}' gives "
                         f"rewards in [{feedback.reward.min():.3g}, {feedback.reward.max():.3g}]")
    return feedback


def run_ctr(cfg: Any, out_dir: str | Path, tracker: Tracker | None = None, *, resolved: dict | None = None) -> dict:
    """Run the CTR experiment; write ctr.json, ctr_predictions.parquet, ctr.png; return the summary."""
    resolved = as_resolved(cfg, resolved)
    exp, seed = resolved["experiment"], int(resolved.get("seed", 0))
    _check(exp)
    tracker = tracker or Tracker(mode="disabled")
    start = time.perf_counter()
    world = one_item_world(resolved, "ctr")
    feedback = log_clicks(world, exp, seed)
    x, a, y = feedback.context, feedback.action, feedback.reward
    true_p = feedback.expected_reward[np.arange(len(a)), a]
    split = cold_start_split(a, world.n_items, test_fraction=exp.get("test_fraction", 0.2),
                             cold_fraction=exp.get("cold_fraction", 0.2), rng=np.random.default_rng([seed, 5]))
    tr = split["train"]
    test_rows = {s: split[s] for s in TEST_SETS}
    item_inputs = {"item_texts": world.catalog.texts, "item_features": catalog_item_features(world.catalog)}

    predictions: dict[str, dict[str, np.ndarray]] = {s: {} for s in TEST_SETS}
    training: dict[str, dict] = {}
    for name in exp["models"]:
        config = model_config(exp, name, seed)
        model = CTRModel(config, world.n_items, x.shape[1], **item_inputs)
        model.fit(x[tr], a[tr], y[tr])
        for s, rows in test_rows.items():
            predictions[s][name] = model.predict(x[rows], a[rows])
        training[name] = {"seconds": model.fit_seconds, "rows_per_s": model.rows_per_s,
                          "finetune_rows_per_s": model.finetune_rows_per_s, "rows": int(len(tr)),
                          "train_items": model.train_items, "config": config.to_json(), "history": model.history}
        if exp.get("save_models"):
            model.save(Path(out_dir) / f"model_{name}")
        tracker.summary({f"train/{name}_seconds": model.fit_seconds, f"train/{name}_rows_per_s": model.rows_per_s})

    bins = int(exp.get("ece_bins", 10))
    results = {s: {"ceiling": click_metrics(y[rows], true_p[rows], bins),
                   "models": {m: click_metrics(y[rows], predictions[s][m], bins) for m in exp["models"]}}
               for s, rows in test_rows.items()}
    summary = {
        "experiment": "ctr",
        "scm": world.name,
        "seed": seed,
        "n_rounds": int(len(y)),
        "logger": exp["logger"],
        "rows": {"train": int(len(tr)), **{s: int(len(r)) for s, r in test_rows.items()}},
        "cold_items": split["cold_items"],
        "results": results,
        "targets": targets(results),
        "training": training,
        "wall_s": time.perf_counter() - start,
    }
    out_dir = Path(out_dir)
    _write_predictions(out_dir / "ctr_predictions.parquet", test_rows, a, y, true_p, predictions)
    _plot(out_dir / "ctr.png", test_rows, y, true_p, predictions, bins)
    write_result(out_dir / "ctr.json", "ctr", summary)
    columns, rows = _table_rows(results)
    tracker.estimates("ctr", {s: {m: {k: v for k, v in r.items() if k in ("auc", "auc_se", "log_loss", "ece")}
                                  for m, r in {**results[s]["models"], "ceiling": results[s]["ceiling"]}.items()}
                              for s in results})
    tracker.table("ctr", columns, rows)
    tracker.image("ctr", out_dir / "ctr.png")
    tracker.summary({f"{s}/{m}_auc": r["auc"] for s in results for m, r in results[s]["models"].items()}
                    | {f"{s}/ceiling_auc": results[s]["ceiling"]["auc"] for s in results}
                    | {"wall_s": summary["wall_s"]})
    summary["table"] = format_table(columns, rows, None) + "\n" + _targets_text(summary["targets"])
    return summary


def targets(results: dict) -> dict:
    """The issue's targets, where the models were run: cold-start AUC of bert >= logistic + 0.05
    and within 0.05 of features; warm AUC of bert within 0.02 of the best baseline."""
    out: dict[str, Any] = {}
    cold, warm = results["cold"]["models"], results["warm"]["models"]
    if "bert" not in cold:
        return out
    if "logistic" in cold:
        gap = cold["bert"]["auc"] - cold["logistic"]["auc"]
        out["cold_bert_minus_logistic"] = {"value": gap, "target": ">= 0.05", "met": bool(gap >= 0.05)}
    if "features" in cold:
        gap = cold["features"]["auc"] - cold["bert"]["auc"]
        out["cold_features_minus_bert"] = {"value": gap, "target": "<= 0.05", "met": bool(gap <= 0.05)}
    baselines = [m for m in warm if m != "bert"]
    if baselines:
        best = max(baselines, key=lambda m: warm[m]["auc"])
        gap = warm[best]["auc"] - warm["bert"]["auc"]
        out["warm_best_baseline_minus_bert"] = {"value": gap, "best": best, "target": "<= 0.02", "met": bool(gap <= 0.02)}
    return out


def _targets_text(t: dict) -> str:
    return "\n".join(f"target {k}: {v['value']:+.4f} ({v['target']}{', best: ' + v['best'] if 'best' in v else ''}) "
                     f"{'met' if v['met'] else 'NOT MET'}" for k, v in t.items())


def _table_rows(results: dict) -> tuple[list[str], list[list]]:
    columns = ["test_set", "model", "auc", "auc_se", "log_loss", "ece", "n_rows", "n_clicks"]
    rows = []
    for s, r in results.items():
        for m, v in {**r["models"], "true probability (ceiling)": r["ceiling"]}.items():
            rows.append([s, m] + [v[c] for c in columns[2:]])
    return columns, rows


def _write_predictions(path: Path, test_rows: dict, a: np.ndarray, y: np.ndarray, true_p: np.ndarray,
                       predictions: dict) -> None:
    import pandas as pd

    frames = []
    for s, rows in test_rows.items():
        frame = {"row": rows, "test_set": s, "action": a[rows], "label": y[rows], "true_prob": true_p[rows]}
        frame.update({f"pred_{m}": p for m, p in predictions[s].items()})
        frames.append(pd.DataFrame(frame))
    with atomic_path(path) as tmp:
        pd.concat(frames, ignore_index=True).to_parquet(tmp, index=False)


def _plot(path: Path, test_rows: dict, y: np.ndarray, true_p: np.ndarray, predictions: dict, bins: int) -> None:
    save_figure(ctr_figure(test_rows, y, true_p, predictions, bins), path)


def ctr_figure(test_rows: dict, y: np.ndarray, true_p: np.ndarray, predictions: dict, bins: int):
    """ROC curves (top row) and reliability diagrams (bottom row), a column per test set."""
    plt = _figure()
    fig, axes = plt.subplots(2, len(test_rows), figsize=(5.5 * len(test_rows), 9), squeeze=False)
    for j, (s, rows) in enumerate(test_rows.items()):
        roc_ax, rel_ax = axes[0, j], axes[1, j]
        curves = {**predictions[s], "true probability": true_p[rows]}
        for m, p in curves.items():
            fpr, tpr = roc_curve(y[rows], p)
            style = dict(color="k", ls="--") if m == "true probability" else {}
            roc_ax.plot(fpr, tpr, lw=1.5, label=m, **style)
            rb = reliability_bins(y[rows], p, bins)
            used = rb["count"] > 0
            rel_ax.plot(rb["mean_prob"][used], rb["click_rate"][used], marker="o", ms=3, label=m, **style)
        roc_ax.plot([0, 1], [0, 1], color="0.7", lw=0.8)
        roc_ax.set(title=f"ROC, {s} test ({len(rows):,} rows)", xlabel="false positive rate", ylabel="true positive rate")
        rel_ax.plot([0, 1], [0, 1], color="0.7", lw=0.8)
        rel_ax.set(title=f"reliability, {s} test", xlabel="predicted click probability", ylabel="click rate")
        for ax in (roc_ax, rel_ax):
            ax.legend(fontsize=8, loc="best")
            ax.grid(alpha=0.3)
    fig.tight_layout()  # the top row's x-labels clear the bottom row's titles
    return fig
