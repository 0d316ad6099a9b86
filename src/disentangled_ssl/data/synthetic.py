"""The paper's synthetic generator (Wang et al., ICLR 2025, Section 5.1).

Z1, Zs, Z2 ~ N(0, variance·I); X1 = [Z1, Zs]·T1 and X2 = [Z2, Zs]·T2 with T ~ U(-1, 1); three
balanced binary labels y1 = f1(Z1), yc = fc(Zs), y2 = f2(Z2), where each f is a frozen random
two-layer ReLU MLP plus N(0, label_noise) noise, thresholded at its median.

``entanglement`` is the dial between the case where the Minimum Necessary Information point is
attainable (0, the paper's setting: T1, T2 are square and invertible, so Zs is recoverable
exactly from either modality and independent of the private latents) and cases where it is
not: each modality is observed through a random orthogonal projection that removes
``round(entanglement · x_dim)`` of its dimensions, so X_i holds fewer independent linear
combinations than there are latents, and the best estimate of Zs from X_i necessarily
carries some of Z_i. :func:`shared_recoverability` gives how much of Zs (and how much of Z_i)
each modality still reveals.

The latents and the mixing matrices come back with the data, so the true counterfactual of a
pair of rows is known (:func:`true_counterfactual`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from disentangled_ssl._errors import DSSLError

#: The label names: y1 (from Z1), yc (from Zs), y2 (from Z2).
LABEL_NAMES: tuple[str, str, str] = ("y1", "yc", "y2")


@dataclass
class PairedData:
    """Paired two-modality data with optional labels and latent factors.

    Attributes:
        x1: modality-1 features, shape (n, d1), float32.
        x2: modality-2 features, shape (n, d2), float32.
        labels: name -> integer label vector of shape (n,).
        latents: name -> latent factor matrix (n, k); empty for real data.
        mixing: name -> a matrix of the generator that is the same for every row (the
            synthetic generator's ``t1``, ``t2``: X1 = [Z1, Zs]·T1, X2 = [Z2, Zs]·T2); empty for
            real data. Kept whole by :meth:`subset` and :meth:`split`.
    """

    x1: np.ndarray
    x2: np.ndarray
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    latents: dict[str, np.ndarray] = field(default_factory=dict)
    mixing: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.x1.shape[0])

    def subset(self, index: np.ndarray) -> PairedData:
        """Rows ``index`` of every array."""
        return PairedData(
            self.x1[index],
            self.x2[index],
            {k: v[index] for k, v in self.labels.items()},
            {k: v[index] for k, v in self.latents.items()},
            dict(self.mixing),
        )

    def split(self, test_fraction: float = 0.2, seed: int = 0) -> tuple[PairedData, PairedData]:
        """Random train/test split (``test_fraction`` of the rows go to test), seeded; for the
        synthetic data it matches the authors' ``random_split`` after ``torch.manual_seed(0)``."""
        train, test = split_indices(len(self), test_fraction, seed)
        return self.subset(train), self.subset(test)


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows) of a seeded random split: the permutation of
    ``torch.utils.data.random_split`` after ``torch.manual_seed(seed)``, the first
    ``int((1 - test_fraction) · n)`` rows for training.

    Raises:
        DSSLError: ``test_fraction`` outside (0, 1), or a split that leaves a side empty.
    """
    if not 0.0 < test_fraction < 1.0:
        raise DSSLError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    n_train = int((1.0 - test_fraction) * n)
    if n_train == 0 or n_train == n:
        raise DSSLError(
            f"test_fraction={test_fraction} leaves an empty split for {n} rows; "
            "use more rows or a test_fraction nearer 0.5"
        )
    return order[:n_train], order[n_train:]


def label_mlp(in_dim: int, hidden_dim: int, seed: int) -> torch.nn.Sequential:
    """A frozen random 2-layer ReLU MLP built exactly as the authors' generator builds it:
    ``torch.manual_seed(seed)``, PyTorch's default Linear init, then Xavier-uniform weights.
    The global torch RNG is restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(
            torch.nn.Linear(in_dim, hidden_dim), torch.nn.ReLU(), torch.nn.Linear(hidden_dim, 1)
        )
        for layer in (net[0], net[2]):
            torch.nn.init.xavier_uniform_(layer.weight)
    net.requires_grad_(False)
    return net


