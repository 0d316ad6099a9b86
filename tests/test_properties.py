"""Property-based tests (hypothesis) for the losses and the vMF distribution.

Examples are kept few and small (``max_examples`` ≤ 40, batches ≤ 16 rows) so the file runs in
seconds; ``derandomize=True`` makes every run draw the same examples (no flaky CI).
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.linalg import hadamard

from disentangled_ssl.losses import SharedLoss, SpecificLoss
from disentangled_ssl.losses.functional import alignment, info_nce, orthogonality, paired_cosine
from disentangled_ssl.nn.vmf import VonMisesFisher

FAST = settings(max_examples=40, deadline=None, derandomize=True)

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False,
                   width=32)


@st.composite
def paired_batches(draw, min_rows: int = 2, max_rows: int = 12, max_dim: int = 6):
    """Two (B, D) float32 tensors of any finite values (zeros, repeats and ±1e3 included)."""
    rows = draw(st.integers(min_rows, max_rows))
    dim = draw(st.integers(1, max_dim))
    a = draw(arrays(np.float32, (rows, dim), elements=finite))
    b = draw(arrays(np.float32, (rows, dim), elements=finite))
    return torch.from_numpy(a), torch.from_numpy(b)


@FAST
@given(paired_batches(), st.floats(0.01, 10.0))
def test_every_loss_is_finite_for_finite_input(batch, temperature):
    a, b = batch
    values = {
        "info_nce": info_nce(a, b, temperature),
        "info_nce_normalised": info_nce(torch.nn.functional.normalize(a, dim=-1),
                                        torch.nn.functional.normalize(b, dim=-1), temperature),
        "alignment": alignment(a, b),
        "orthogonality": orthogonality(a, b),
        "paired_cosine": paired_cosine(a, b),
    }
    values.update({f"shared_{k}": v for k, v in
                   SharedLoss(beta=2.0, temperature=temperature)(a, b, a, b).items()})
    values.update({f"specific_{k}": v for k, v in
                   SpecificLoss(lam=3.0, temperature=temperature)([(a, b), (b, a)],
                                                                  [(b, a), (a, b)]).items()})
    bad = {k: float(v) for k, v in values.items() if not bool(torch.isfinite(v).all())}
    assert bad == {}
    # Bounded terms stay in their ranges.
    assert -1.0 - 1e-5 <= float(values["alignment"]) <= 1.0 + 1e-5
    assert float(values["orthogonality"]) >= 0.0


@FAST
@given(paired_batches(min_rows=2, max_rows=16), st.randoms(use_true_random=False),
       st.floats(0.05, 2.0))
def test_info_nce_is_invariant_to_a_joint_permutation_of_the_batch(batch, rnd, temperature):
    a, b = (x.double() for x in batch)
    order = list(range(a.shape[0]))
    rnd.shuffle(order)
    perm = torch.tensor(order)
    before = info_nce(a, b, temperature)
    after = info_nce(a[perm], b[perm], temperature)
    torch.testing.assert_close(after, before, rtol=1e-9, atol=1e-9)


@FAST
@given(
    log2_rows=st.integers(2, 4),
    data=st.data(),
)
def test_orthogonality_is_zero_for_batch_orthogonal_codes(log2_rows, data):
    """Columns of a Hadamard matrix are orthogonal over the batch and all its rows have the
    same norm, so any positive per-row rescaling (undone by the row normalisation) and any
    rotation of either code's feature space keeps ``normalise(S)ᵀ normalise(C) = 0``."""
    rows = 2**log2_rows
    h = torch.from_numpy(hadamard(rows)).double()
    columns = data.draw(st.permutations(range(rows)))
    n_spec = data.draw(st.integers(1, rows - 1))
    n_shared = data.draw(st.integers(1, rows - n_spec))
    spec = h[:, columns[:n_spec]]
    shared = h[:, columns[n_spec : n_spec + n_shared]]
    scale = st.floats(0.01, 100.0)
    spec = spec * torch.tensor(data.draw(st.lists(scale, min_size=rows, max_size=rows)))[:, None]
    shared = shared * torch.tensor(data.draw(st.lists(scale, min_size=rows,
                                                       max_size=rows)))[:, None]
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    rotate_spec, _ = torch.linalg.qr(torch.randn(n_spec, n_spec, generator=gen,
                                                 dtype=torch.float64))
    rotate_shared, _ = torch.linalg.qr(torch.randn(n_shared, n_shared, generator=gen,
                                                   dtype=torch.float64))
    assert float(orthogonality(spec @ rotate_spec, shared @ rotate_shared)) < 1e-10
    # ... and not zero when the codes share directions (the property can fail): with unit
    # rows, trace(ŜᵀŜ) = rows, so ‖ŜᵀŜ‖_F >= rows / sqrt(n_spec) >= 1.
    assert float(orthogonality(spec, spec)) >= rows / n_spec**0.5 - 1e-9


@FAST
@given(
    m=st.integers(2, 64),
    rows=st.integers(1, 16),
    log10_kappa=st.floats(-3.0, 5.0),
    samples=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_vmf_samples_lie_on_the_unit_sphere(m, rows, log10_kappa, samples, seed, dtype):
    gen = torch.Generator().manual_seed(seed)
    loc = torch.nn.functional.normalize(torch.randn(rows, m, generator=gen, dtype=dtype), dim=-1)
    torch.manual_seed(seed)
    z = VonMisesFisher(loc, 10.0**log10_kappa).rsample((samples,))
    assert z.shape == (samples, rows, m) and z.dtype == dtype
    assert bool(torch.isfinite(z).all())
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(samples, rows, dtype=dtype),
                               rtol=0, atol=tol)
