"""Baselines: loss values on tiny inputs, learning on the paper's generator, the registry,
errors, and save/load of baseline models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from disentangled_ssl import DisentangledSSL, DSSLError, linear_probe, make_synthetic
from disentangled_ssl.data.augment import VectorAugment
from disentangled_ssl.losses import (
    CLIPLoss,
    DMVAELoss,
    FactorCLLoss,
    FOCALLoss,
    JointOptLoss,
    SimCLRLoss,
    club_upper_bound,
    gaussian_kl,
    nce_lower_bound,
    product_of_experts,
)
from disentangled_ssl.methods import ModelShape, get_method, method_names
from disentangled_ssl.methods.factorcl import FactorCLObjective
from disentangled_ssl.methods.joint import JointOptObjective

I2 = torch.eye(2)
P2 = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
# info_nce at temperature 1 with logits I (positives 1, negatives 0) and P (positives 0, 1).
L_ID = math.log(1 + math.exp(-1))
L_SWAP = math.log(1 + math.e)


# ------------------------------------------------------------------ hand-computed loss values
def test_clip_loss_value_and_normalisation():
    out = CLIPLoss(temperature=1.0)(I2, 3.0 * I2)  # rescaling must not matter
    assert float(out["loss"]) == pytest.approx(L_ID, abs=1e-6)
    assert float(CLIPLoss(1.0)(I2, P2)["loss"]) == pytest.approx(L_SWAP, abs=1e-6)


def test_simclr_loss_sums_modalities():
    out = SimCLRLoss(temperature=1.0)([(I2, I2), (I2, P2)])
    assert float(out["infonce1"]) == pytest.approx(L_ID, abs=1e-6)
    assert float(out["infonce2"]) == pytest.approx(L_SWAP, abs=1e-6)
    assert float(out["loss"]) == pytest.approx(L_ID + L_SWAP, abs=1e-6)


def test_joint_loss_value():
    a, lam = 3.0, 0.5
    loss = JointOptLoss(alpha=a, lam=lam, temperature=1.0)
    out = loss(
        samples=[(I2, P2), (I2, I2)],  # view a aligned, view b swapped
        shared=[(I2, I2), (I2, I2)],
        specific=[(I2, I2), (I2, I2)],
    )
    shared = (L_ID + L_SWAP) / 2
    # normalise([s, c_other]) = rows (1,0,1,0)/√2, (0,1,0,1)/√2 -> logits I: L_ID per modality
    specific = 2 * L_ID
    ortho = 2 * math.sqrt(2)  # ‖IᵀI‖_F = √2, averaged over views, summed over 2 modalities
    assert float(out["shared_infonce"]) == pytest.approx(shared, abs=1e-6)
    assert float(out["specific_infonce"]) == pytest.approx(specific, abs=1e-6)
    assert float(out["orthogonality"]) == pytest.approx(ortho, abs=1e-6)
    expected = 2 / (1 + a) * shared + a / (1 + a) * specific + lam * ortho
    assert float(out["loss"]) == pytest.approx(expected, abs=1e-6)


def test_focal_loss_value():
    a, lam = 2.0, 0.25
    out = FOCALLoss(alpha=a, lam=lam, temperature=1.0)(
        shared=[(I2, I2), (I2, P2)], specific=[(I2, P2), (I2, I2)]
    )
    assert float(out["shared_infonce"]) == pytest.approx(L_ID + L_SWAP, abs=1e-6)
    assert float(out["specific_infonce"]) == pytest.approx(L_SWAP + L_ID, abs=1e-6)
    # cos(s1a,c1a)=1, cos(s1b,c1b)=0, cos(s2a,c2a)=1, cos(s2b,c2b)=0, cos(s1a,s2a)=1,
    # cos(s1b,s2b)=0
    assert float(out["orthogonality"]) == pytest.approx(3.0, abs=1e-6)
    expected = (L_ID + L_SWAP) * (1 + a) + lam * 3.0
    assert float(out["loss"]) == pytest.approx(expected, abs=1e-6)


def test_dmvae_loss_value():
    t = torch.tensor
    x1, x2 = t([[1.0, 2.0]]), t([[0.0, 0.0]])
    recon = [t([[0.0, 0.0]]), t([[1.0, 1.0]])]  # MSE 2.5 and 1
    cross = [t([[1.0, 2.0]]), t([[0.0, 2.0]])]  # MSE 0 and 2
    private = [(t([[1.0, 0.0]]), t([[0.0, 0.0]])),  # KL 0.5
               (t([[0.0, 0.0]]), t([[math.log(2.0), 0.0]]))]  # KL 0.5 (1 - log 2)
    shared = [(t([[2.0]]), t([[0.0]])), (t([[0.0]]), t([[0.0]]))]  # KL 2 and 0
    joint = (t([[1.0]]), t([[math.log(0.5)]]))  # KL 0.25 + 0.5 log 2
    a = 0.1
    out = DMVAELoss(alpha=a)([x1, x2], recon, cross, private, shared, joint)
    kl = 0.5 + 0.5 * (1 - math.log(2)) + 2 * (0.25 + 0.5 * math.log(2))
    cross_kl = 0.5 + 0.5 * (1 - math.log(2)) + 2.0
    assert float(out["recon"]) == pytest.approx(3.5, abs=1e-6)
    assert float(out["cross_recon"]) == pytest.approx(2.0, abs=1e-6)
    assert float(out["kl"]) == pytest.approx(kl, abs=1e-6)
    assert float(out["cross_kl"]) == pytest.approx(cross_kl, abs=1e-6)
    assert float(out["loss"]) == pytest.approx(5.5 + a * (kl + cross_kl), abs=1e-6)


def test_factorcl_loss_value():
    a = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[1.0, 3.0], [0.0, 1.0]])
    z = torch.zeros(2, 2)
    nce_a = math.log(2) + 2 - math.log(math.exp(2) + 1)
    assert float(nce_lower_bound(a)) == pytest.approx(nce_a, abs=1e-6)
    assert float(nce_lower_bound(z)) == pytest.approx(0.0, abs=1e-6)
    assert float(club_upper_bound(b)) == pytest.approx(1 - 5 / 4, abs=1e-6)
    out = FactorCLLoss()(shared_nce=a, shared_club_cond=b, unique_self_nce=[a, z],
                         unique_club=a, unique_nce_cond=z, critic_scores=[a])
    # -nce(a) + club(b) - (nce(a) + 0) + club(a) - 0 - nce(a)
    assert float(out["loss"]) == pytest.approx(-3 * nce_a - 0.25 + 1.0, abs=1e-6)
    assert float(out["unique_club"]) == pytest.approx(1.0, abs=1e-6)


def test_gaussian_kl_and_product_of_experts():
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    assert float(gaussian_kl(mu, logvar)) == pytest.approx(0.5 + 0.5 * (1 - math.log(2)))
    m, lv = product_of_experts(torch.tensor([2.0]), torch.tensor([0.0]),
                               torch.tensor([0.0]), torch.tensor([math.log(3.0)]))
    # precisions 1 + 1/3 -> variance 3/4; mean 3/4 · (2/1 + 0/3) = 1.5
    assert float(lv.exp()) == pytest.approx(0.75, abs=1e-6)
    assert float(m) == pytest.approx(1.5, abs=1e-6)
    m, lv = product_of_experts(torch.tensor([1.0]), torch.tensor([-80.0]),
                               torch.tensor([5.0]), torch.tensor([80.0]))
    assert torch.isfinite(m).all() and torch.isfinite(lv).all()
    assert float(m) == pytest.approx(1.0, abs=1e-6)  # the confident expert wins


@pytest.mark.parametrize("cls,kwargs", [(JointOptLoss, {"alpha": -1.0}),
                                        (FOCALLoss, {"lam": float("nan")}),
                                        (DMVAELoss, {"alpha": -0.1}),
                                        (CLIPLoss, {"temperature": 0.0})])
def test_loss_arguments_are_validated(cls, kwargs):
    with pytest.raises(DSSLError, match=next(iter(kwargs))):
        cls(**kwargs)


# ------------------------------------------------------------------ gradient routing
def _model_and_batch(method: str, small_data):
    torch.manual_seed(0)
    shape = ModelShape([small_data.x1.shape[1], small_data.x2.shape[1]], 8, 8, 16, 1)
    model = get_method(method).build_model(shape)
    xs = [torch.from_numpy(small_data.x1[:32]), torch.from_numpy(small_data.x2[:32])]
    return model, xs


def test_joint_specific_term_reaches_shared_encoders(small_data):
    """The defining difference from DisentangledSSL's step 2: JointOpt's specific InfoNCE
    trains the shared encoders too."""
    model, xs = _model_and_batch("joint", small_data)
    objective = JointOptObjective(model, VectorAugment(), JointOptLoss(1.0, 1.0), kappa=100.0)
    objective(*xs)["specific_infonce"].backward()
    grad = model.shared[0].net[0].weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0


def test_factorcl_club_critics_are_adversarial(small_data):
    """Encoders minimise the CLUB bound through a frozen critic; the critic learns only from
    its own InfoNCE on detached codes."""
    model, xs = _model_and_batch("factorcl", small_data)
    objective = FactorCLObjective(model, VectorAugment(), FactorCLLoss())
    objective(*xs)["shared_club"].backward()
    critic = model.extra["shared_club"].g.net[0].weight
    assert critic.grad is None
    assert float(model.shared[0].net[0].weight.grad.abs().sum()) > 0
    model.zero_grad(set_to_none=True)
    objective(*xs)["critic_nce"].backward()
    assert model.shared[0].net[0].weight.grad is None
    assert float(critic.grad.abs().sum()) > 0


# ------------------------------------------------------------------ registry and estimator
def test_registry_names_and_dials():
    assert method_names() == ("clip", "simclr", "joint", "focal", "dmvae", "factorcl",
                              "disentangled_ssl")
    assert get_method("joint").dials == ("alpha", "lam")
    assert get_method("dmvae").default_alpha == 1e-5
    assert not get_method("clip").has_specific and get_method("focal").has_specific


def test_unknown_method_lists_valid_names(small_data):
    with pytest.raises(DSSLError) as err:
        DisentangledSSL(method="jointopt", verbose=False).fit(small_data.x1, small_data.x2)
    message = str(err.value)
    assert "unknown method 'jointopt'" in message
    for name in method_names():
        assert name in message


def test_shared_only_method_specific_error_names_method(small_data):
    est = DisentangledSSL(method="clip", epochs=1, shared_dim=8, hidden_dim=16,
                          batch_size=128, random_state=0, verbose=False, device="cpu")
    emb = est.fit(small_data.x1, small_data.x2).transform(small_data.x1, small_data.x2)
    assert emb.shared1.shape == (len(small_data), 8)
    with pytest.raises(DSSLError, match="method 'clip' learns no specific representation"):
        _ = emb.specific1
    with pytest.raises(DSSLError, match="single stage; call fit"):
        est.fit_shared(small_data.x1, small_data.x2)


@pytest.mark.parametrize("method", ["dmvae", "factorcl", "focal"])
def test_baseline_save_load_round_trip(method, small_data, tmp_path):
    est = DisentangledSSL(method=method, alpha=0.5 if method != "factorcl" else None,
                          epochs=1, shared_dim=8, specific_dim=8 if method == "focal" else 6,
                          hidden_dim=16,
                          batch_size=128, random_state=0, verbose=False, device="cpu")
    est.fit(small_data.x1, small_data.x2)
    before = est.transform(small_data.x1, small_data.x2)
    est.save(tmp_path / "m")
    loaded = DisentangledSSL.load(tmp_path / "m", device="cpu")
    after = loaded.transform(small_data.x1, small_data.x2)
    assert loaded.method == method and loaded.alpha == est.alpha
    assert list(loaded.history_) == [method]
    np.testing.assert_array_equal(before.specific1, after.specific1)
    np.testing.assert_array_equal(before.shared2, after.shared2)
    assert after.specific1.shape == (len(small_data), est.specific_dim)


def test_focal_needs_equal_code_sizes(small_data):
    est = DisentangledSSL(method="focal", shared_dim=8, specific_dim=6, epochs=1,
                          batch_size=128, verbose=False)
    with pytest.raises(DSSLError, match="specific_dim == shared_dim"):
        est.fit(small_data.x1, small_data.x2)


def test_baseline_seeded_runs_are_identical(small_data):
    kwargs = dict(method="joint", epochs=1, shared_dim=8, hidden_dim=16, batch_size=128,
                  random_state=3, verbose=False, device="cpu")
    a = DisentangledSSL(**kwargs).fit(small_data.x1, small_data.x2)
    b = DisentangledSSL(**kwargs).fit(small_data.x1, small_data.x2)
    np.testing.assert_array_equal(a.transform(small_data.x1, small_data.x2).specific1,
                                  b.transform(small_data.x1, small_data.x2).specific1)


# ------------------------------------------------------------------ each method learns
pytestmark = pytest.mark.usefixtures("one_thread_module")  # conftest


@pytest.fixture(scope="module")
def paper_split():
    """The paper's generator (full 100-dim observations), n = 4000."""
    return make_synthetic(n_samples=4000, seed=0).split(0.2, seed=0)


