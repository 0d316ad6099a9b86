"""Tests for the von Mises–Fisher distribution and its Bessel helpers (disentangled_ssl.nn.vmf)."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

from disentangled_ssl.nn import vmf
from disentangled_ssl.nn.vmf import (
    VonMisesFisher,
    bessel_iv_ratio,
    log_bessel_iv,
    mean_resultant_length,
    vmf_log_normalizer,
)

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The tensors here are small; with several intra-op threads on an oversubscribed 2-core box
    # (parallel CI jobs) OpenMP barriers can stall each op by milliseconds.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _unit(m: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(m, generator=g, dtype=dtype), dim=-1)


def _scipy_vmf(loc: torch.Tensor, kappa: float):
    return scipy.stats.vonmises_fisher(loc.double().numpy(), kappa)


# ---------------------------------------------------------------------------------------------
# Bessel functions
# ---------------------------------------------------------------------------------------------

ORDERS = [0.0, 0.5, 1.0, 2.5, 10.0, 14.5, 15.0, 49.0, 99.0, 200.0, 499.0, 500.0]
ARGS = np.logspace(-3, 4, 36)


def test_log_bessel_iv_matches_scipy_on_grid():
    v_grid, x_grid = np.meshgrid(ORDERS, ARGS, indexing="ij")
    with np.errstate(divide="ignore"):
        scaled = scipy.special.ive(v_grid, x_grid)
    # Only where ive is a normal float64 (below that scipy's own log is inaccurate or -inf).
    ok = scaled >= np.finfo(np.float64).tiny
    assert ok.sum() > 200
    ref = np.log(scaled[ok]) + x_grid[ok]
    got = np.concatenate(
        [log_bessel_iv(v, torch.tensor(ARGS, dtype=F64)).numpy() for v in ORDERS]
    ).reshape(v_grid.shape)
    np.testing.assert_allclose(got[ok], ref, rtol=0, atol=1e-6)
    assert np.isfinite(got).all()  # including where scipy underflows


def test_log_bessel_iv_underflow_region_matches_mpmath():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 30
    cases = [(499.0, 1e-3), (499.0, 1.0), (200.0, 0.1), (100.0, 1e-3), (20.0, 1e-14), (3.0, 1e-200)]
    for v, x in cases:
        assert scipy.special.ive(v, x) < 1e-290  # really the fallback path
        ref = float(mpmath.log(mpmath.besseli(v, x)))
        got = log_bessel_iv(v, torch.tensor([x], dtype=F64)).item()
        assert got == pytest.approx(ref, abs=1e-6), (v, x)


def test_log_bessel_iv_finite_at_extremes():
    x = torch.tensor([1e-3, 1e4], dtype=F64, requires_grad=True)
    out = log_bessel_iv(499.0, x)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.isfinite(log_bessel_iv(0.0, x.detach())).all()
    # float32 input gives float32 output of the same shape.
    x32 = torch.tensor([[1e-3, 1.0], [10.0, 1e4]])
    out32 = log_bessel_iv(499.0, x32)
    assert out32.dtype == torch.float32 and out32.shape == (2, 2)
    assert torch.isfinite(out32).all()


@pytest.mark.parametrize("v", [0.0, 0.5, 4.0, 49.0, 499.0])
def test_log_bessel_iv_gradient_matches_finite_differences(v):
    x = torch.tensor([1e-3, 0.3, 2.0, 40.0, 700.0, 9000.0], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: log_bessel_iv(v, t), (x,), eps=1e-7, atol=1e-6)
    assert torch.autograd.gradgradcheck(lambda t: log_bessel_iv(v, t), (x,), eps=1e-7, atol=1e-5)
    # d/dx log I_v(x) = I_{v+1}/I_v + v/x, checked against scipy where ive is well scaled.
    (grad,) = torch.autograd.grad(log_bessel_iv(v, x).sum(), x)
    xs = x.detach().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = scipy.special.ive(v + 1, xs) / scipy.special.ive(v, xs) + v / xs
    ok = np.isfinite(ref) & (scipy.special.ive(v + 1, xs) > 1e-280)
    np.testing.assert_allclose(grad.numpy()[ok], ref[ok], rtol=1e-9)


def test_bessel_iv_ratio_and_mean_resultant_length():
    x = torch.tensor([1e-3, 0.1, 1.0, 10.0, 100.0, 1e4], dtype=F64, requires_grad=True)
    for v in [0.0, 0.5, 49.0, 499.0]:
        r = bessel_iv_ratio(v, x)
        assert ((r > 0) & (r < 1)).all()
        assert torch.autograd.gradcheck(lambda t, v=v: bessel_iv_ratio(v, t), (x,), eps=1e-7)
    # Small-x limit I_{v+1}/I_v ~ x / (2v + 2); large-x limit ~ 1 - (2v + 1) / (2x).
    assert bessel_iv_ratio(499.0, torch.tensor(1e-3, dtype=F64)).item() == pytest.approx(1e-6)
    a = mean_resultant_length(3, torch.tensor([1e-3, 1.0, 1e4], dtype=F64))
    coth = lambda k: 1.0 / math.tanh(k)  # noqa: E731 - A_3(k) = coth(k) - 1/k
    expected = [coth(k) - 1.0 / k for k in (1e-3, 1.0, 1e4)]
    np.testing.assert_allclose(a.detach().numpy(), expected, rtol=1e-6)
    assert isinstance(mean_resultant_length(10, 5.0), torch.Tensor)


def test_bessel_order_validation():
    with pytest.raises(ValueError, match="order"):
        log_bessel_iv(-1.0, torch.ones(1))


# ---------------------------------------------------------------------------------------------
# log_prob / entropy vs scipy
# ---------------------------------------------------------------------------------------------

DIMS = [3, 10, 100, 1000]
KAPPAS = [0.1, 1.0, 10.0, 1000.0, 10000.0]


@pytest.mark.parametrize("m", DIMS)
@pytest.mark.parametrize("kappa", KAPPAS)
def test_log_prob_matches_scipy(m, kappa):
    loc = _unit(m, seed=m)
    ref_dist = _scipy_vmf(loc, kappa)
    with np.errstate(divide="ignore", invalid="ignore"):
        if not np.isfinite(ref_dist.logpdf(loc.numpy())):
            pytest.skip("scipy's own logpdf is not finite here (ive underflows)")
    rng = np.random.default_rng(0)
    near = ref_dist.rvs(5, random_state=rng) if m <= 100 else np.tile(loc.numpy(), (5, 1))
    far = rng.standard_normal((5, m))
    points = np.concatenate([near, far / np.linalg.norm(far, axis=1, keepdims=True)])
    got = VonMisesFisher(loc, kappa).log_prob(torch.from_numpy(points))
    np.testing.assert_allclose(got.numpy(), ref_dist.logpdf(points), rtol=0, atol=1e-4)


@pytest.mark.parametrize("m", DIMS)
@pytest.mark.parametrize("kappa", KAPPAS)
def test_entropy_matches_scipy(m, kappa):
    loc = _unit(m, seed=m)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = _scipy_vmf(loc, kappa).entropy()
    if not np.isfinite(ref):
        pytest.skip("scipy's own entropy is not finite here (ive underflows)")
    got = VonMisesFisher(loc, kappa).entropy()
    assert got.shape == ()
    assert got.item() == pytest.approx(ref, abs=1e-4)


def test_normaliser_finite_everywhere_in_range():
    kappa = torch.tensor([1e-3, 1.0, 1e4], dtype=F64, requires_grad=True)
    for m in [2, 3, 1000]:
        log_c = vmf_log_normalizer(m, kappa)
        assert torch.isfinite(log_c).all()
        (grad,) = torch.autograd.grad(log_c.sum(), kappa)
        # d/dk log C_m(k) = -A_m(k)
        np.testing.assert_allclose(grad.numpy(), -mean_resultant_length(m, kappa.detach()).numpy())
        d = VonMisesFisher(_unit(m, 0).expand(3, m), kappa.detach())
        assert torch.isfinite(d.entropy()).all()
        assert torch.isfinite(d.log_prob(d.loc)).all()
    # Uniform limit: log C_m(k -> 0) = -log |S^{m-1}| = lgamma(m/2) - log 2 - (m/2) log pi.
    m = 1000
    uniform = math.lgamma(m / 2) - math.log(2) - (m / 2) * math.log(math.pi)
    k_small = torch.tensor(1e-3, dtype=F64)
    assert vmf_log_normalizer(m, k_small).item() == pytest.approx(uniform, abs=1e-6)


def test_log_prob_float32_large_kappa():
    loc = _unit(100, 1, dtype=torch.float32)
    d = VonMisesFisher(loc, 1e4)
    ref = _scipy_vmf(loc, 1e4).logpdf(loc.double().numpy())
    assert d.log_prob(loc).dtype == torch.float32
    assert d.log_prob(loc).item() == pytest.approx(ref, abs=1e-3)


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("m,kappa", [(2, 1.0), (3, 5.0), (10, 50.0), (100, 1000.0)])
def test_rsample_matches_theory_and_scipy(m, kappa):
    n = 20000
    torch.manual_seed(1234)
    loc = _unit(m, seed=7)
    z = VonMisesFisher(loc, kappa).rsample((n,))
    assert z.shape == (n, m) and z.dtype == F64
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(n, dtype=F64), rtol=0, atol=1e-5)
    w = (z @ loc).numpy()
    w_ref = _scipy_vmf(loc, kappa).rvs(n, random_state=np.random.default_rng(99)) @ loc.numpy()
    se, se_ref = w.std() / math.sqrt(n), w_ref.std() / math.sqrt(n)
    a = mean_resultant_length(m, kappa).item()
    assert abs(w.mean() - a) < 5 * se
    assert abs(w.mean() - w_ref.mean()) < 5 * math.hypot(se, se_ref)
    assert w.std() == pytest.approx(w_ref.std(), rel=0.1)
    # The mean direction itself: |mean(z) - A loc| small in every coordinate.
    mean_err = (z.mean(0) - a * loc).abs().max().item()
    assert mean_err < 6 * math.sqrt(max(1 - a * a, 1e-12) / n) + 1e-4


def test_rsample_float32_batch_shapes_and_per_row_kappa():
    torch.manual_seed(0)
    b, m = 256, 100
    loc = torch.nn.functional.normalize(torch.randn(b, m), dim=-1)
    kappa = torch.linspace(1.0, 1000.0, b)
    d = VonMisesFisher(loc, kappa)
    assert d.batch_shape == (b,) and d.event_shape == (m,)
    z = d.rsample()
    assert z.shape == (b, m) and z.dtype == torch.float32
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(b), rtol=0, atol=1e-5)
    z2 = d.rsample((3, 2))
    assert z2.shape == (3, 2, b, m)
    assert d.log_prob(z2).shape == (3, 2, b)
    assert d.entropy().shape == (b,) and d.mean.shape == (b, m)
    # Per-row concentrations are honoured: rows with kappa=1000 vs kappa~1 differ clearly.
    w = (d.rsample((200,)) * loc).sum(-1).mean(0)
    a = mean_resultant_length(m, kappa)
    assert (w - a).abs().max().item() < 0.05
    # A (B, 1)-shaped loc with (B,) kappa broadcasts to batch (B, B).
    assert VonMisesFisher(loc[:4, None, :], kappa[:4]).batch_shape == (4, 4)
    assert d.expand((2, b)).rsample().shape == (2, b, m)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_rsample_when_loc_is_plus_minus_e1(sign):
    # The reflection must have no singular case at loc = +-e1.
    torch.manual_seed(0)
    loc = torch.zeros(5, dtype=F64)
    loc[0] = sign
    loc = loc.requires_grad_()
    z = VonMisesFisher(loc, 20.0).rsample((20000,))
    a = mean_resultant_length(5, 20.0).item()
    torch.testing.assert_close(z.mean(0), a * loc.detach(), rtol=0, atol=0.01)
    z.sum().backward()
    assert torch.isfinite(loc.grad).all() and loc.grad.abs().sum() > 0


def test_rsample_extreme_parameters_stay_on_sphere():
    torch.manual_seed(0)
    for m, kappa in [(3, 1e-3), (1000, 1e-3), (1000, 1e4), (3, 1e4), (2, 1e4)]:
        loc = _unit(m, m, dtype=torch.float32)
        z = VonMisesFisher(loc, kappa).rsample((500,))
        assert torch.isfinite(z).all()
        torch.testing.assert_close(z.norm(dim=-1), torch.ones(500), rtol=0, atol=1e-5)
        w = (z @ loc).double()
        a = mean_resultant_length(m, kappa).item()
        assert abs(w.mean().item() - a) < 6 * max(w.std().item(), 1e-7) / math.sqrt(500)


def test_rsample_is_deterministic_under_manual_seed():
    loc = torch.nn.functional.normalize(torch.randn(64, 10), dim=-1)
    d = VonMisesFisher(loc, torch.full((64,), 30.0))
    torch.manual_seed(0)
    a = d.rsample((3,))
    torch.manual_seed(0)
    b = d.rsample((3,))
    assert torch.equal(a, b)
    assert not torch.equal(a, d.rsample((3,)))


def test_gradients_flow_to_loc_and_concentration():
    torch.manual_seed(0)
    raw = torch.randn(32, 16, requires_grad=True)
    log_kappa = torch.full((32,), math.log(50.0), requires_grad=True)
    d = VonMisesFisher(torch.nn.functional.normalize(raw, dim=-1), log_kappa.exp())
    target = _unit(16, 3, dtype=torch.float32)
    loss = -(d.rsample((4,)) @ target).mean() - d.entropy().mean()
    loss.backward()
    for g in (raw.grad, log_kappa.grad):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    # A float concentration shared by all rows gets a scalar gradient too.
    kappa = torch.tensor(10.0, requires_grad=True)
    VonMisesFisher(d.loc.detach(), kappa).rsample((8,)).sum().backward()
    assert kappa.grad is not None and torch.isfinite(kappa.grad) and kappa.grad != 0


@pytest.mark.parametrize("kappa0", [0.5, 50.0, 1000.0])
def test_concentration_gradient_is_the_pathwise_derivative(kappa0):
    # With a fixed seed the accepted Beta draws do not move for a tiny change of kappa, so the
    # g_rep gradient must equal the finite difference of the samples.
    loc = _unit(10, 0)
    target = _unit(10, 1)

    def f(kappa: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(3)
        return (VonMisesFisher(loc, kappa).rsample((500,)) @ target).sum()

    kappa = torch.tensor(kappa0, dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(f(kappa), kappa)
    h = 1e-6 * kappa0
    fd = (f(torch.tensor(kappa0 + h, dtype=F64)) - f(torch.tensor(kappa0 - h, dtype=F64))) / (2 * h)
    assert grad.item() == pytest.approx(fd.item(), rel=1e-5, abs=1e-8)


def test_loc_gradient_is_unbiased():
    # E<a, z> = A_m(kappa) <a, loc>, so the tangential part of the pathwise gradient w.r.t. loc
    # averages to A_m(kappa) (a - <a, loc> loc).
    torch.manual_seed(1)
    m, kappa, n = 10, 5.0, 50000
    loc0, a = _unit(m, 0), _unit(m, 1)
    loc = loc0.clone().requires_grad_()
    (VonMisesFisher(loc, kappa).rsample((n,)) @ a).mean().backward()

    def tangential(g: torch.Tensor) -> torch.Tensor:
        return g - (g @ loc0) * loc0

    expected = mean_resultant_length(m, kappa).item() * tangential(a)
    torch.testing.assert_close(tangential(loc.grad), expected, rtol=0, atol=0.01)


# ---------------------------------------------------------------------------------------------
# Bad input, API details
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kappa", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_concentration_raises(kappa):
    loc = _unit(4, 0)
    with pytest.raises(ValueError, match="concentration must be positive and finite"):
        VonMisesFisher(loc, kappa)
    with pytest.raises(ValueError, match="concentration must be positive and finite"):
        VonMisesFisher(loc.expand(2, 4), torch.tensor([1.0, kappa]), validate_args=False)


def test_bad_loc_raises():
    with pytest.raises(ValueError, match="unit norm"):
        VonMisesFisher(torch.tensor([1.0, 1.0]), 1.0, validate_args=True)
    with pytest.raises(ValueError, match="m >= 2"):
        VonMisesFisher(torch.tensor([1.0]), 1.0)
    with pytest.raises(ValueError, match="broadcast"):
        VonMisesFisher(_unit(4, 0).expand(3, 4), torch.ones(2))
    # Validation off: not checked (documented: loc must be unit-norm).
    VonMisesFisher(torch.tensor([1.0, 1.0]), 1.0, validate_args=False)


def test_mean_and_mode():
    loc = _unit(6, 2)
    d = VonMisesFisher(loc, 3.0)
    torch.testing.assert_close(d.mean, mean_resultant_length(6, 3.0).to(F64) * loc)
    torch.testing.assert_close(d.mean_resultant_length, mean_resultant_length(6, 3.0).to(F64))
    assert torch.equal(d.mode, loc)
    assert d.has_rsample


def test_docstring_example_runs():
    torch.manual_seed(0)
    result = doctest.testmod(vmf, verbose=False)
    assert result.attempted > 0 and result.failed == 0