def make_synthetic(
    n_samples: int = 20000,
    shared_dim: int = 50,
    private_dim1: int = 50,
    private_dim2: int = 50,
    x_dim1: int = 100,
    x_dim2: int = 100,
    variance: float = 0.5,
    label_hidden_dim: int = 100,
    label_noise: float = 0.1,
    seed: int = 0,
    entanglement: float = 0.0,
) -> PairedData:
    """Generate the paper's synthetic paired data.

    Args:
        n_samples: number of paired rows.
        shared_dim: dimension of the shared latent Zs.
        private_dim1, private_dim2: dimensions of the private latents Z1, Z2.
        x_dim1, x_dim2: observed dimensions of X1, X2.
        variance: per-dimension variance of every latent (the paper uses 0.5).
        label_hidden_dim: hidden width of the random label MLPs.
        label_noise: std of the Gaussian noise added before thresholding.
        seed: seeds the latents and the mixing matrices (the label MLPs are always seeded
            0, 1, 2, as in the authors' generator).
        entanglement: in [0, 1). 0 (the paper's generator, and the default): the Minimum
            Necessary Information point is attainable. Above 0, each modality's observation
            is projected onto a random subspace that drops ``round(entanglement · x_dim)``
            of its ``x_dim`` dimensions (the columns keep their number; the matrix loses
            rank), so Zs can no longer be separated exactly from the private latent. The
            latents, labels and draws of ``entanglement=0`` are unchanged by this dial; the
            projections come from extra draws after them.

    Returns:
        :class:`PairedData` with ``x1`` (n, x_dim1), ``x2`` (n, x_dim2) float32, labels
        ``y1`` (from Z1), ``yc`` (from Zs), ``y2`` (from Z2), each balanced 0/1, latents
        ``z1``, ``zs``, ``z2`` (float32) and the mixing matrices ``mixing["t1"]``
        ((private_dim1 + shared_dim, x_dim1)) and ``mixing["t2"]`` (float64, as drawn; with
        ``entanglement > 0`` the effective matrices ``T_i·P_i`` including the projection, so
        ``x_i = [Z_i, Zs]·mixing["t_i"]`` holds at every setting).

    Example:
        >>> data = make_synthetic(n_samples=1000, seed=0)
        >>> data.x1.shape, data.x2.shape, round(float(data.labels["yc"].mean()), 1)
        ((1000, 100), (1000, 100), 0.5)
    """
    for name, value in {
        "n_samples": n_samples, "shared_dim": shared_dim, "private_dim1": private_dim1,
        "private_dim2": private_dim2, "x_dim1": x_dim1, "x_dim2": x_dim2,
        "label_hidden_dim": label_hidden_dim,
    }.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise DSSLError(f"{name} must be a positive integer, got {value!r}")
    if n_samples < 2:
        raise DSSLError(f"n_samples must be at least 2, got {n_samples}")
    if not (np.isfinite(variance) and variance > 0):
        raise DSSLError(f"variance must be positive and finite, got {variance!r}")
    if not (np.isfinite(label_noise) and label_noise >= 0):
        raise DSSLError(f"label_noise must be >= 0 and finite, got {label_noise!r}")
    if (isinstance(entanglement, bool) or not isinstance(entanglement, (int, float, np.number))
            or not 0.0 <= float(entanglement) < 1.0):
        raise DSSLError(f"entanglement must be a number in [0, 1) (0: the shared latent is "
                        f"recoverable exactly from either modality), got {entanglement!r}")

    # Draw order and generators follow the authors' generate_data, so a seed gives the same
    # data as their code (legacy RandomState for latents/mixing/noise, torch for label MLPs).
    rng = np.random.RandomState(seed)
    zs = rng.multivariate_normal(np.zeros(shared_dim), np.eye(shared_dim) * variance, n_samples)
    z1 = rng.multivariate_normal(np.zeros(private_dim1), np.eye(private_dim1) * variance,
                                 n_samples)
    z2 = rng.multivariate_normal(np.zeros(private_dim2), np.eye(private_dim2) * variance,
                                 n_samples)
    t1 = rng.uniform(-1.0, 1.0, (private_dim1 + shared_dim, x_dim1))
    x1 = np.concatenate([z1, zs], axis=1) @ t1
    t2 = rng.uniform(-1.0, 1.0, (private_dim2 + shared_dim, x_dim2))
    x2 = np.concatenate([z2, zs], axis=1) @ t2

    labels: dict[str, np.ndarray] = {}
    for k, (name, latent) in enumerate(zip(LABEL_NAMES, (z1, zs, z2))):
        net = label_mlp(latent.shape[1], label_hidden_dim, seed=k)
        score = net(torch.from_numpy(latent).float()).numpy().astype(np.float64)
        score = score + rng.normal(0.0, label_noise, score.shape)
        prob = 1.0 / (1.0 + np.exp(-score))
        labels[name] = (prob >= np.median(prob)).astype(np.int64).reshape(-1)

    if entanglement > 0:
        # Drawn after everything above, so the latents and labels do not move with the dial.
        t1 = t1 @ _dropping_projection(rng, x_dim1, entanglement)
        t2 = t2 @ _dropping_projection(rng, x_dim2, entanglement)
        x1 = np.concatenate([z1, zs], axis=1) @ t1
        x2 = np.concatenate([z2, zs], axis=1) @ t2

    return PairedData(
        x1=x1.astype(np.float32),
        x2=x2.astype(np.float32),
        labels=labels,
        latents={"z1": z1.astype(np.float32), "zs": zs.astype(np.float32),
                 "z2": z2.astype(np.float32)},
        mixing={"t1": t1, "t2": t2},
    )


