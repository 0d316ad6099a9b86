"""Argument checks shared by the baseline loss modules."""

from __future__ import annotations

import math

from disentangled_ssl._errors import DSSLError


def check_dial(name: str, value: float) -> float:
    """A loss weight: a finite number >= 0 (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DSSLError(f"{name} must be a finite number >= 0, got {value!r}")
    if value < 0:
        raise DSSLError(f"{name} must be >= 0, got {value!r}")
    return float(value)


def check_temperature(value: float) -> float:
    """An InfoNCE temperature: positive and finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value > 0
    ):
        raise DSSLError(f"temperature must be positive and finite, got {value!r}")
    return float(value)


def check_views(name: str, views: list, n_min: int = 2) -> int:
    """Per-modality inputs: at least ``n_min`` modalities."""
    if len(views) < n_min:
        raise DSSLError(f"{name} needs inputs for >= {n_min} modalities, got {len(views)}")
    return len(views)
