from __future__ import annotations

import numpy as np
import pytest
import torch

from disentangled_ssl import DSSLError, make_synthetic
from disentangled_ssl.data import augment_vectors


def test_generator_shapes_and_balance():
    data = make_synthetic(n_samples=2000, seed=0)
    assert data.x1.shape == (2000, 100) and data.x2.shape == (2000, 100)
    assert data.x1.dtype == np.float32
    assert set(data.labels) == {"y1", "yc", "y2"}
    for y in data.labels.values():
        assert y.shape == (2000,)
        assert set(np.unique(y)) == {0, 1}
        assert abs(y.mean() - 0.5) <= 0.001  # median threshold: balanced
    assert data.latents["zs"].shape == (2000, 50)
    # latent variance 0.5
    assert abs(float(data.latents["z1"].var()) - 0.5) < 0.02


def test_generator_structure_x_is_linear_in_latents():
    data = make_synthetic(n_samples=500, shared_dim=5, private_dim1=4, private_dim2=3,
                          x_dim1=20, x_dim2=30, seed=3)
    z = np.concatenate([data.latents["z1"], data.latents["zs"]], axis=1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(z, data.x1.astype(np.float64), rcond=None)
    assert np.allclose(z @ coef, data.x1, atol=1e-3)
    assert np.all(np.abs(coef) <= 1.0 + 1e-3)  # T ~ U(-1, 1)
    assert data.x2.shape == (500, 30)
    # X2 does not depend on Z1: regressing X2 on Z1 alone explains ~nothing
    z1 = data.latents["z1"].astype(np.float64)
    coef1, res, *_ = np.linalg.lstsq(z1, data.x2.astype(np.float64), rcond=None)
    assert res.sum() / (data.x2.astype(np.float64) ** 2).sum() > 0.95


def test_generator_deterministic_and_seeded():
    a, b = make_synthetic(300, seed=1), make_synthetic(300, seed=1)
    c = make_synthetic(300, seed=2)
    assert np.array_equal(a.x1, b.x1) and np.array_equal(a.labels["yc"], b.labels["yc"])
    assert not np.array_equal(a.x1, c.x1)


def test_generator_does_not_touch_global_torch_rng():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    make_synthetic(100, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_labels_depend_on_their_latent():
    data = make_synthetic(n_samples=4000, seed=0)
    from disentangled_ssl import linear_probe

    tr, te = data.split(0.25, seed=0)
    acc = linear_probe(tr.latents["zs"], tr.labels, te.latents["zs"], te.labels)
    assert acc["yc"] > 0.75  # Zs predicts its own label ...
    assert abs(acc["y1"] - 0.5) < 0.05 and abs(acc["y2"] - 0.5) < 0.05  # ... not the others


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_samples": 0}, "n_samples must be a positive integer, got 0"),
        ({"shared_dim": 2.5}, "shared_dim must be a positive integer, got 2.5"),
        ({"variance": -1.0}, "variance must be positive and finite, got -1.0"),
    ],
)
def test_generator_bad_arguments(kwargs, message):
    with pytest.raises(DSSLError, match=message):
        make_synthetic(**kwargs)


def test_split_is_a_partition():
    data = make_synthetic(100, seed=0)
    tr, te = data.split(0.2, seed=0)
    assert len(tr) == 80 and len(te) == 20
    rows = {r.tobytes() for r in np.concatenate([tr.x1, te.x1])}
    assert len(rows) == 100


def test_augment_modes_vectorised():
    torch.manual_seed(0)
    x = torch.ones(3000, 50)
    out = augment_vectors(x, noise_std=0.01, drop_fraction=0.1)
    zeros = (out == 0).sum(1)
    dropped = zeros == 5  # exactly a tenth of the features zeroed
    identical = (out == 1).all(1)
    noisy = ~dropped & ~identical
    assert set(zeros.unique().tolist()) <= {0, 5}
    for mask in (dropped, identical, noisy):
        assert abs(mask.float().mean().item() - 1 / 3) < 0.04
    assert abs((out[noisy] - 1).std().item() - 0.01) < 0.001
    assert torch.equal(x, torch.ones(3000, 50))  # input not modified


def test_augment_dropped_positions_are_random():
    torch.manual_seed(0)
    out = augment_vectors(torch.ones(3000, 20), noise_std=0.0, drop_fraction=0.1)
    freq = (out == 0).float().mean(0)
    assert freq.min() > 0.02 and freq.max() < 0.05  # ~ (1/3)·(2/20) per feature