def _require_generator(data: PairedData, what: str) -> None:
    """Refuse data without the synthetic generator's latents and mixing matrices."""
    missing = [k for k in ("z1", "zs", "z2") if k not in data.latents] + [
        k for k in ("t1", "t2") if k not in data.mixing]
    if missing:
        raise DSSLError(f"{what} needs the synthetic generator's latents and mixing matrices, "
                        f"but the data lacks {', '.join(missing)}; make it with "
                        "make_synthetic(...) (or SyntheticStream.sample)")


def _dropping_projection(rng: np.random.RandomState, dim: int, entanglement: float
                         ) -> np.ndarray:
    """(dim, dim) orthogonal projector onto a random subspace of ``dim − round(e·dim)``
    dimensions (the complement of ``round(e·dim)`` Gaussian-random orthonormal directions)."""
    drop = int(round(float(entanglement) * dim))
    if drop == 0:
        return np.eye(dim)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, drop)))
    return np.eye(dim) - basis @ basis.T


def shared_recoverability(data: PairedData) -> dict[str, float]:
    """How well each modality of synthetic ``data`` reveals the latents, from the generator's
    own matrices (exact, no fitting): for modality i, ``shared_r2_i`` is the fraction of the
    variance of Zs explained by its best (linear = Bayes, everything is Gaussian) estimate from
    X_i, and ``private_in_shared_i`` the fraction of that estimate's variance that comes from
    Z_i (0 when Zs is separable from Z_i; with ``entanglement > 0`` the estimate of the shared
    latent from one modality must carry some of its private one, so the Minimum Necessary
    Information point is not attainable).

    Example:
        >>> r = shared_recoverability(make_synthetic(n_samples=10, seed=0))
        >>> round(r["shared_r2_1"], 3), round(r["private_in_shared_1"], 3)
        (1.0, 0.0)
    """
    _require_generator(data, "shared_recoverability")
    out: dict[str, float] = {}
    ds = data.latents["zs"].shape[1]
    for i in (1, 2):
        t = np.asarray(data.mixing[f"t{i}"], dtype=np.float64)
        dp = t.shape[0] - ds
        # The latents have covariance v·I, so Cov(X) = v·TᵀT and Cov(X, Zs) = v·T[dp:]ᵀ: the
        # regression of Zs on X is Zs_hat = X·W with W = (TᵀT)⁺·T[dp:]ᵀ.
        gram = t.T @ t
        cross = t[dp:]
        weights = np.linalg.pinv(gram, rcond=1e-10) @ cross.T  # (x, ds)
        estimate = t @ weights  # (latents, ds): Zs_hat = [Z_i, Zs] · estimate
        total = float((estimate**2).sum())
        out[f"shared_r2_{i}"] = float(np.trace(estimate[dp:]) / ds)
        out[f"private_in_shared_{i}"] = float((estimate[:dp] ** 2).sum() / total) if total else 0.0
    return out


