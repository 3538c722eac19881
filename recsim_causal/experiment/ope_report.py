"""What every OPE path ends with: estimates vs truth as rows, ope.json, ope.png, the W&B run.

The slate and session paths (and any new setting) build one :class:`OPERows` per target and
hand it to :func:`write_report`; they share the row layout, the diagnostics and the plot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recsim_causal.plots import ope_plot
from recsim_causal.experiment.tracking import Tracker, ope_scalars
from recsim_causal.results import format_table, write_result
from recsim_causal.ope import ope_table
from recsim_causal.ope.diagnostics import diagnostic_warnings, weight_diagnostics

COLUMNS = ["target", "estimator", "estimate", "ci_low", "ci_high", "truth", "error", "relative_error", "covers",
           "valid"]


def target_result(name: str, estimates: dict[str, float], intervals: dict[str, dict], truth: float | None,
                  weights: dict[str, np.ndarray], extra: dict[str, Any] | None = None
                  ) -> tuple[dict[str, Any], list[list], list[str]]:
    """One target's json block, its table rows and its WARNING lines.

    ``weights`` maps an estimator (or a family of them) to the importance weights it uses, one
    per independent unit; their diagnostics (ESS, max weight) go into the json, and crossed
    thresholds into WARNING lines. ``truth`` None (external data): no error columns."""
    table = ope_table(estimates, 0.0 if truth is None else truth, intervals=intervals)
    if truth is None:  # external data: estimates and intervals only
        none = dict.fromkeys(("truth", "error", "abs_error", "relative_error", "squared_error", "covers"))
        table = {k: {**v, **none} for k, v in table.items()}
    diagnostics = {k: weight_diagnostics(w) for k, w in weights.items()}
    warnings = [line for k, d in diagnostics.items() for line in diagnostic_warnings(d, f"{name}/{k}")]
    rows = [[name, est, r["estimate"], r["ci_low"], r["ci_high"], truth, r["error"], r["relative_error"], r["covers"]]
            for est, r in table.items()]
    block = {"truth": truth, **(extra or {}), "estimators": table, "diagnostics": diagnostics, "warnings": warnings}
    return block, rows, warnings


def add_validity(block: dict[str, Any], rows: list[list], validity: dict[str, dict[str, Any]]) -> None:
    """Each estimator's ``interval_valid``, ``invalid_reason`` and ``diagnostics`` (from
    :func:`recsim_causal.ope.diagnostics.validity_rows`) into its json row and its table row."""
    for name, v in validity.items():
        block["estimators"][name].update(v)
    for row in rows:
        row.append(validity[row[1]]["interval_valid"])


def format_rows(rows: list[list], warnings: list[str]) -> str:
    """The estimates as an aligned text table, WARNING lines below."""
    return format_table(COLUMNS, rows, warnings)


def write_report(summary: dict[str, Any], rows: list[list], warnings: list[str], out_dir: str | Path,
                 tracker: Tracker, *, title: str) -> dict[str, Any]:
    """Write ope.json and ope.png, log the table, plot and summary to W&B; return the summary
    with its text table under ``"table"``."""
    out_dir = Path(out_dir)
    summary["warnings"] = warnings
    ope_plot(summary["targets"], out_dir / "ope.png", title=title)
    write_result(out_dir / "ope.json", "ope", summary)
    tracker.estimates("ope", ope_scalars(summary["targets"]))
    tracker.table("ope", COLUMNS, rows)
    tracker.image("ope", out_dir / "ope.png")
    tracker.summary({k: summary[k] for k in ("setting", "n_rounds", "wall_s") if k in summary})
    summary["table"] = format_rows(rows, warnings)
    return summary