# method -> (representation, label it should capture)
LEARNS = {
    "clip": ("shared", "yc"),
    "simclr": ("shared1", "y1"),
    "joint": ("specific1", "y1"),
    "focal": ("specific1", "y1"),
    "dmvae": ("specific1", "y1"),
    "factorcl": ("specific1", "y1"),
    "disentangled_ssl": ("specific1", "y1"),
}


def _probe(est, train, test, rep: str) -> dict[str, float]:
    tr, te = est.transform(train.x1, train.x2), est.transform(test.x1, test.x2)
    get = (lambda e: e.shared) if rep == "shared" else (lambda e: getattr(e, rep))
    return linear_probe(get(tr), train.labels, get(te), test.labels)


@pytest.mark.parametrize("method", list(LEARNS))
def test_each_method_learns_on_paper_generator(method, paper_split):
    train, test = paper_split
    est = DisentangledSSL(method=method, epochs=3, shared_epochs=3, specific_epochs=3,
                          lr=1e-3, batch_size=128, random_state=0, verbose=False, device="cpu")
    est.fit(train.x1, train.x2)
    for stage, history in est.history_.items():
        first, last = history[0]["loss"], history[-1]["loss"]
        # every stage's objective went down by > 5 % (FactorCL's bounds can be negative)
        assert last < first - 0.05 * abs(first), (stage, first, last)
    rep, label = LEARNS[method]
    accuracy = _probe(est, train, test, rep)[label]
    assert accuracy > 0.62, (method, rep, label, accuracy)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["joint", "focal", "dmvae", "disentangled_ssl"])
