from __future__ import annotations

import numpy as np
import pytest

from disentangled_ssl import make_synthetic


@pytest.fixture(scope="session")
def small_data():
    """1024 rows of the paper's generator with a smaller latent/observed size."""
    return make_synthetic(n_samples=1024, shared_dim=8, private_dim1=8, private_dim2=8,
                          x_dim1=16, x_dim2=16, seed=0)


@pytest.fixture()
def rng():
    return np.random.default_rng(0)
