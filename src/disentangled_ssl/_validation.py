"""Input validation shared by the estimator, the readers and the CLI."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from disentangled_ssl._errors import DSSLError


def as_feature_matrix(x: object, name: str) -> np.ndarray:
    """Return ``x`` as a finite float32 (n, d) array or raise a :class:`DSSLError` naming it."""
    try:
        array = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise DSSLError(f"{name} could not be read as an array: {exc}") from exc
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == bool
    ):
        raise DSSLError(
            f"{name} must be numeric, got dtype {array.dtype}; convert or drop non-numeric "
            "columns first"
        )
    if array.ndim != 2:
        hint = "use x.reshape(-1, 1) for a single feature" if array.ndim == 1 else (
            "flatten each sample to a vector (x.reshape(len(x), -1)) or pass a custom encoder")
        raise DSSLError(f"{name} must be 2-D (rows × features), got shape {array.shape}; {hint}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise DSSLError(f"{name} is empty (shape {array.shape}); it needs rows and features")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise DSSLError(f"{name} is complex-valued; pass real features")
    array = array.astype(np.float32, copy=False)
    finite = np.isfinite(array)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise DSSLError(
            f"{name} contains NaN or infinite values ({int((~finite).sum())} entries, first at "
            f"row {row}, column {col}); impute or drop them before fitting"
        )
    return array


def check_paired(arrays: Sequence[np.ndarray], names: Sequence[str]) -> None:
    """All modalities must have the same number of rows (row k is the same sample)."""
    rows = [a.shape[0] for a in arrays]
    if len(set(rows)) != 1:
        detail = ", ".join(f"{n} has {r}" for n, r in zip(names, rows))
        raise DSSLError(
            f"modalities must be paired row by row but {detail} rows; align them (e.g. join on "
            "an ID column) first"
        )


def check_constant_columns(array: np.ndarray, name: str) -> None:
    """Constant columns carry no information and break standardisation: refuse them."""
    if array.shape[0] < 2:
        return
    constant = np.flatnonzero(np.ptp(array, axis=0) == 0)
    if constant.size:
        shown = ", ".join(str(c) for c in constant[:10])
        more = "…" if constant.size > 10 else ""
        raise DSSLError(
            f"{name} has {constant.size} constant column(s) (index {shown}{more}); drop them, "
            f"e.g. x[:, x.std(0) > 0]"
        )


def check_nonnegative(name: str, value: object, *, positive: bool = False) -> float:
    """A finite number >= 0 (> 0 when ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DSSLError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        kind = "a positive finite number" if positive else "a finite number >= 0"
        raise DSSLError(f"{name} must be {kind}, got {value!r}")
    return v


def check_positive_int(name: str, value: object, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DSSLError(f"{name} must be an integer, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise DSSLError(f"{name} must be {'>= 0' if allow_zero else '>= 1'}, got {value!r}")
    return int(value)
