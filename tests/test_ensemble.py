"""Batched ensembles train each member as its own one-by-one run would (to float tolerance)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from disentangled_ssl import DisentangledSSL, DSSLError
from disentangled_ssl.estimator import fit_shared_grid, fit_specific_grid
from disentangled_ssl.losses import alignment, info_nce
from disentangled_ssl.losses.fused import info_nce as fused_info_nce
from disentangled_ssl.methods import posterior_samples
from disentangled_ssl.nn.encoders import MLP
from disentangled_ssl.nn.vmf import VonMisesFisher
from disentangled_ssl.training.ensemble import BatchedMLP

SMALL = {"hidden_dim": 32, "shared_dim": 8, "specific_dim": 8, "batch_size": 64,
         "shared_epochs": 3, "specific_epochs": 2, "random_state": 3, "device": "cpu",
         "verbose": False}


def _relative_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max() / b.detach().abs().max())


def _assert_same_weights(mine: torch.nn.Module, theirs: torch.nn.Module) -> None:
    """Equal up to float rounding: ~1e-7 relative over each tensor; a weight with ~0 gradient
    may be off by more (Adam normalises rounding noise), hence the looser max-abs bound."""
    for p, q in zip(mine.parameters(), theirs.parameters()):
        assert float((p - q).detach().norm() / q.detach().norm()) < 1e-5
        assert _relative_gap(p, q) < 1e-4


def test_batched_mlp_matches_its_members_and_writes_back():
    torch.manual_seed(0)
    mlps = [MLP(6, 4, hidden_dim=16, n_hidden_layers=2, activation="tanh") for _ in range(3)]
    batched = BatchedMLP(mlps)
    x = torch.randn(5, 6)
    per_member = torch.randn(3, 5, 6)
    shared_out, own_out = batched(x), batched(per_member)
    assert shared_out.shape == (3, 5, 4)
    for k, mlp in enumerate(mlps):
        torch.testing.assert_close(shared_out[k], mlp(x), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(own_out[k], mlp(per_member[k]), rtol=1e-6, atol=1e-7)
    with torch.no_grad():
        batched.weights[0][1].add_(1.0)
    batched.write_back(mlps)
    torch.testing.assert_close(mlps[1].net[0].weight, batched.weights[0][1])
    assert not torch.equal(mlps[0].net[0].weight, mlps[1].net[0].weight)


def test_batched_mlp_refuses_mismatched_or_custom_encoders():
    with pytest.raises(DSSLError, match="member 1 has a different encoder architecture"):
        BatchedMLP([MLP(6, 4, hidden_dim=16), MLP(6, 4, hidden_dim=8)])
    with pytest.raises(DSSLError, match="need MLP encoders.*Conv1d"):
        BatchedMLP([torch.nn.Conv1d(1, 1, 3)])


def test_one_noise_draw_gives_every_member_its_own_vmf_sample():
    """posterior_samples draws the vMF noise exactly as VonMisesFisher.rsample does, and one
    draw mapped onto K members' embeddings is each member's own single-run sample."""
    n, m, kappa = 40, 12, 50.0
    embeddings = torch.randn(3, n, m)
    state = torch.get_rng_state()
    batched = posterior_samples(embeddings, kappa)
    for k in range(3):
        torch.set_rng_state(state)
        loc = F.normalize(embeddings[k], dim=-1)
        single = F.normalize(VonMisesFisher(loc, kappa, validate_args=False).rsample(), dim=-1)
        torch.testing.assert_close(batched[k], single, rtol=0, atol=1e-7)
        torch.set_rng_state(state)
        assert torch.equal(posterior_samples(embeddings[k], kappa), batched[k])
    assert torch.allclose(batched.norm(dim=-1), torch.ones(3, n), atol=1e-6)
    assert (batched[0] - F.normalize(embeddings[0], dim=-1)).abs().max() > 1e-3  # noisy


def test_member_losses_broadcast_over_the_ensemble_dimension():
    """The ensemble's per-member InfoNCE and alignment equal the reference equations on each
    member alone (cross-entropy of the logits, mean cosine), not merely another call of the
    same node."""
    torch.manual_seed(0)
    a, b = F.normalize(torch.randn(2, 2, 16, 5, dtype=torch.float64), dim=-1)
    nce = fused_info_nce(a, b, 0.07)
    align = alignment(a, b)
    targets = torch.arange(16)
    for k in range(2):
        logits = a[k] @ b[k].T / 0.07
        reference = 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
        torch.testing.assert_close(nce[k], reference, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(nce[k], info_nce(a[k], b[k], 0.07), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(align[k], -(a[k] * b[k]).sum(-1).mean(), rtol=1e-10,
                                   atol=1e-12)


@pytest.fixture(scope="module")
def beta_grid(small_data):
    betas = [0.0, 1.0, 50.0]
    grid = fit_shared_grid(DisentangledSSL(**SMALL), betas, small_data.x1, small_data.x2)
    singles = [DisentangledSSL(beta=b, **SMALL).fit_shared(small_data.x1, small_data.x2)
               for b in betas]
    return betas, grid, singles


def test_shared_grid_members_match_one_by_one_training(beta_grid, small_data):
    betas, grid, singles = beta_grid
    assert [est.beta for est in grid] == betas
    for est, single in zip(grid, singles):
        _assert_same_weights(est.model_.shared, single.model_.shared)
        assert len(est.history_["shared"]) == SMALL["shared_epochs"]
        for mine, theirs in zip(est.history_["shared"], single.history_["shared"]):
            for term in ("loss", "infonce", "alignment", "lr"):
                assert mine[term] == pytest.approx(theirs[term], rel=1e-5, abs=1e-6)
        emb = est.transform(small_data.x1, small_data.x2).shared
        ref = single.transform(small_data.x1, small_data.x2).shared
        assert _relative_gap(torch.from_numpy(emb), torch.from_numpy(ref)) < 1e-4
    # The dial mattered: members are different models.
    gap = _relative_gap(grid[0].model_.shared[0].net[0].weight,
                        grid[2].model_.shared[0].net[0].weight)
    assert gap > 1e-2


def test_specific_grid_members_match_one_by_one_training(beta_grid, small_data):
    _, _, singles = beta_grid
    fitted = singles[1]
    lams = [0.0, 10.0]
    grid = fit_specific_grid(fitted, lams, small_data.x1, small_data.x2)
    assert "specific" not in fitted.history_  # the template is left untouched
    for est, lam in zip(grid, lams):
        single = fitted.with_params(lam=lam).fit_specific(small_data.x1, small_data.x2)
        _assert_same_weights(est.model_, single.model_)
        for mine, theirs in zip(est.history_["specific"], single.history_["specific"]):
            for term in ("loss", "infonce", "orthogonality"):
                assert mine[term] == pytest.approx(theirs[term], rel=1e-5, abs=1e-6)
        spec = est.transform(small_data.x1, small_data.x2).specific1
        assert spec.shape == (small_data.x1.shape[0], SMALL["specific_dim"])


def test_grids_refuse_what_they_cannot_batch(small_data):
    x1, x2 = small_data.x1, small_data.x2
    with pytest.raises(DSSLError, match="betas is empty"):
        fit_shared_grid(DisentangledSSL(**SMALL), [], x1, x2)
    warm = DisentangledSSL(beta_warmup_steps=10, **SMALL)
    with pytest.raises(DSSLError, match="constant dials"):
        fit_shared_grid(warm, [1.0, 2.0], x1, x2)
    unfitted = DisentangledSSL(**SMALL)
    with pytest.raises(DSSLError, match="not fitted"):
        fit_specific_grid(unfitted, [0.0, 1.0], x1, x2)


def test_reproduce_synthetic_batched_gives_the_one_by_one_results(tmp_path):
    from disentangled_ssl.experiments.synthetic import SyntheticConfig, run_synthetic

    config = dict(n_samples=800, shared_epochs=1, specific_epochs=1, betas=(0.0, 1.0),
                  step2_betas=(1.0,), lambdas=(0.0, 1.0), seeds=(0,), batch_size=64,
                  device="cpu")
    plain = run_synthetic(SyntheticConfig(**config), tmp_path / "plain", progress=False)
    batched = run_synthetic(SyntheticConfig(**config, batched=True), tmp_path / "batched",
                            progress=False)
    key = ("stage", "beta", "lam", "seed", "representation", "label")
    assert [tuple(r[k] for k in key) for r in batched] == [tuple(r[k] for k in key)
                                                           for r in plain]
    for mine, theirs in zip(batched, plain):
        assert mine["accuracy"] == pytest.approx(theirs["accuracy"], abs=0.01)
    assert (tmp_path / "batched" / "figure3b.png").is_file()


@pytest.mark.parametrize("batched", [False, True])
def test_reproduce_synthetic_two_workers_gives_the_one_process_results(tmp_path, batched):
    from disentangled_ssl.experiments.engine import plan_tasks
    from disentangled_ssl.experiments.synthetic import (
        SyntheticConfig,
        run_synthetic,
        synthetic_grid,
    )

    config = dict(n_samples=800, shared_epochs=1, specific_epochs=1, betas=(0.0, 1.0, 10.0),
                  step2_betas=(1.0,), lambdas=(0.0, 1.0), seeds=(0,), batch_size=64,
                  device="cpu", batched=batched)
    one = run_synthetic(SyntheticConfig(**config), tmp_path / "one", progress=False)
    two_config = SyntheticConfig(**config, workers=2)
    tasks = plan_tasks(synthetic_grid(two_config).units(), batched=batched, workers=2)
    units = [(task[0].seed, tuple(u.dials["beta"] for u in task)) for task in tasks]
    # Batched with one seed and two workers: the β grid is cut in two, the step-2 β alone
    # in the heavier chunk; one by one: one unit per β, the step-2 β first.
    assert units == ([(0, (1.0,)), (0, (0.0, 10.0))] if batched
                     else [(0, (1.0,)), (0, (0.0,)), (0, (10.0,))])
    two = run_synthetic(two_config, tmp_path / "two", progress=False)
    key = ("stage", "beta", "lam", "seed", "representation", "label")
    assert [tuple(r[k] for k in key) for r in two] == [tuple(r[k] for k in key) for r in one]
    for mine, theirs in zip(two, one):  # float-tolerance training differences only
        assert mine["accuracy"] == pytest.approx(theirs["accuracy"], abs=0.01)
    assert json.loads((tmp_path / "two" / "run.json").read_text())["machine"][
        "threads_per_worker"] >= 1


def test_reproduce_synthetic_rejects_bad_workers(tmp_path):
    from disentangled_ssl.experiments.synthetic import SyntheticConfig, run_synthetic

    with pytest.raises(DSSLError, match=r"^workers must be a positive integer, got 0$"):
        run_synthetic(SyntheticConfig(workers=0), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
