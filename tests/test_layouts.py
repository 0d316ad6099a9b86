"""``encoder_layout="trunk"``: one network per modality feeding both codes (DMVAE's four-chunk
encoder, FactorCL's backbone with a shared and a unique head), as the authors' codes build
them; its structure, training, save/load, the CLI flag and the errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from disentangled_ssl import DisentangledSSL, DSSLError, linear_probe, make_synthetic
from disentangled_ssl.data.augment import VectorAugment
from disentangled_ssl.losses import DMVAELoss, FactorCLLoss
from disentangled_ssl.methods import ModelShape, get_method
from disentangled_ssl.methods.dmvae import DMVAEObjective
from disentangled_ssl.methods.factorcl import FactorCLObjective
from disentangled_ssl.nn.heads import GaussianHead, GaussianTrunk, Trunk, TrunkHead

SMALL = dict(epochs=1, shared_dim=8, specific_dim=6, hidden_dim=16, batch_size=128,
             random_state=0, verbose=False, device="cpu")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _models(method: str, small_data):
    dims = [small_data.x1.shape[1], small_data.x2.shape[1]]
    out = {}
    for layout in ("separate", "trunk"):
        torch.manual_seed(0)
        out[layout] = get_method(method).build_model(
            ModelShape(dims, 8, 6, 16, 1, encoder_layout=layout))
    return out


def _calls(module: nn.Module) -> list[int]:
    calls: list[int] = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


# ------------------------------------------------------------------ structure
@pytest.mark.parametrize("method", ["dmvae", "factorcl"])
def test_trunk_layout_has_one_network_per_modality(method, small_data):
    models = _models(method, small_data)
    model = models["trunk"]
    trunks = model.extra["trunks"]
    assert len(trunks) == 2
    view = GaussianHead if method == "dmvae" else TrunkHead
    for i in range(2):
        # both codes of modality i are parameter-free views of the same trunk
        assert isinstance(model.shared[i], view) and isinstance(model.specific[i], view)
        assert model.shared[i].trunk is trunks[i] and model.specific[i].trunk is trunks[i]
        assert _n_params(model.shared[i]) == _n_params(model.specific[i]) == 0
    assert not any(k.startswith(("shared.", "specific.")) for k in model.state_dict())
    assert _n_params(model) < _n_params(models["separate"])
    # what the trunk saves is one network's hidden layer (d -> h) per modality, nothing else
    d, h = small_data.x1.shape[1], 16
    assert _n_params(models["separate"]) - _n_params(model) == 2 * (d + 1) * h
    if method == "dmvae":
        assert all(isinstance(t, GaussianTrunk) for t in trunks)
        assert trunks[0].dims == {"private": 6, "shared": 8}
        assert trunks[0].net.net[-1].out_features == 2 * (6 + 8)  # one Linear, four chunks
    else:
        assert all(isinstance(t, Trunk) and set(t.heads) == {"shared", "unique"}
                   for t in trunks)
        assert [t.heads[k].net[0].in_features for t in trunks for k in t.heads] == [h] * 4


@pytest.mark.parametrize("method", ["dmvae", "factorcl"])
def test_one_trunk_pass_feeds_both_codes(method, small_data):
    """Per training step each modality's trunk runs once; its first layer is trained by the
    shared code and by the specific code."""
    model = _models(method, small_data)["trunk"]
    xs = [torch.from_numpy(small_data.x1[:32]), torch.from_numpy(small_data.x2[:32])]
    if method == "dmvae":
        objective = DMVAEObjective(model, VectorAugment(), DMVAELoss(1e-3))
        nets = [t.net for t in model.extra["trunks"]]
        first = nets[0].net[0].weight
    else:
        objective = FactorCLObjective(model, VectorAugment(), FactorCLLoss())
        nets = [t.backbone for t in model.extra["trunks"]]
        first = nets[0][0].net[0].weight
    calls = [_calls(net) for net in nets]
    objective(*xs)
    assert [len(c) for c in calls] == [1, 1]
    for code in (model.shared_embedding(0, xs[0]), model.specific_embedding(0, xs[0])):
        model.zero_grad(set_to_none=True)
        code.square().sum().backward()
        assert first.grad is not None and float(first.grad.abs().sum()) > 0
    # transform's codes are the heads of the trunk
    x = xs[0]
    with torch.no_grad():
        if method == "dmvae":
            full = model.extra["trunks"][0].net(x)
            torch.testing.assert_close(model.specific_embedding(0, x), full[:, :6])
            torch.testing.assert_close(model.shared_embedding(0, x), full[:, 12:20])
        else:
            trunk = model.extra["trunks"][0]
            torch.testing.assert_close(model.shared_embedding(0, x),
                                       trunk.heads["shared"](trunk.backbone(x)))


def test_trunk_layout_works_for_other_kinds():
    rng = np.random.default_rng(0)
    seq = [rng.normal(size=(128, 5, 3)).astype(np.float32) for _ in range(2)]
    img = rng.random(size=(128, 3, 8, 8)).astype(np.float32)
    tok = rng.integers(1, 20, size=(128, 7))
    for method, views, extra in [("dmvae", seq, {}), ("factorcl", seq, {}),
                                 ("factorcl", [img, tok],
                                  {"modalities": ("image", "tokens")})]:
        est = DisentangledSSL(method=method, encoder_layout="trunk", **{**SMALL, **extra,
                                                                      "batch_size": 64})
        emb = est.fit(views).transform(views)
        assert emb.specific1.shape == (128, 6) and emb.shared2.shape == (128, 8)
        assert len(est.model_.extra["trunks"]) == 2


# ------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def paper_split():
    return make_synthetic(n_samples=4000, seed=0).split(0.2, seed=0)


@pytest.mark.parametrize("method", ["dmvae", "factorcl"])
def test_trunk_layout_learns_on_paper_generator(method, paper_split):
    """As tests/test_methods.py: loss down by > 5 %, y1 probe of specific1 > 0.62 (chance
    0.5)."""
    train, test = paper_split
    est = DisentangledSSL(method=method, encoder_layout="trunk", epochs=3, lr=1e-3,
                          batch_size=128, random_state=0, verbose=False, device="cpu")
    est.fit(train.x1, train.x2)
    first, last = est.history_[method][0]["loss"], est.history_[method][-1]["loss"]
    assert last < first - 0.05 * abs(first), (first, last)
    tr, te = est.transform(train.x1, train.x2), est.transform(test.x1, test.x2)
    accuracy = linear_probe(tr.specific1, train.labels, te.specific1, test.labels)["y1"]
    assert accuracy > 0.62, accuracy


# ------------------------------------------------------------------ persistence and CLI
@pytest.mark.parametrize("method", ["dmvae", "factorcl"])
def test_trunk_save_load_round_trip(method, small_data, tmp_path):
    est = DisentangledSSL(method=method, encoder_layout="trunk", **SMALL)
    est.fit(small_data.x1, small_data.x2)
    before = est.transform(small_data.x1, small_data.x2)
    est.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["params"]["encoder_layout"] == "trunk"
    loaded = DisentangledSSL.load(tmp_path / "m", device="cpu")
    assert loaded.encoder_layout == "trunk" and "trunks" in loaded.model_.extra
    after = loaded.transform(small_data.x1, small_data.x2)
    for name in ("shared1", "shared2", "specific1", "specific2"):
        np.testing.assert_array_equal(getattr(before, name), getattr(after, name))


def test_models_saved_without_the_parameter_load_as_separate(small_data, tmp_path):
    est = DisentangledSSL(method="factorcl", **SMALL).fit(small_data.x1, small_data.x2)
    est.save(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    del config["params"]["encoder_layout"]  # as written before the parameter existed
    path.write_text(json.dumps(config))
    loaded = DisentangledSSL.load(tmp_path / "m", device="cpu")
    assert loaded.encoder_layout == "separate"
    np.testing.assert_array_equal(est.transform(small_data.x1, small_data.x2).specific1,
                                  loaded.transform(small_data.x1, small_data.x2).specific1)


def test_cli_fit_encoder_layout_flag(small_data, tmp_path):
    from disentangled_ssl.cli import main
    from disentangled_ssl.data.io import save_paired

    npz = save_paired(tmp_path / "d.npz", small_data)
    assert main(["fit", "--data", str(npz), "--out", str(tmp_path / "m"), "--method", "dmvae",
                 "--encoder-layout", "trunk", "--epochs", "1", "--batch-size", "128",
                 "--hidden-dim", "16", "--shared-dim", "8", "--specific-dim", "6", "--quiet",
                 "--device", "cpu"]) == 0
    assert DisentangledSSL.load(tmp_path / "m", device="cpu").encoder_layout == "trunk"


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("value", ["shared", "Trunk", None])
def test_bad_encoder_layout_value(value, small_data):
    est = DisentangledSSL(method="dmvae", encoder_layout=value, **SMALL)
    with pytest.raises(DSSLError) as err:
        est.fit(small_data.x1, small_data.x2)
    assert str(err.value) == f"encoder_layout must be 'separate' or 'trunk', got {value!r}"


@pytest.mark.parametrize("method", ["disentangled_ssl", "clip", "simclr", "joint", "focal"])
def test_trunk_layout_refused_for_other_methods(method, small_data):
    est = DisentangledSSL(method=method, encoder_layout="trunk", **SMALL)
    with pytest.raises(DSSLError) as err:
        est.fit(small_data.x1, small_data.x2)
    assert str(err.value) == ("encoder_layout='trunk' is supported for methods dmvae, "
                              f"factorcl, not {method!r}")


def test_trunk_layout_refuses_custom_encoders(small_data):
    encoders = [nn.Linear(16, 8), nn.Linear(16, 8)]
    est = DisentangledSSL(method="factorcl", encoder_layout="trunk", shared_encoders=encoders,
                          **SMALL)
    message = ("custom encoders need encoder_layout='separate': encoder_layout='trunk' "
               "builds one network per modality from its kind")
    with pytest.raises(DSSLError) as err:
        est.fit(small_data.x1, small_data.x2)
    assert str(err.value) == message
    shape = ModelShape([16, 16], 8, 6, 16, 1, shared_encoders=encoders, encoder_layout="trunk")
    with pytest.raises(DSSLError) as err:
        get_method("dmvae").build_model(shape)
    assert str(err.value) == message
