"""Array checks shared by the data schema and the OPE estimators.

Every check raises a one-line ValueError that names the array and says what would be right,
e.g. ``reward contains NaN (3 of 1000 rows)`` or ``pscore has 999 rows but reward has 1000``.
The checks are written for large arrays: one pass, no copies of the input.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "as_float_array",
    "as_int_array",
    "check_finite",
    "check_ndim",
    "check_rows",
    "count_rows",
]


def count_rows(mask: np.ndarray) -> int:
    """Number of rows (first axis) with any True in ``mask``."""
    if mask.ndim == 1:
        return int(np.count_nonzero(mask))
    return int(np.count_nonzero(mask.reshape(mask.shape[0], -1).any(axis=1)))


def check_finite(x: np.ndarray, name: str) -> None:
    """Raise ``ValueError('<name> contains NaN (k of n rows)')`` if x has NaN or inf."""
    if x.dtype.kind not in "fc":
        return
    # a sum is finite iff every term is (barring overflow, which the exact check below sorts out)
    if x.size == 0 or np.isfinite(np.add.reduce(x, axis=None)):
        return
    n = x.shape[0]
    nan_rows = count_rows(np.isnan(x))
    inf_rows = count_rows(np.isinf(x))
    parts = []
    if nan_rows:
        parts.append(f"NaN ({nan_rows} of {n} rows)")
    if inf_rows:
        parts.append(f"inf ({inf_rows} of {n} rows)")
    if parts:
        raise ValueError(f"{name} contains " + " and ".join(parts))


def as_float_array(x: object, name: str) -> np.ndarray:
    """``np.asarray(x, float64)`` (no copy when already float64) with a named error."""
    if x is None:
        raise ValueError(f"{name}: expected an array, got None")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name}: cannot convert to an array ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected numbers, got dtype {arr.dtype}")
    return arr if arr.dtype == np.float64 else arr.astype(np.float64)


def as_int_array(x: object, name: str) -> np.ndarray:
    """``np.asarray(x, int64)`` for integer inputs; floats are rejected, not truncated."""
    if x is None:
        raise ValueError(f"{name}: expected an array, got None")
    arr = np.asarray(x)
    if arr.dtype.kind not in "iub":
        raise ValueError(f"{name}: expected integers, got dtype {arr.dtype}")
    return arr if arr.dtype == np.int64 else arr.astype(np.int64)


def check_ndim(x: np.ndarray, name: str, ndims: tuple[int, ...], what: str) -> None:
    """Raise if ``x.ndim`` is not one of ``ndims``; ``what`` describes the expected shape."""
    if x.ndim not in ndims:
        raise ValueError(f"{name}: expected {what}, got shape {x.shape}")


def check_rows(x: np.ndarray, name: str, n: int, ref: str) -> None:
    """Raise ``'<name> has m rows but <ref> has n'`` on a length mismatch."""
    if x.shape[0] != n:
        raise ValueError(f"{name} has {x.shape[0]} rows but {ref} has {n}")
