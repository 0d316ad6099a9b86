"""The generator's MNI dial (``make_synthetic(entanglement=...)``): at 0 the paper's data,
unchanged; above 0 the shared latent can no longer be separated exactly from the private one,
by the exact measure and by what a fitted regression can recover."""

from __future__ import annotations

import numpy as np
import pytest

from disentangled_ssl import DSSLError, make_synthetic
from disentangled_ssl.cli import main
from disentangled_ssl.data import shared_recoverability, true_counterfactual
from disentangled_ssl.data.io import read_paired


def _regression_r2(x: np.ndarray, z: np.ndarray) -> float:
    """R² of the least-squares regression of every column of z on x (fitted on the rows)."""
    x, z = x.astype(np.float64), z.astype(np.float64)
    coef, *_ = np.linalg.lstsq(x, z, rcond=None)
    return float(1 - ((x @ coef - z) ** 2).sum() / ((z - z.mean(0)) ** 2).sum())


def test_entanglement_zero_is_the_papers_data_and_the_dial_moves_only_the_observations():
    plain = make_synthetic(n_samples=600, seed=3)
    zero = make_synthetic(n_samples=600, seed=3, entanglement=0.0)
    tangled = make_synthetic(n_samples=600, seed=3, entanglement=0.4)
    assert np.array_equal(plain.x1, zero.x1) and np.array_equal(plain.x2, zero.x2)
    for name in plain.labels:
        assert np.array_equal(plain.labels[name], tangled.labels[name])
    for name in plain.latents:
        assert np.array_equal(plain.latents[name], tangled.latents[name])
    assert not np.allclose(plain.x1, tangled.x1)
    assert tangled.x1.shape == plain.x1.shape
    # x_i = [Z_i, Zs]·mixing["t_i"] holds at every setting, so the true counterfactual of a
    # row with itself is the row.
    x1, x2 = true_counterfactual(tangled, np.arange(50), np.arange(50))
    np.testing.assert_allclose(x1, tangled.x1[:50], atol=1e-3)
    np.testing.assert_allclose(x2, tangled.x2[:50], atol=1e-3)


def test_entanglement_makes_the_shared_latent_unrecoverable_from_one_modality():
    previous = None
    for e in (0.0, 0.3, 0.6):
        data = make_synthetic(n_samples=8000, seed=0, entanglement=e)
        exact = shared_recoverability(data)
        fitted = _regression_r2(data.x1, data.latents["zs"])
        # The exact measure agrees with what a regression fitted on the rows recovers.
        assert abs(exact["shared_r2_1"] - fitted) < 0.02, (e, exact, fitted)
        if e == 0.0:
            assert exact["shared_r2_1"] > 0.999 and exact["private_in_shared_1"] < 1e-6
        else:
            # Roughly a fraction e of Zs is lost, and its estimate carries Z1.
            assert abs(exact["shared_r2_1"] - (1 - e)) < 0.1, exact
            assert exact["private_in_shared_1"] > 0.1 and exact["private_in_shared_2"] > 0.1
            assert exact["shared_r2_1"] < previous - 0.2
        previous = exact["shared_r2_1"]


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, float("nan"), "0.2", True])
def test_bad_entanglement_is_refused_by_name(value):
    with pytest.raises(DSSLError, match=r"entanglement must be a number in \[0, 1\)"):
        make_synthetic(n_samples=100, entanglement=value)


def test_shared_recoverability_needs_the_generators_matrices():
    data = make_synthetic(n_samples=100, seed=0)
    data.mixing.clear()
    with pytest.raises(DSSLError, match="lacks t1, t2; make it with make_synthetic"):
        shared_recoverability(data)


def test_cli_generate_passes_the_dial(tmp_path):
    assert main(["generate", "--out", str(tmp_path / "d.npz"), "--n-samples", "300",
                 "--entanglement", "0.5"]) == 0
    written = read_paired(tmp_path / "d.npz")
    np.testing.assert_array_equal(written.x1,
                                  make_synthetic(n_samples=300, entanglement=0.5).x1)
