"""Reference points for retrieval and probes: chance and raw features.

- :func:`random_retrieval`: the expected metrics of a random ranking (exact, no sampling):
  top-k = k/n, MRR = H_n/n (the mean of 1/rank for a uniformly random rank in 1..n).
- :class:`CCA`: regularised canonical correlation analysis fitted on the training rows, the
  classic shared space of two raw views (Hotelling, 1936); :func:`cca_retrieval` ranks the test
  items of modality 2 for each modality-1 query by cosine of their canonical variates.
- :func:`raw_probe`: the linear probe on the raw (concatenated) features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.evaluation.probe import linear_probe
from disentangled_ssl.evaluation.retrieval import retrieval_metrics


def random_retrieval(n_items: int, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Expected top-k accuracy and MRR of a uniformly random ranking of ``n_items`` items."""
    if n_items < 1:
        raise DSSLError(f"n_items must be >= 1, got {n_items}")
    out = {f"top{k}": min(k, n_items) / n_items for k in ks}
    out["mrr"] = float(np.sum(1.0 / np.arange(1, n_items + 1)) / n_items)
    return out


class CCA:
    """Regularised CCA between two views (numpy, closed form).

    Each view is standardised with its training mean/std, whitened with
    ``(C_xx + reg·I)^(-1/2)``, and the top ``n_components`` singular vectors of the whitened
    cross-covariance give the canonical directions.

    Args:
        n_components: canonical pairs kept (at most min(d1, d2)).
        reg: ridge added to each view's covariance (the views are standardised, so this is a
            fraction of the unit variance); keeps rank-deficient views well-posed.

    Attributes (after fit):
        correlations_: (k,) canonical correlations on the training rows, descending.
    """

    def __init__(self, n_components: int = 32, reg: float = 1e-2) -> None:
        if n_components < 1:
            raise DSSLError(f"n_components must be >= 1, got {n_components}")
        if not reg >= 0:
            raise DSSLError(f"reg must be >= 0, got {reg}")
        self.n_components, self.reg = int(n_components), float(reg)

    def _whitener(self, x: np.ndarray) -> np.ndarray:
        cov = x.T @ x / x.shape[0] + self.reg * np.eye(x.shape[1])
        values, vectors = np.linalg.eigh(cov)
        return (vectors / np.sqrt(np.maximum(values, 1e-12))) @ vectors.T

    def fit(self, x1: np.ndarray, x2: np.ndarray) -> CCA:
        """Fit on paired training rows x1 (n, d1), x2 (n, d2); returns ``self``."""
        x1, x2 = np.asarray(x1, np.float64), np.asarray(x2, np.float64)
        if x1.ndim != 2 or x2.ndim != 2 or x1.shape[0] != x2.shape[0] or x1.shape[0] < 2:
            raise DSSLError(f"CCA needs paired 2-D views with >= 2 rows, got {x1.shape} and "
                            f"{x2.shape}")
        self.means_ = [x1.mean(0), x2.mean(0)]
        self.scales_ = [np.where(x.std(0) > 0, x.std(0), 1.0) for x in (x1, x2)]
        z1, z2 = ((x - m) / s for x, m, s in zip((x1, x2), self.means_, self.scales_))
        w1, w2 = self._whitener(z1), self._whitener(z2)
        u, s, vt = np.linalg.svd(w1 @ (z1.T @ z2 / z1.shape[0]) @ w2)
        k = min(self.n_components, s.size)
        self.projections_ = [w1 @ u[:, :k], w2 @ vt[:k].T]
        self.correlations_ = s[:k]
        return self

    def transform(self, x: np.ndarray, view: int) -> np.ndarray:
        """(n, d_view) -> (n, k) canonical variates of view 0 or 1."""
        z = (np.asarray(x, np.float64) - self.means_[view]) / self.scales_[view]
        return z @ self.projections_[view]


def cca_retrieval(train: Sequence[np.ndarray], test: Sequence[np.ndarray],
                  n_components: int = 32, reg: float = 1e-2,
                  ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Raw-feature retrieval baseline: CCA fitted on the training pair, then cosine retrieval
    of test modality-2 items for each test modality-1 query in the canonical space."""
    cca = CCA(n_components, reg).fit(train[0], train[1])
    return retrieval_metrics(cca.transform(test[0], 0), cca.transform(test[1], 1),
                             ks=tuple(ks))


def raw_probe(train_views: Sequence[np.ndarray], train_labels: Mapping[str, np.ndarray],
              test_views: Sequence[np.ndarray], test_labels: Mapping[str, np.ndarray],
              max_iter: int = 3000) -> dict[str, float]:
    """Linear probe on the raw views, flattened and concatenated (standardised inside the
    probe)."""
    flat_train = np.concatenate([v.reshape(v.shape[0], -1) for v in train_views], axis=1)
    flat_test = np.concatenate([v.reshape(v.shape[0], -1) for v in test_views], axis=1)
    return linear_probe(flat_train, train_labels, flat_test, test_labels, max_iter=max_iter)
