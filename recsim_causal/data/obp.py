"""Interop with Open Bandit Pipeline (OBP 0.5.7): the ``bandit_feedback`` dict and the
Open Bandit Dataset (OBD) folder layout. OBP itself is not a dependency.

OBP ``bandit_feedback`` keys: n_rounds, n_actions, context, action_context, action,
position, reward, pscore, expected_reward, and ``pi_b`` (the logger's distribution,
shape (n, K, L); OBP's synthetic datasets name it ``pi_b``; older OBP versions and some
user code call it ``action_dist``, which :func:`from_obp` also accepts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .feedback import LoggedFeedback

__all__ = ["to_obp", "from_obp", "load_obd"]

_OBP_KEYS = {
    "n_rounds", "n_actions", "context", "action_context", "action", "position", "reward",
    "pscore", "expected_reward", "pi_b", "action_dist",
}  # fmt: skip


def to_obp(feedback: LoggedFeedback) -> dict[str, Any]:
    """OBP's ``bandit_feedback`` dict (arrays shared, not copied).

    The logger's distribution goes to ``pi_b`` with OBP's shape (n, K, L) (a view with a
    new last axis when stored as (n, K)). ``metadata`` goes under the extra key
    ``metadata``, which OBP ignores.
    """
    pi_b = feedback.action_dist
    if pi_b is not None and pi_b.ndim == 2:
        pi_b = pi_b[:, :, np.newaxis]
    # a slate log: OBP's slate keys too (SyntheticSlateBanditDataset's: slate_id, n_unique_action,
    # pscore_cascade, pscore_item_position; ``pscore`` is then the whole slate's)
    slate = {} if feedback.slate_id is None else dict(
        slate_id=feedback.slate_id, n_unique_action=feedback.n_actions, pscore_cascade=feedback.pscore_cascade,
        pscore_item_position=feedback.pscore_item_position)
    return dict(**slate,
        n_rounds=feedback.n_rounds,
        n_actions=feedback.n_actions,
        context=feedback.context,
        action_context=feedback.action_context,
        action=feedback.action,
        position=feedback.position,
        reward=feedback.reward,
        pscore=feedback.pscore,
        expected_reward=feedback.expected_reward,
        pi_b=pi_b,
        metadata=dict(feedback.metadata),
    )


def from_obp(
    bandit_feedback: dict[str, Any], *, metadata: dict[str, Any] | None = None
) -> LoggedFeedback:
    """Build a LoggedFeedback from OBP's ``bandit_feedback`` dict.

    ``pi_b`` (or ``action_dist``) of shape (n, K, 1) is stored as (n, K). Keys outside the
    schema (OBP's synthetic extras such as ``q_x_e``) are dropped. ``metadata`` defaults to
    ``bandit_feedback["metadata"]`` if present.
    """
    bf = bandit_feedback
    missing = [k for k in ("n_actions", "context", "action", "reward", "pscore") if bf.get(k) is None]
    if missing:
        raise ValueError(f"from_obp: bandit_feedback lacks {missing} (has {sorted(bf)})")
    pi_b = bf.get("pi_b")
    if pi_b is None:
        pi_b = bf.get("action_dist")
    if pi_b is not None:
        pi_b = np.asarray(pi_b)
        if pi_b.ndim == 3 and pi_b.shape[2] == 1:
            pi_b = pi_b[:, :, 0]
    context = np.asarray(bf["context"])
    if context.ndim == 1:
        context = context[:, np.newaxis]
    fb = LoggedFeedback(
        context=context,
        action=bf["action"],
        reward=bf["reward"],
        pscore=bf["pscore"],
        n_actions=int(bf["n_actions"]),
        position=bf.get("position"),
        action_dist=pi_b,
        expected_reward=bf.get("expected_reward"),
        action_context=bf.get("action_context"),
        metadata=dict(metadata if metadata is not None else bf.get("metadata") or {}),
    )
    if bf.get("n_rounds") is not None and int(bf["n_rounds"]) != fb.n_rounds:
        raise ValueError(f"from_obp: n_rounds is {bf['n_rounds']} but action has {fb.n_rounds} rows")
    return fb


def _dense_rank0(x: np.ndarray) -> np.ndarray:
    """0-based dense rank (scipy.stats.rankdata(x, 'dense') - 1, as OBP does)."""
    return np.unique(x, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _read_csv(path: Path) -> pd.DataFrame:
    """An OBD CSV (first column the index), refused when it has no rows or a row with empty
    fields (a file cut mid-row gives a last row with fewer fields; pandas fills them with NaN)."""
    try:
        frame = pd.read_csv(path, index_col=0)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ValueError(f"load_obd: {path} is not a readable CSV ({str(e).splitlines()[0] if str(e) else e!r})") from None
    if frame.empty:
        raise ValueError(f"load_obd: {path} has no rows")
    empty = frame.isna().to_numpy().any(axis=1)
    if empty.any():
        row = int(np.argmax(empty))
        hint = " (the file is cut short?)" if row == len(frame) - 1 else ""
        raise ValueError(f"load_obd: {path}: row {row + 1} of {len(frame)} has empty fields{hint}")
    return frame


def _numbers(frame: pd.DataFrame, column: str, path: Path, dtype: type) -> np.ndarray:
    """A column as numbers, else ``load_obd: <path>: column 'click' holds 'yes' (expected numbers)``."""
    values = frame[column]
    try:
        out = values.to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        bad = next(v for v in values if not _is_number(v))
        raise ValueError(f"load_obd: {path}: column {column!r} holds {bad!r} (expected numbers)") from None
    if dtype is np.int64:
        if not np.all(out == np.round(out)):
            raise ValueError(f"load_obd: {path}: column {column!r} holds non-integers (expected integers)")
        return out.astype(np.int64)
    return out


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def load_obd(path: str | Path, *, include_affinity: bool = False) -> LoggedFeedback:
    """Read one campaign of the Open Bandit Dataset into a LoggedFeedback.

    ``path`` is a campaign folder (``.../random/all/`` holding ``all.csv`` and
    ``item_context.csv``) or the campaign CSV itself (``item_context.csv`` beside it).

    Preprocessing is OBP 0.5.7's ``OpenBanditDataset.load_raw_data`` + ``pre_process``:
    rows sorted by ``timestamp``; action = ``item_id``; position = dense rank of the raw
    1-based ``position`` minus 1 (so 0-based); reward = ``click``; pscore =
    ``propensity_score``; context = ``pd.get_dummies(user_feature_*, drop_first=True)``;
    action_context = the label-encoded item_context columns other than ``item_feature_0``
    (``item_id`` included, as in OBP) followed by ``item_feature_0``.

    OBP's default context has no affinity columns. ``include_affinity=True`` appends the
    raw ``user-item_affinity_*`` columns to the context (OBP's example "context set 2"
    also PCA-reduces them to 30 dimensions; we do not).
    """
    path = Path(path)
    if path.is_dir():
        folder = path
        named = folder / f"{folder.name}.csv"
        if named.exists():
            csv = named
        else:
            candidates = sorted(p for p in folder.glob("*.csv") if p.name != "item_context.csv")
            if len(candidates) != 1:
                raise ValueError(
                    f"load_obd: {folder} should hold one campaign CSV besides item_context.csv, "
                    f"found {[p.name for p in candidates]}"
                )
            csv = candidates[0]
    elif path.is_file():
        folder, csv = path.parent, path
    else:
        raise FileNotFoundError(f"load_obd: {path} does not exist")
    item_path = folder / "item_context.csv"
    if not item_path.exists():
        raise FileNotFoundError(f"load_obd: {item_path} is missing (OBD keeps it beside the CSV)")

    data = _read_csv(csv)
    item_context = _read_csv(item_path)
    required = ["timestamp", "item_id", "position", "click", "propensity_score"]
    missing = [c for c in required if c not in data.columns]
    if missing:
        raise ValueError(f"load_obd: {csv} lacks columns {missing}")
    if "item_feature_0" not in item_context.columns:
        raise ValueError(f"load_obd: {item_path} lacks column 'item_feature_0'")

    data = data.sort_values("timestamp")
    action = _numbers(data, "item_id", csv, np.int64)
    position = _dense_rank0(_numbers(data, "position", csv, np.int64))
    reward = _numbers(data, "click", csv, np.float64)
    pscore = _numbers(data, "propensity_score", csv, np.float64)

    user_cols = data.columns[data.columns.str.contains("user_feature")]
    context = pd.get_dummies(data.loc[:, user_cols], drop_first=True).to_numpy(dtype=np.float64)
    if include_affinity:
        aff_cols = data.columns[data.columns.str.contains("affinity")]
        affinity = [_numbers(data, c, csv, np.float64) for c in aff_cols]
        context = np.c_[context, np.column_stack(affinity)] if affinity else context

    cat = item_context.drop(columns="item_feature_0")
    encoded = np.column_stack(
        [np.unique(cat[c].to_numpy(), return_inverse=True)[1].reshape(-1) for c in cat.columns]
        + [_numbers(item_context, "item_feature_0", item_path, np.float64)]
    ).astype(np.float64)

    n_actions = max(int(action.max()) + 1, encoded.shape[0])
    if encoded.shape[0] != n_actions:
        raise ValueError(
            f"load_obd: item_context.csv has {encoded.shape[0]} items but item_id reaches "
            f"{int(action.max())}"
        )
    parts = [p.lower() for p in folder.parts]
    behavior = next((b for b in ("random", "bts") if b in parts), None)
    return LoggedFeedback(
        context=context,
        action=action,
        reward=reward,
        pscore=pscore,
        n_actions=n_actions,
        position=position,
        action_context=encoded,
        metadata={
            "source": "open_bandit_dataset",
            "path": str(csv),
            "behavior_policy": behavior,
            "campaign": folder.name,
            "include_affinity": include_affinity,
            "preprocessing": "obp-0.5.7 OpenBanditDataset.pre_process",
        },
    )
