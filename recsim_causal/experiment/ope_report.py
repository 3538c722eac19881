"""What every OPE path ends with: estimates vs truth as rows, ope.json, ope.png, the W&B run.

The slate and session paths (and any new setting) hand :func:`write_report` the rows of their
:class:`~recsim_causal.ope.OPEResult` (:func:`report_rows`); they share the row layout and the plot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recsim_causal.plots import ope_plot
from recsim_causal.experiment.tracking import Tracker, ope_scalars
from recsim_causal.results import format_table, write_result

COLUMNS = ["target", "estimator", "estimate", "ci_low", "ci_high", "truth", "error", "relative_error", "covers",
           "valid"]


def report_rows(targets: dict[str, dict[str, Any]]) -> tuple[list[list], list[str]]:
    """The table rows (:data:`COLUMNS`) and WARNING lines of an :class:`~recsim_causal.ope.OPEResult`'s
    per-target blocks (``result.targets``)."""
    rows = [[name, est, r["estimate"], r["ci_low"], r["ci_high"], block["truth"], r["error"], r["relative_error"],
             r["covers"], r["interval_valid"]]
            for name, block in targets.items() for est, r in block["estimators"].items()]
    return rows, [w for block in targets.values() for w in block.get("warnings", [])]


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