def test_each_method_learns_at_issue_budget(method):
    """n = 20000, the default learning rate, 5 epochs (5 + 5 for DisentangledSSL)."""
    train, test = make_synthetic(n_samples=20000, seed=0).split(0.2, seed=0)
    est = DisentangledSSL(method=method, beta=0.1, epochs=5, shared_epochs=5,
                          specific_epochs=5, random_state=0, verbose=False, device="cpu")
    est.fit(train.x1, train.x2)
    accs = _probe(est, train, test, "specific1")
    assert accs["y1"] > 0.65 and accs["y2"] < 0.56, accs


# ------------------------------------------------------------------ the CLI
def test_cli_fit_selects_a_baseline(small_data, tmp_path, capsys):
    from disentangled_ssl.cli import main
    from disentangled_ssl.data.io import save_paired

    npz = save_paired(tmp_path / "d.npz", small_data)
    base = ["fit", "--data", str(npz), "--epochs", "1", "--batch-size", "128",
            "--hidden-dim", "16", "--shared-dim", "8", "--specific-dim", "8", "--quiet",
            "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "m"), "--method", "dmvae",
                 "--alpha", "1e-4"]) == 0
    loaded = DisentangledSSL.load(tmp_path / "m", device="cpu")
    assert (loaded.method, loaded.alpha, list(loaded.history_)) == ("dmvae", 1e-4, ["dmvae"])
    assert main([*base, "--out", str(tmp_path / "n"), "--method", "bogus"]) == 2
    assert "dssl: error: unknown method 'bogus'; choose one of: clip, simclr" in (
        capsys.readouterr().err)
