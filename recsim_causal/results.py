"""Result files: typed, versioned records, one writer, one reader.

Every result file a run writes (``summary.json``, ``ope.json``, ``coverage.json``,
``compare.json``, ``ctr.json``) is one record of a registered :class:`ResultKind`: its JSON
object carries ``"schema": {"kind": ..., "version": ...}``. The writer is strict JSON: a
non-finite number becomes ``null`` and its path and reason go under ``"nulls"`` (``{"targets.
random.estimators.dm.relative_error": "nan"}``). The reader checks the kind, the version and
the required keys, and a file it cannot use is one line naming the file.

Each kind declares its metrics and which direction of each is better (``lower``, ``higher``,
``closer to 0``, ``closer to 0.95``, or ``None`` for a count that is no verdict); the report
ranks by these declarations, never by the metric's name.

New kinds (``offline``, ``ops``, ``sensitivity``, ...) register with :func:`register_kind`::

    register_kind(ResultKind("offline", "offline.json", metrics={"value": "higher"}, required=("targets",)))
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsim_causal.io import to_jsonable, write_json

__all__ = ["ResultKind", "KINDS", "register_kind", "write_result", "read_result", "better", "kind_of_file",
           "format_table", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
BETTER = ("lower", "higher", "closer to 0", "closer to 0.95", None)


@dataclass(frozen=True)
class ResultKind:
    """A kind of result file: its name, default file name, required top-level keys, the
    versions the reader accepts, and its metrics' better directions."""

    name: str
    file: str
    metrics: Mapping[str, str | None] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    versions: tuple[int, ...] = (SCHEMA_VERSION,)

    def __post_init__(self) -> None:
        bad = {m: b for m, b in self.metrics.items() if b not in BETTER}
        if bad:
            raise ValueError(f"ResultKind {self.name}.metrics: better must be one of {BETTER}, got {bad}")


KINDS: dict[str, ResultKind] = {}


def register_kind(kind: ResultKind) -> ResultKind:
    """Add a kind of result file (a name taken by another kind is refused)."""
    if kind.name in KINDS and KINDS[kind.name] != kind:
        raise ValueError(f"results: kind '{kind.name}' is already registered")
    KINDS[kind.name] = kind
    return kind


_ERRORS = {"error": "closer to 0", "mean_error": "closer to 0", "bias": "closer to 0", "abs_error": "lower",
           "squared_error": "lower", "relative_error": "lower", "rmse": "lower", "bias_se": "lower",
           "coverage": "closer to 0.95", "coverage_error": "lower", "mean_width": "lower", "ci_width": "lower",
           "estimate": None, "truth": None, "ess_ratio": "higher", "max_weight": "lower", "wall_s": "lower"}
register_kind(ResultKind("summary", "summary.json", required=("steps",), metrics={
    "cumulative_reward": "higher", "mean_reward": "higher", "cumulative_regret": "lower",
    "regret_first_half": "lower", "regret_second_half": "lower", "oracle_mean_reward": None,
    "steps_per_s": "higher", "train_steps_per_s": "higher", "wall_s": "lower", "train_wall_s": "lower",
    "steps": None, "env_steps": None, "train_steps": None, "logged_rows": None, "slate_size": None, "seed": None,
    # a world that changes (scm.dynamics): per-change-point lists and the new items' cold start
    "recovery_regret": "lower", "recovery_baseline": None, "recovery_window": None, "change_points": None,
    "new_item_regret": "lower", "new_item_mean_regret": "lower", "new_item_impressions": None,
    "new_items_shown": None, "new_item_window": None, "restarts": None}))
register_kind(ResultKind("ope", "ope.json", required=("targets",), metrics=_ERRORS))
register_kind(ResultKind("coverage", "coverage.json", metrics=_ERRORS))
register_kind(ResultKind("ope_shift", "ope_shift.json", required=("rows", "t_before", "t_after"), metrics={
    **_ERRORS, "error_after": "closer to 0", "rmse_after": "lower", "covers_after": "closer to 0.95",
    "covers_before": None, "truth_before": None, "truth_after": None}))
register_kind(ResultKind("compare", "compare.json", required=("policies",), metrics={
    "mean_reward": "higher", "cumulative_regret": "lower", "final_value": "higher", "width_ratio": "lower",
    "coverage": "closer to 0.95", "wall_s": "lower"}))