def true_counterfactual(data: PairedData, specific_rows: object, shared_rows: object
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The true counterfactuals of the synthetic generator, row by row: what modality 1 of row
    ``specific_rows[k]`` would be with the shared latent of row ``shared_rows[k]``,
    ``[Z1_a, Zs_b]·T1``, and likewise ``[Z2_a, Zs_b]·T2`` for modality 2.

    Args:
        data: data from :func:`make_synthetic` (or a ``subset``/``split`` of it, or
            :meth:`SyntheticStream.sample`), with latents ``z1``, ``zs``, ``z2`` and
            ``mixing`` ``t1``, ``t2``.
        specific_rows, shared_rows: (k,) integer row indices into ``data`` (equal lengths):
            row ``a`` gives the private latents, row ``b`` the shared latent.

    Returns:
        ``(x1, x2)``, float32 arrays of shape (k, x_dim1) and (k, x_dim2). With
        ``shared_rows = specific_rows`` they are ``data.x1``/``data.x2`` at those rows (to
        float32 rounding: the latents are stored as float32, the generator mixed them in
        float64).

    Raises:
        DSSLError: data without the generator's latents or mixing matrices, or row indices
            that are not integers in range, or of different lengths.

    Example:
        >>> data = make_synthetic(n_samples=100, seed=0)
        >>> x1, x2 = true_counterfactual(data, [0, 1], [1, 0])
        >>> x1.shape, bool(abs(true_counterfactual(data, [3], [3])[0] - data.x1[3]).max() < 1e-4)
        ((2, 100), True)
    """
    _require_generator(data, "true_counterfactual")
    a, b = (_rows(rows, len(data), name) for rows, name in
            ((specific_rows, "specific_rows"), (shared_rows, "shared_rows")))
    if a.shape != b.shape:
        raise DSSLError(f"specific_rows has {a.shape[0]} rows but shared_rows has {b.shape[0]}; "
                        "give one shared row per specific row")
    zs = data.latents["zs"][b].astype(np.float64)
    out = []
    for private, mixing in (("z1", "t1"), ("z2", "t2")):
        z = np.concatenate([data.latents[private][a].astype(np.float64), zs], axis=1)
        out.append((z @ data.mixing[mixing]).astype(np.float32))
    return out[0], out[1]


def _rows(rows: object, n: int, name: str) -> np.ndarray:
    index = np.asarray(rows)
    if index.ndim != 1 or not (np.issubdtype(index.dtype, np.integer) or index.size == 0):
        raise DSSLError(f"{name} must be a 1-D array of integer row indices, got shape "
                        f"{index.shape} and dtype {index.dtype}")
    if index.size and (index.min() < -n or index.max() >= n):
        raise DSSLError(f"{name} has a row index outside the data's {n} rows")
    return index.astype(np.int64)


class SyntheticStream(torch.utils.data.IterableDataset):
    """The paper's generator drawn batch by batch, for data that never sits in memory.

    Fixed mixing matrices T1, T2 (drawn from ``seed``) and label networks (seeded 0, 1, 2, as
    in :func:`make_synthetic`); batch k of epoch e is drawn from ``(seed, e, k)`` (call
    :meth:`set_epoch`, as the estimator's loop does), so every batch is reproducible, memory
    holds one batch, and worker processes split the batches between them (worker w of W draws
    batches w, w + W, ...) without repeating any. Iterating yields ``(x1, x2)`` float32 tensor
    batches of ``batch_size`` rows: pass the stream itself to ``fit``, or a
    ``DataLoader(stream, batch_size=None, num_workers=...)``. The labels (noise-free) are
    thresholded at the medians of a 100 000-row calibration draw, so :meth:`sample` gives
    balanced labels for probes.

    Example:
        >>> stream = SyntheticStream(n_rows=1024, batch_size=256, seed=0)
        >>> len(stream), [tuple(x.shape) for x in next(iter(stream))]
        (4, [(256, 100), (256, 100)])
    """

    #: Items are whole batches (a DataLoader over it needs ``batch_size=None``).
    yields_batches = True

    def __init__(self, n_rows: int = 1_000_000, batch_size: int = 256, seed: int = 0,
                 shared_dim: int = 50, private_dim: int = 50, x_dim: int = 100,
                 variance: float = 0.5) -> None:
        for name, value in {"n_rows": n_rows, "batch_size": batch_size, "shared_dim": shared_dim,
                            "private_dim": private_dim, "x_dim": x_dim}.items():
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise DSSLError(f"{name} must be a positive integer, got {value!r}")
        self.n_rows, self.batch_size, self.seed = int(n_rows), int(batch_size), int(seed)
        self.dims = (int(private_dim), int(shared_dim), int(private_dim))
        self.scale = float(np.sqrt(variance))
        rng = np.random.RandomState(seed)
        self.t1 = torch.from_numpy(rng.uniform(-1, 1, (private_dim + shared_dim, x_dim))).float()
        self.t2 = torch.from_numpy(rng.uniform(-1, 1, (private_dim + shared_dim, x_dim))).float()
        self.epoch = 0
        self._nets = [label_mlp(d, 100, seed=k) for k, d in enumerate(self.dims)]
        calibration = self._latents(100_000, torch.Generator().manual_seed(seed + 10**6))
        self._thresholds = [float(self._score(k, z).median()) for k, z in enumerate(calibration)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n_rows // self.batch_size

    def _latents(self, n: int, g: torch.Generator) -> list[torch.Tensor]:
        return [torch.randn(n, d, generator=g) * self.scale for d in self.dims]

    def _score(self, k: int, z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._nets[k](z).reshape(-1)

    def _views(self, z1: torch.Tensor, zs: torch.Tensor, z2: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.cat([z1, zs], 1) @ self.t1, torch.cat([z2, zs], 1) @ self.t2

    def __iter__(self):  # noqa: ANN204 - a generator of batch tuples
        info = torch.utils.data.get_worker_info()
        first, stride = (info.id, info.num_workers) if info is not None else (0, 1)
        for k in range(first, len(self), stride):
            g = torch.Generator().manual_seed(
                int(np.random.SeedSequence([self.seed, self.epoch, k]).generate_state(1)[0]))
            yield self._views(*self._latents(self.batch_size, g))

    def sample(self, n: int, seed: int) -> PairedData:
        """``n`` rows (in memory) with labels ``y1``, ``yc``, ``y2`` and latents, drawn from
        ``seed`` (use seeds other than the stream's epochs for held-out data)."""
        z = self._latents(n, torch.Generator().manual_seed(seed))
        x1, x2 = self._views(*z)
        labels = {name: (self._score(k, z[k]) >= self._thresholds[k]).long().numpy()
                  for k, name in enumerate(LABEL_NAMES)}
        return PairedData(x1.numpy(), x2.numpy(), labels,
                          {"z1": z[0].numpy(), "zs": z[1].numpy(), "z2": z[2].numpy()},
                          {"t1": self.t1.numpy().astype(np.float64),
                           "t2": self.t2.numpy().astype(np.float64)})
