from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.base import clone

from disentangled_ssl import DisentangledSSL, DSSLError

_R = np.random.default_rng(0)


def _est(**kw):
    params = dict(shared_dim=8, specific_dim=6, hidden_dim=32, shared_epochs=2,
                  specific_epochs=2, batch_size=64, random_state=0, device="cpu", verbose=False)
    params.update(kw)
    return DisentangledSSL(**params)


@pytest.fixture(scope="module")
def fitted(small_data):
    return _est().fit(small_data.x1, small_data.x2)


def test_default_params_are_the_documented_ones():
    p = DisentangledSSL().get_params()
    expected = dict(beta=1.0, lam=1.0, shared_dim=100, specific_dim=100, hidden_dim=512,
                    shared_epochs=50, specific_epochs=30, batch_size=256, lr=1e-4, kappa=1000.0,
                    random_state=None, device="auto")
    assert {k: p[k] for k in expected} == expected


def test_fit_returns_self_and_transform_shapes(small_data, fitted):
    emb = fitted.transform(small_data.x1, small_data.x2)
    assert emb.shared1.shape == (1024, 8) and emb.shared2.shape == (1024, 8)
    assert emb.specific1.shape == (1024, 6) and emb.specific2.shape == (1024, 6)
    assert emb.shared.shape == (1024, 16)
    assert all(v.dtype == np.float32 for v in emb.as_dict().values())
    assert set(fitted.history_) == {"shared", "specific"}
    assert len(fitted.history_["shared"]) == 2
    assert {"loss", "infonce", "alignment", "lr", "seconds"} <= set(fitted.history_["shared"][0])
    assert {"loss", "infonce", "orthogonality"} <= set(fitted.history_["specific"][0])


def test_transform_is_row_wise(small_data, fitted):
    full = fitted.transform(small_data.x1, small_data.x2)
    part = fitted.transform(small_data.x1[10:20], small_data.x2[10:20], batch_size=3)
    np.testing.assert_allclose(part.specific2, full.specific2[10:20], rtol=1e-5, atol=1e-6)


def test_clone_and_set_params(fitted):
    c = clone(fitted)
    assert c.get_params() == fitted.get_params()
    assert not hasattr(c, "model_")
    c.set_params(beta=5.0)
    assert c.beta == 5.0 and fitted.beta == 1.0


def test_same_seed_same_embeddings(small_data):
    a = _est().fit(small_data.x1, small_data.x2).transform(small_data.x1, small_data.x2)
    b = _est().fit(small_data.x1, small_data.x2).transform(small_data.x1, small_data.x2)
    assert np.array_equal(a.shared1, b.shared1) and np.array_equal(a.specific2, b.specific2)
    c = _est(random_state=1).fit(small_data.x1, small_data.x2).transform(
        small_data.x1, small_data.x2)
    assert not np.array_equal(a.shared1, c.shared1)


def test_fit_equals_fit_shared_then_fit_specific(small_data, fitted):
    two = _est().fit_shared(small_data.x1, small_data.x2)
    two.fit_specific(small_data.x1, small_data.x2)
    a = fitted.transform(small_data.x1, small_data.x2)
    b = two.transform(small_data.x1, small_data.x2)
    assert np.array_equal(a.specific1, b.specific1)


def test_save_load_roundtrip(tmp_path, small_data, fitted):
    path = fitted.save(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = DisentangledSSL.load(path, device="cpu")
    a = fitted.transform(small_data.x1, small_data.x2)
    b = loaded.transform(small_data.x1, small_data.x2)
    for k, v in a.as_dict().items():
        assert np.array_equal(v, b.as_dict()[k]), k
    assert loaded.get_params()["beta"] == fitted.beta
    assert loaded.history_ == json.loads(json.dumps(fitted.history_))


def test_save_refuses_existing_path(tmp_path, fitted):
    fitted.save(tmp_path / "m")
    with pytest.raises(DSSLError, match="already exists; pass overwrite=True"):
        fitted.save(tmp_path / "m")
    fitted.save(tmp_path / "m", overwrite=True)
    assert (tmp_path / "m" / "config.json").is_file()


def test_load_rejects_other_version_and_tampered_weights(tmp_path, fitted):
    path = fitted.save(tmp_path / "m")
    cfg = json.loads((path / "config.json").read_text())
    cfg["format_version"] = 99
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DSSLError, match="was written in model format 99"):
        DisentangledSSL.load(path)
    path2 = fitted.save(tmp_path / "m2")
    (path2 / "model.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(DSSLError, match=r"model.safetensors is damaged or not the file this "
                       r"model saved: its SHA-256 differs from the one recorded in .*config.json"):
        DisentangledSSL.load(path2)
    # Without a recorded digest (an older save), the file itself is still checked.
    cfg2 = json.loads((path2 / "config.json").read_text())
    del cfg2["weights_sha256"]
    (path2 / "config.json").write_text(json.dumps(cfg2))
    with pytest.raises(DSSLError, match="is not a readable safetensors file"):
        DisentangledSSL.load(path2)