register_kind(ResultKind("offline", "offline.json", required=("learners", "logger", "online_best", "oracle"), metrics={
    "true_value": "higher", "true_value_se": None, "regret": "lower", "fit_s": "lower", "wall_s": "lower",
    "heldout_estimate": None, "train_estimate": None, "train_minus_truth": "closer to 0"}))
register_kind(ResultKind("ctr", "ctr.json", metrics={"auc": "higher", "log_loss": "lower", "wall_s": "lower"}))
register_kind(ResultKind("tune", "tune.json", required=("objective", "values"), metrics={"objective": None}))
register_kind(ResultKind("ops", "ops.json", required=("estimators", "truth"), metrics={
    "spearman": "higher", "kendall": "higher", **{f"{m}@{k}": b for k in range(1, 11)
                                                for m, b in (("regret", "lower"), ("ndcg", "higher"), ("sharpe", "higher"))},
    "wall_s": "lower"}))


def better(metric: str, kind: str | None = None) -> str | None:
    """The declared better direction of ``metric`` (in ``kind``, else in any kind)."""
    kinds = [KINDS[kind]] if kind is not None else list(KINDS.values())
    for k in kinds:
        if metric in k.metrics:
            return k.metrics[metric]
    declared = sorted({m for k in kinds for m, b in k.metrics.items() if b is not None})
    raise ValueError(f"metric '{metric}': no declared better direction (declared: {', '.join(declared)})")


def kind_of_file(path: str | Path) -> str | None:
    """The kind whose default file name ``path`` has (None if no kind's)."""
    name = Path(path).name
    return next((k.name for k in KINDS.values() if k.file == name), None)


def write_result(path: str | Path, kind: str, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` as a ``kind`` result file at ``path`` (atomic, strict JSON)."""
    if kind not in KINDS:
        raise ValueError(f"results: unknown kind '{kind}' (known: {', '.join(KINDS)})")
    nulls: dict[str, str] = dict(payload.get("nulls") or {})
    body = to_jsonable({k: v for k, v in payload.items() if k not in ("schema", "nulls")}, _where="", nulls=nulls)
    record = {"schema": {"kind": kind, "version": SCHEMA_VERSION}, **body}
    if nulls:
        record["nulls"] = nulls
    write_json(path, record)
    return Path(path)


def read_result(path: str | Path, kind: str | None = None) -> tuple[str, dict[str, Any]]:
    """(kind, record) of a result file. A file without a schema (written before it) is read as
    the kind its name says. Unreadable, unknown kind or version, missing keys: one line
    naming the file."""
    p = Path(path)
    try:
        record = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{p}: cannot read ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{p}: expected a JSON object, got {type(record).__name__}")
    schema = record.get("schema")
    if schema is None:
        found, version = kind or kind_of_file(p), None
    elif isinstance(schema, dict):
        found, version = schema.get("kind"), schema.get("version")
    else:
        raise ValueError(f"{p}: schema: expected {{kind, version}}, got {schema!r}")
    if found not in KINDS:
        raise ValueError(f"{p}: unknown result kind {found!r} (known: {', '.join(KINDS)})")
    if kind is not None and found != kind:
        raise ValueError(f"{p}: expected a '{kind}' result, got '{found}'")
    spec = KINDS[found]
    if version is not None and version not in spec.versions:
        raise ValueError(f"{p}: {found} schema version {version!r} is not supported "
                         f"(supported: {', '.join(map(str, spec.versions))})")
    missing = [k for k in spec.required if k not in record]
    if missing:
        raise ValueError(f"{p}: not a {found} result (missing {', '.join(missing)})")
    return found, record


# ------------------------------------------------------------------------- text tables
def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def format_table(columns: list[str], rows: list[list], notes: str | list[str] | None = None) -> str:
    """A plain-text table; ``notes`` (a line or lines: diagnostics, WARNING ...) follow it.
    A bare string is printed as ``WARNING: <string>``."""
    cells = [columns] + [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    if isinstance(notes, str):
        notes = [f"WARNING: {notes}"]
    lines += list(notes or [])
    return "\n".join(lines)


def fmt(v: float | None, digits: int = 3) -> str:
    """``v`` to ``digits`` significant digits, thousands separated: 5,290; 0.611; 0.0148."""
    if v is None:
        return "-"
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    places = digits - 1 - math.floor(math.log10(abs(v)))
    return f"{round(v, places):,.{max(places, 0)}f}"
