from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from disentangled_ssl import DSSLError
from disentangled_ssl.losses import (
    InfoNCELoss,
    SharedLoss,
    SpecificLoss,
    alignment,
    info_nce,
    orthogonality,
)


def test_info_nce_hand_computed_two_by_two():
    # a = b = identity rows: logits [[1/t, 0], [0, 1/t]] in both directions.
    t = 0.5
    a = torch.eye(2)
    expected = -math.log(math.exp(2.0) / (math.exp(2.0) + 1.0))
    assert info_nce(a, a, t).item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_hand_computed_asymmetric():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    t = 1.0
    # a->b: logits [[1,1],[0,0]] -> row0: -log(1/2), row1: -log(e^0/(1+1)) = log 2
    # b->a: logits [[1,0],[1,0]] -> row0: -log(e/(e+1)), row1: -log(1/(e+1))
    ab = math.log(2)
    ba = 0.5 * (-math.log(math.e / (math.e + 1)) + math.log(math.e + 1))
    assert info_nce(a, b, t).item() == pytest.approx(0.5 * (ab + ba), rel=1e-6)


def test_info_nce_invariant_to_joint_permutation():
    torch.manual_seed(0)
    a, b = F.normalize(torch.randn(16, 8), dim=-1), F.normalize(torch.randn(16, 8), dim=-1)
    perm = torch.randperm(16)
    assert info_nce(a[perm], b[perm]).item() == pytest.approx(info_nce(a, b).item(), rel=1e-5)
    # but not to permuting one side only
    assert info_nce(a[perm], b).item() != pytest.approx(info_nce(a, b).item(), rel=1e-3)


def test_infonce_module_normalises_and_validates():
    torch.manual_seed(0)
    a = torch.randn(8, 4)
    assert InfoNCELoss()(a * 3, a).item() == pytest.approx(InfoNCELoss()(a, a).item(), rel=1e-5)
    with pytest.raises(DSSLError, match="temperature must be positive and finite, got 0"):
        InfoNCELoss(temperature=0)


def test_alignment_values():
    e = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert alignment(e, e).item() == pytest.approx(-1.0)
    assert alignment(e, -e).item() == pytest.approx(1.0)
    assert alignment(e, torch.tensor([[0.0, 1.0], [1.0, 0.0]])).item() == pytest.approx(0.0)


def test_orthogonality_hand_computed_and_zero_for_orthogonal():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    c = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # normalised rows unchanged; s^T c = [[1,0],[1,0]] -> Frobenius sqrt(2)
    assert orthogonality(s, c).item() == pytest.approx(math.sqrt(2))
    # over the batch, every specific column is orthogonal to every shared column
    spec = torch.tensor([[2.0, 0.0], [3.0, 0.0]])
    shared = torch.tensor([[1.0, 1.0], [-4.0, -4.0]])
    assert orthogonality(spec, shared).item() == pytest.approx(0.0, abs=1e-7)


def test_shared_loss_combines_terms():
    torch.manual_seed(0)
    z1, z2 = F.normalize(torch.randn(8, 5), dim=-1), F.normalize(torch.randn(8, 5), dim=-1)
    out = SharedLoss(beta=2.5, temperature=0.07)(z1, z2, z1 * 4, z2)
    assert out["infonce"].item() == pytest.approx(info_nce(z1, z2, 0.07).item())
    assert out["alignment"].item() == pytest.approx(alignment(z1, z2).item(), rel=1e-6)
    assert out["loss"].item() == pytest.approx(
        out["infonce"].item() + 2.5 * out["alignment"].item(), rel=1e-6)


def test_specific_loss_hand_assembled():
    torch.manual_seed(0)
    s = [(torch.randn(6, 3), torch.randn(6, 3)) for _ in range(2)]
    c = [(torch.randn(6, 4), torch.randn(6, 4)) for _ in range(2)]
    out = SpecificLoss(lam=0.3, temperature=0.1)(s, c)
    nce = 0.0
    ortho = 0.0
    for i, j in ((0, 1), (1, 0)):
        ja = F.normalize(torch.cat([s[i][0], c[j][0]], 1), dim=-1)
        jb = F.normalize(torch.cat([s[i][1], c[j][1]], 1), dim=-1)
        nce += info_nce(ja, jb, 0.1).item()
        ortho += 0.5 * (orthogonality(s[i][0], c[i][0]) + orthogonality(s[i][1], c[i][1])).item()
    assert out["infonce"].item() == pytest.approx(nce, rel=1e-5)
    assert out["orthogonality"].item() == pytest.approx(ortho, rel=1e-5)
    assert out["loss"].item() == pytest.approx(nce + 0.3 * ortho, rel=1e-5)


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_dials_validated(value):
    with pytest.raises(DSSLError, match="beta must be"):
        SharedLoss(beta=value)
    with pytest.raises(DSSLError, match="lam must be"):
        SpecificLoss(lam=value)


