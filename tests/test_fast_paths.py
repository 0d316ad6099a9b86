"""The hot path's fused pieces compute what the plain autograd formulation computes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from disentangled_ssl.data.augment import VectorAugment, augment_vectors
from disentangled_ssl.methods.base import augment_each, posterior_samples, two_views
from disentangled_ssl.nn.vmf import (
    VonMisesFisher,
    normalized_vmf_sample,
    reflect_to_mean,
    vmf_noise,
)
from disentangled_ssl.training import Stage, TrainConfig, train_stage


def _plain_sample(e: torch.Tensor, w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The unfused chain, through autograd."""
    return F.normalize(reflect_to_mean(F.normalize(e, dim=-1), w, v), dim=-1)


@pytest.mark.parametrize("shape", [(7, 5), (3, 7, 5)])
def test_fused_vmf_sample_gradients_are_exact(shape):
    torch.manual_seed(0)
    e = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    w = torch.rand(7, dtype=torch.float64, requires_grad=True)
    v = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(normalized_vmf_sample, (e, w, v))
    with torch.no_grad():
        e[..., 0, :] = 0.0  # a zero row takes F.normalize's clamped branch
    weights = torch.randn(*shape, dtype=torch.float64)
    fused = torch.autograd.grad((normalized_vmf_sample(e, w, v) * weights).sum(), (e, w, v))
    plain = torch.autograd.grad((_plain_sample(e, w, v) * weights).sum(), (e, w, v))
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_fused_vmf_sample_forward_is_bit_identical_and_noise_is_rsamples():
    torch.manual_seed(1)
    e = torch.randn(256, 100)
    state = torch.get_rng_state()
    w, v = vmf_noise(1000.0, 100, 256)
    assert torch.equal(normalized_vmf_sample(e, w, v), _plain_sample(e, w, v))
    torch.set_rng_state(state)
    loc = F.normalize(e, dim=-1)
    assert torch.equal(VonMisesFisher(loc, 1000.0, validate_args=False).rsample(),
                       reflect_to_mean(loc, w, v))
    assert torch.allclose(w, torch.linalg.vecdot(reflect_to_mean(loc, w, v), loc), atol=1e-5)
    assert float((1 - w).mean()) == pytest.approx(99 / 2000, rel=0.1)  # E[1-w] ≈ (m-1)/2κ


def test_posterior_samples_under_bf16_autocast_stay_float32_and_differentiable():
    e = torch.randn(64, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = posterior_samples(e.to(torch.bfloat16), 100.0)
    assert z.dtype == torch.float32
    assert torch.allclose(z.norm(dim=-1), torch.ones(64), atol=1e-5)
    z.sum().backward()
    assert e.grad is not None and torch.isfinite(e.grad).all()


def test_augmenting_modalities_together_keeps_rows_independent():
    torch.manual_seed(0)
    augment = VectorAugment(noise_std=0.01, drop_fraction=0.1)
    x = torch.ones(3000, 20)
    a, b = augment_each(augment, [x, x.clone()])
    views = two_views(augment, x)
    for first, second in ((a, b), (views[:3000], views[3000:])):
        same = (first == second).all(1).float().mean().item()
        # Both rows untouched (1/3 · 1/3) is the only way two independent draws coincide.
        assert abs(same - 1 / 9) < 0.03
        for view in (first, second):
            zeros = (view == 0).sum(1)
            assert set(zeros.unique().tolist()) <= {0, 2}
            assert abs((zeros == 2).float().mean().item() - 1 / 3) < 0.04


def test_augment_uses_a_given_generator_reproducibly():
    x = torch.randn(64, 30)
    one = augment_vectors(x, generator=torch.Generator().manual_seed(5))
    two = augment_vectors(x, generator=torch.Generator().manual_seed(5))
    other = augment_vectors(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(one, two) and not torch.equal(one, other)


class _Regression(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(6, 3)

    def forward(self, x, y):
        err = ((self.net(x) - y) ** 2).mean()
        return {"loss": err}


def test_fused_adam_matches_the_default_adam():
    g = torch.Generator().manual_seed(0)
    data = [torch.randn(128, 6, generator=g), torch.randn(128, 3, generator=g)]
    weights = []
    for fused in (True, False):
        torch.manual_seed(0)
        obj = _Regression()
        config = TrainConfig(batch_size=32, lr=1e-2, progress=False, fused_optimizer=fused)
        history = train_stage(Stage("fit", obj, trainable=[obj.net], epochs=3), data, config)
        weights.append(obj.net.weight.detach().clone())
        assert history[-1]["loss"] < history[0]["loss"]
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fused_losses_run_half_precision_inputs_in_float32(dtype):
    """Raw half-precision inputs (outside autocast) would underflow the kernels' exp shifts;
    they are upcast, so the value is the float32 value of the rounded inputs, and gradients
    come back in the inputs' dtype."""
    from disentangled_ssl.losses.fused import info_nce, specific_terms

    torch.manual_seed(0)
    a = F.normalize(torch.randn(32, 8), dim=-1).to(dtype).requires_grad_()
    b = F.normalize(torch.randn(32, 8), dim=-1).to(dtype)
    value = info_nce(a, b, 0.07)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    torch.testing.assert_close(value, info_nce(a.detach().float(), b.float(), 0.07))
    value.backward()
    assert a.grad.dtype == dtype and torch.isfinite(a.grad.float()).all()
    codes = [torch.randn(32, 6).to(dtype) for _ in range(6)]
    nce, ortho = specific_terms(*codes, 0.07)
    reference = specific_terms(*[c.float() for c in codes], 0.07)
    torch.testing.assert_close(nce, reference[0])
    torch.testing.assert_close(ortho, reference[1])
