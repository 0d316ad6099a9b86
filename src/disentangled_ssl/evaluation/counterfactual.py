"""R² of predicted against true counterfactuals (``docs/counterfactuals.md``)."""

from __future__ import annotations

import numpy as np

from disentangled_ssl._errors import DSSLError


def counterfactual_r2(pred: object, truth: object) -> float:
    """R² of predicted against true counterfactuals over all entries, weighting each feature
    by its variance: ``1 - Σ (pred - truth)² / Σ (truth - mean_over_rows(truth))²``, the same
    number as ``sklearn.metrics.r2_score(truth, pred, multioutput="variance_weighted")`` for
    (n, d) arrays (N-D arrays are flattened to (n, features)). 1 is perfect; predicting every
    feature's mean over the rows scores 0.

    Raises:
        DSSLError: shapes differ, fewer than 2 rows, non-finite values, or constant truth.
    """
    p = np.asarray(pred, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    if p.shape != y.shape:
        raise DSSLError(f"counterfactual_r2: pred has shape {p.shape}, truth {y.shape}")
    if y.ndim < 1 or y.shape[0] < 2:
        raise DSSLError("counterfactual_r2 needs at least 2 rows")
    p, y = p.reshape(p.shape[0], -1), y.reshape(y.shape[0], -1)
    if not (np.isfinite(p).all() and np.isfinite(y).all()):
        raise DSSLError("counterfactual_r2: pred or truth has NaN or infinite values")
    total = float(((y - y.mean(axis=0)) ** 2).sum())
    if total == 0:
        raise DSSLError("counterfactual_r2: truth is constant over the rows; R² is undefined")
    return 1.0 - float(((p - y) ** 2).sum()) / total

