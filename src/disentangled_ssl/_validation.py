"""Input validation shared by the estimator, the readers and the CLI."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from disentangled_ssl._errors import DSSLError


def check_paired(arrays: Sequence[np.ndarray], names: Sequence[str]) -> None:
    """All modalities must have the same number of rows (row k is the same sample)."""
    rows = [a.shape[0] for a in arrays]
    if len(set(rows)) != 1:
        detail = ", ".join(f"{n} has {r}" for n, r in zip(names, rows))
        raise DSSLError(
            f"modalities must be paired row by row but {detail} rows; align them (e.g. join on "
            "an ID column) first"
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