def _composed_specific(s, c, temperature, lam):
    """SpecificLoss written with autograd from the documented equations (two modalities)."""
    total = 0.0
    for i, j in ((0, 1), (1, 0)):
        ja = F.normalize(torch.cat([s[i][0], c[j][0]], -1), dim=-1)
        jb = F.normalize(torch.cat([s[i][1], c[j][1]], -1), dim=-1)
        total = total + info_nce(ja, jb, temperature) + lam * 0.5 * (
            orthogonality(s[i][0], c[i][0]) + orthogonality(s[i][1], c[i][1]))
    return total


@pytest.mark.parametrize("temperature", [0.07, 0.01])  # exp-shift path and log-sum-exp path
def test_fused_specific_loss_matches_autograd_values_and_gradients(temperature):
    torch.manual_seed(1)
    s = [tuple(torch.randn(16, 5, dtype=torch.float64, requires_grad=True) for _ in range(2))
         for _ in range(2)]
    c = [tuple(torch.randn(16, 7, dtype=torch.float64) for _ in range(2)) for _ in range(2)]
    with torch.no_grad():
        s[0][0][3].zero_()  # a clamped norm (F.normalize's eps branch) on one row
    out = SpecificLoss(lam=0.3, temperature=temperature)(s, c)
    leaves = [t for pair in s for t in pair]
    fused = torch.autograd.grad(out["loss"], leaves)
    reference = _composed_specific(s, c, temperature, 0.3)
    composed = torch.autograd.grad(reference, leaves)
    assert out["loss"].item() == pytest.approx(reference.item(), rel=1e-12)
    for got, want in zip(fused, composed):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert fused[0][3].abs().max() > 0  # the clamped row still gets its x / eps gradient


def test_fused_specific_terms_broadcast_over_ensemble_members():
    from disentangled_ssl.losses.fused import specific_terms

    torch.manual_seed(2)
    spec = torch.randn(2, 3, 2, 8, 4, dtype=torch.float64)  # (M, K, views, B, Ds)
    codes = torch.randn(2, 2, 8, 6, dtype=torch.float64)  # (M, views, B, Dc)
    nce, ortho = specific_terms(spec[:, :, 0], spec[:, :, 1], codes[:, None, 0],
                                codes[:, None, 1], codes.flip(0)[:, None, 0],
                                codes.flip(0)[:, None, 1], 0.1)
    assert nce.shape == ortho.shape == (2, 3)
    for m in range(2):
        for k in range(3):
            one_nce, one_ortho = specific_terms(spec[m, k, 0], spec[m, k, 1], codes[m, 0],
                                                codes[m, 1], codes[1 - m, 0], codes[1 - m, 1],
                                                0.1)
            assert nce[m, k].item() == pytest.approx(one_nce.item(), rel=1e-12)
            assert ortho[m, k].item() == pytest.approx(one_ortho.item(), rel=1e-12)


def test_specific_loss_trains_shared_codes_that_require_grad():
    # The fused node differentiates the specific codes only; shared codes that require
    # gradients take the autograd path and get their gradient.
    torch.manual_seed(3)
    s = [tuple(torch.randn(6, 3, requires_grad=True) for _ in range(2)) for _ in range(2)]
    c = [tuple(torch.randn(6, 4, requires_grad=True) for _ in range(2)) for _ in range(2)]
    out = SpecificLoss(lam=0.5, temperature=0.1)(s, c)
    grad = torch.autograd.grad(out["loss"], c[1][0])[0]
    assert grad.abs().max() > 0
    assert out["loss"].item() == pytest.approx(_composed_specific(s, c, 0.1, 0.5).item(),
                                               rel=1e-6)


@pytest.mark.parametrize("scale", [1.0, 30.0])  # bounded logits (one exponential) / large ones
def test_fused_info_nce_matches_cross_entropy_values_and_gradients(scale):
    torch.manual_seed(4)
    a = (scale * F.normalize(torch.randn(3, 12, 6, dtype=torch.float64), dim=-1)).requires_grad_()
    b = (scale * F.normalize(torch.randn(3, 12, 6, dtype=torch.float64), dim=-1)).requires_grad_()
    got = info_nce(a[1], b[1], 0.07)
    logits = a[1] @ b[1].T / 0.07
    target = torch.arange(12)
    want = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    assert math.isfinite(want.item())
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    for g, w in zip(torch.autograd.grad(got, (a, b)), torch.autograd.grad(want, (a, b))):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
    # leading dimensions: one value per index
    from disentangled_ssl.losses.fused import info_nce as batched

    per_member = batched(a, b, 0.07)
    assert per_member.shape == (3,)
    assert per_member[1].item() == pytest.approx(got.item(), rel=1e-12)
