from __future__ import annotations

import numpy as np
import pytest
import torch

from disentangled_ssl import make_synthetic


@pytest.fixture(scope="session")
def small_data():
    """1024 rows of the paper's generator with a smaller latent/observed size."""
    return make_synthetic(n_samples=1024, shared_dim=8, private_dim1=8, private_dim2=8,
                          x_dim1=16, x_dim2=16, seed=0)


@pytest.fixture()
def rng():
    return np.random.default_rng(0)


@pytest.fixture()
def x86_cpu(monkeypatch):
    """Make the training loop see an x86 CPU; call the result with whether it has bf16
    instructions (AVX512-BF16; AMX is reported absent)."""
    from disentangled_ssl.training import loop

    def fake(bf16_instructions: bool) -> None:
        monkeypatch.setattr(loop.platform, "machine", lambda: "x86_64")
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16_instructions)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)

    return fake


@pytest.fixture(scope="module")
def one_thread_module():
    """:func:`one_thread` for a whole module, module-scoped fixtures that train included
    (``pytestmark = pytest.mark.usefixtures("one_thread_module")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def one_thread():
    """One intra-op thread for the test (restored after it): small Transformers and CNNs are
    as fast on 2 cores with one thread, and do not collapse when another process holds a core
    (two OpenMP threads were measured 10-100x slower then)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
