"""Linear probes: logistic regression on standardised embeddings (scikit-learn)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from disentangled_ssl._errors import DSSLError


def linear_probe(
    train_features: np.ndarray,
    train_labels: Mapping[str, np.ndarray],
    test_features: np.ndarray,
    test_labels: Mapping[str, np.ndarray],
    max_iter: int = 1000,
    C: float = 1.0,
) -> dict[str, float]:
    """Fit one logistic regression per label on the train rows; return test accuracy per label.

    Args:
        train_features: (n_train, d) embeddings.
        train_labels: label name -> (n_train,) integer labels.
        test_features: (n_test, d) embeddings.
        test_labels: label name -> (n_test,) labels (same names as ``train_labels``).
        max_iter: L-BFGS iterations.
        C: inverse L2 regularisation strength.

    Returns:
        label name -> accuracy on the test rows, in [0, 1].
    """
    if train_features.ndim != 2 or test_features.ndim != 2:
        raise DSSLError("probe features must be 2-D arrays (rows × features)")
    if train_features.shape[1] != test_features.shape[1]:
        raise DSSLError(
            f"train features have {train_features.shape[1]} columns, test features "
            f"{test_features.shape[1]}"
        )
    missing = set(train_labels) ^ set(test_labels)
    if missing:
        raise DSSLError(f"labels {sorted(missing)} are not in both train and test labels")
    scores: dict[str, float] = {}
    # One BLAS thread, set once for all labels: L-BFGS on (n, d <= a few hundred) is a chain
    # of small matrix-vector products, which OpenBLAS's threads slow down (measured 6x slower
    # with 2 threads next to torch's OpenMP pool; benchmarks/bench_probe.py).
    with threadpool_limits(limits=1, user_api="blas"):
        for name, y_train in train_labels.items():
            y_train = np.asarray(y_train)
            if y_train.shape[0] != train_features.shape[0]:
                raise DSSLError(
                    f"label {name!r} has {y_train.shape[0]} train rows, features have "
                    f"{train_features.shape[0]}"
                )
            if np.unique(y_train).size < 2:
                raise DSSLError(
                    f"label {name!r} has a single class in the train split; cannot probe")
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, C=C))
            with warnings.catch_warnings():
                # L-BFGS stopping at max_iter changes accuracy by < 0.001 here; keep logs
                # readable.
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(train_features, y_train)
            scores[name] = float(clf.score(test_features, np.asarray(test_labels[name])))
    return scores