def test_transform_before_fit_and_wrong_features(small_data, fitted):
    with pytest.raises(DSSLError, match="not fitted yet; call fit"):
        _est().transform(small_data.x1, small_data.x2)
    with pytest.raises(DSSLError, match="X2 has 15 features but the model was fitted with 16"):
        fitted.transform(small_data.x1, small_data.x2[:, :15])


@pytest.mark.parametrize(
    ("x1", "x2", "message"),
    [
        (np.ones((300, 4)) * np.nan, np.ones((300, 4)), "X1 contains NaN or infinite values"),
        (_R.random((300, 4)), _R.random((299, 4)),
         "modalities must be paired row by row but X1 has 300, X2 has 299 rows"),
        (_R.random(300), _R.random((300, 4)), r"X1 must be 2-D \(rows × features\)"),
        (_R.random((300, 2, 2, 2, 2)), _R.random((300, 4)),
         r"X1 has 5 dimensions; 'auto' reads 2-D arrays as vectors, 3-D as sequences"),
        (np.zeros((0, 4)), np.zeros((0, 4)), r"X1 is empty \(shape \(0, 4\)\)"),
        (_R.random((50, 4)), _R.random((50, 4)),
         "X1 has 50 rows, fewer than batch_size=64; set batch_size=32"),
        (np.array([["a", "b"]] * 300), _R.random((300, 2)), "X1 must be numeric"),
    ],
)
def test_bad_inputs(x1, x2, message):
    with pytest.raises(DSSLError, match=message):
        _est().fit(x1, x2)


@pytest.mark.parametrize("standardize", [False, True], ids=["raw", "standardized"])
def test_constant_columns_are_accepted(standardize):
    """As scikit-learn's StandardScaler: a constant column keeps scale 1 (no division by 0),
    on the training rows and on later rows with another value there."""
    x1 = _R.random((300, 4))
    x2 = np.c_[_R.random((300, 3)), np.ones(300)]
    est = _est(standardize=standardize, shared_epochs=1, specific_epochs=1).fit(x1, x2)
    later = np.c_[_R.random((50, 3)), np.full(50, 7.0)]
    for emb in (est.transform(x1, x2), est.transform(x1[:50], later)):
        assert all(np.isfinite(v).all() for v in emb.as_dict().values())
    if standardize:
        assert float(est.model_.input_scale_1[3]) == 1.0
        assert float(est.model_.input_mean_1[3]) == 1.0


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("beta", -1.0, "beta must be a finite number >= 0, got -1.0"),
        ("lam", float("inf"), "lam must be a finite number >= 0, got inf"),
        ("kappa", 0.0, "kappa must be a positive finite number, got 0.0"),
        ("lr", float("nan"), "lr must be a positive finite number, got nan"),
        ("batch_size", 1, "batch_size must be >= 2"),
    ],
)
def test_bad_params(small_data, param, value, message):
    with pytest.raises(DSSLError, match=message):
        _est(**{param: value}).fit(small_data.x1, small_data.x2)


def test_unknown_param_is_rejected():
    with pytest.raises(TypeError, match="unexpected keyword argument 'betta'"):
        DisentangledSSL(betta=1.0)


@pytest.mark.filterwarnings("ignore::disentangled_ssl.PerformanceWarning")  # AVX2 hosts
def test_bf16_trains_in_mixed_precision_with_float32_weights(small_data, fitted, tmp_path):
    est = _est(bf16=True).fit(small_data.x1, small_data.x2)
    assert all(p.dtype == torch.float32 for p in est.model_.parameters())
    mixed = est.transform(small_data.x1, small_data.x2)
    full = fitted.transform(small_data.x1, small_data.x2)
    assert np.isfinite(mixed.shared1).all() and np.isfinite(mixed.specific2).all()
    # Same seed and data: only the bf16 rounding of the forward passes differs.
    assert not np.array_equal(mixed.shared1, full.shared1)
    assert np.corrcoef(mixed.shared1.ravel(), full.shared1.ravel())[0, 1] > 0.9
    est.save(tmp_path / "m")
    assert DisentangledSSL.load(tmp_path / "m").get_params()["bf16"] is True
