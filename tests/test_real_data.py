from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.base import clone
from sklearn.datasets import load_digits
from torch import nn

from disentangled_ssl import DisentangledSSL, DSSLError, linear_probe
from disentangled_ssl.cli import main
from disentangled_ssl.data.datasets import (
    load_dataset,
    load_digits_halves,
    load_uci_multiple_features,
    make_synthetic_multimodal,
)

TINY = dict(shared_dim=8, specific_dim=8, hidden_dim=32, shared_epochs=2, specific_epochs=1,
            batch_size=64, random_state=0, verbose=False, device="cpu")


# --------------------------------------------------------------------------- CLI round trip
def test_csv_with_ids_and_labels_round_trips_through_fit_and_transform(tmp_path, rng):
    n = 200
    z = rng.normal(size=(n, 3))
    x1 = z @ rng.normal(size=(3, 5)) + 0.1 * rng.normal(size=(n, 5))
    x2 = z @ rng.normal(size=(3, 4)) + 0.1 * rng.normal(size=(n, 4))
    ids = [f"cell-{k}" for k in range(n)]
    kind = np.where(z[:, 0] > 0, "pos", "neg")
    lines1 = ["cell,type,f1,f2,f3,f4,f5"] + [
        f"{i},{t}," + ",".join(f"{v:.6f}" for v in row) for i, t, row in zip(ids, kind, x1)]
    order = rng.permutation(n)  # the second file lists the cells in another order
    lines2 = ["g1,g2,cell,g3,g4"] + [
        f"{x2[k, 0]:.6f},{x2[k, 1]:.6f},{ids[k]},{x2[k, 2]:.6f},{x2[k, 3]:.6f}" for k in order]
    (tmp_path / "rna.csv").write_text("\n".join(lines1) + "\n")
    (tmp_path / "protein.csv").write_text("\n".join(lines2) + "\n")
    inputs = ["--x1", str(tmp_path / "rna.csv"), "--x2", str(tmp_path / "protein.csv"),
              "--id-column", "cell", "--label-columns", "type"]
    assert main(["fit", *inputs, "--out", str(tmp_path / "model"), "--shared-dim", "8",
                 "--specific-dim", "8", "--hidden-dim", "32", "--shared-epochs", "2",
                 "--specific-epochs", "1", "--batch-size", "64", "--quiet", "--device", "cpu",
                 "--standardize"]) == 0
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["n_features_in"] == [5, 4] and config["params"]["standardize"] is True
    assert main(["transform", "--model", str(tmp_path / "model"), *inputs,
                 "--out", str(tmp_path / "emb.npz")]) == 0
    emb = np.load(tmp_path / "emb.npz")
    assert list(emb["id"]) == ids and list(emb["type"]) == list(kind)
    assert emb["shared1"].shape == (n, 8) and emb["specific2"].shape == (n, 8)
    # The joined rows are embedded exactly as the Python API embeds the aligned arrays.
    model = DisentangledSSL.load(tmp_path / "model")
    direct = model.transform(x1.astype(np.float32), x2.astype(np.float32))
    np.testing.assert_allclose(emb["shared2"], direct.shared2, atol=1e-4)


def test_cli_reader_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "a.csv").write_text("id,f\nx,1\ny,2\nz,3\n")
    (tmp_path / "b.csv").write_text("id,g\nx,1\ny,2\n")
    code = main(["fit", "--x1", str(tmp_path / "a.csv"), "--x2", str(tmp_path / "b.csv"),
                 "--id-column", "id", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2
    assert "dssl: error: ID 'z' is in" in err and "--join inner" in err


# --------------------------------------------------------------------------- standardize
def test_standardize_fits_on_training_rows_and_is_saved(tmp_path, small_data):
    x1 = small_data.x1 * 100.0 + 50.0
    est = DisentangledSSL(**TINY, standardize=True).fit(x1[:512], small_data.x2[:512])
    mean = est.model_.input_mean_0.numpy()
    np.testing.assert_allclose(mean, x1[:512].mean(0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(est.model_.input_scale_0.numpy(), x1[:512].std(0), rtol=1e-4)
    # transform reuses the training statistics: other rows do not refit them
    est.transform(x1[512:], small_data.x2[512:])
    np.testing.assert_array_equal(est.model_.input_mean_0.numpy(), mean)
    est.save(tmp_path / "m")
    weights = load_file(str(tmp_path / "m" / "model.safetensors"))
    np.testing.assert_allclose(weights["input_mean_0"].numpy(), mean)
    again = DisentangledSSL.load(tmp_path / "m")
    np.testing.assert_allclose(again.transform(x1, small_data.x2).shared1,
                               est.transform(x1, small_data.x2).shared1, atol=1e-6)
    # a scaled input under standardize=True gives the same training signal as the original
    ref = DisentangledSSL(**TINY, standardize=True).fit(small_data.x1[:512],
                                                         small_data.x2[:512])
    np.testing.assert_allclose(ref.transform(small_data.x1, small_data.x2).shared1,
                               est.transform(x1, small_data.x2).shared1, atol=2e-3)
    plain = DisentangledSSL(**TINY).fit(small_data.x1[:512], small_data.x2[:512])
    assert "input_mean_0" not in dict(plain.model_.named_buffers())


# --------------------------------------------------------------------------- custom encoders
class TinyCNN(nn.Module):
    def __init__(self, out_dim: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                                 nn.Linear(4 * 8 * 4, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_custom_cnn_encoders_fit_transform_clone_save_load(tmp_path):
    data = load_digits_halves(as_images=True).subset(np.arange(256))
    torch.manual_seed(0)
    encoders = [TinyCNN(), TinyCNN()]
    before = [p.detach().clone() for p in encoders[0].parameters()]
    est = DisentangledSSL(**TINY, shared_encoders=encoders, standardize=True)
    est.fit(*data.views)
    # the modules passed in are deep-copied, never trained in place
    for p, q in zip(encoders[0].parameters(), before):
        assert torch.equal(p, q)
    assert isinstance(est.model_.shared[0], TinyCNN) and est.model_.shared[0] is not encoders[0]
    emb = est.transform(*data.views)
    assert emb.shared1.shape == (256, 8) and emb.specific2.shape == (256, 8)
    assert est.n_features_in_ == [32, 32]
    # clone gives an independent, unfitted estimator with equal-but-distinct modules
    other = clone(est)
    assert other.shared_encoders[0] is not encoders[0] and not hasattr(other, "model_")
    refit = other.fit(*data.views).transform(*data.views)
    np.testing.assert_allclose(refit.shared1, emb.shared1, atol=1e-5)  # same start, same seed
    est.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["params"]["shared_encoders"] == "custom:TinyCNN,TinyCNN"
    with pytest.raises(DSSLError, match=r"saved with custom shared_encoders \(TinyCNN,TinyCNN\); "
                       r"their code is not saved: pass the same modules again"):
        DisentangledSSL.load(tmp_path / "m")
    with pytest.raises(DSSLError, match=r"saved with shared_encoders 'custom:TinyCNN,TinyCNN' "
                       r"but got 'custom:Linear,Linear'"):
        DisentangledSSL.load(tmp_path / "m", shared_encoders=[nn.Linear(2, 2), nn.Linear(2, 2)])
    loaded = DisentangledSSL.load(tmp_path / "m", shared_encoders=[TinyCNN(), TinyCNN()])
    np.testing.assert_allclose(loaded.transform(*data.views).shared1, emb.shared1, atol=1e-6)


def test_custom_encoder_parameter_errors(small_data):
    with pytest.raises(DSSLError, match=r"shared_encoders\[1\] is a str, not a torch.nn.Module"):
        DisentangledSSL(shared_encoders=[nn.Linear(16, 8), "mlp"]).fit(small_data.x1,
                                                                      small_data.x2)
    # Every method takes them now; DMVAE puts a linear Gaussian head on each.
    dmvae = DisentangledSSL(**TINY, method="dmvae", epochs=1,
                            shared_encoders=[nn.Linear(16, 8), nn.Linear(16, 8)])
    assert dmvae.fit([small_data.x1, small_data.x2]).transform(
        [small_data.x1, small_data.x2]).shared1.shape == (small_data.x1.shape[0], 8)
    # The methods built on the standard model take them like DisentangledSSL does.
    clip = DisentangledSSL(**{**TINY, "shared_dim": 3}, method="clip", epochs=1,
                           shared_encoders=[nn.Linear(16, 3), nn.Linear(16, 3)])
    emb = clip.fit([small_data.x1, small_data.x2]).transform([small_data.x1, small_data.x2])
    assert emb.shared1.shape == (small_data.x1.shape[0], 3)
    assert isinstance(clip.model_.shared[0], nn.Linear)
    # 4-D arrays are images now (the image kind's CNN), with or without custom encoders.
    images = np.random.default_rng(0).random((64, 1, 8, 4)).astype(np.float32)
    est = DisentangledSSL(**TINY).fit(images, images)
    assert est.modalities_[0].kind == "image"


# --------------------------------------------------------------------------- datasets
def test_uci_multiple_features_shipped_copy():
    data = load_uci_multiple_features(views=list(("pix", "fou", "fac", "kar", "zer", "mor")))
    assert [v.shape for v in data.views] == [(2000, 240), (2000, 76), (2000, 216), (2000, 64),
                                              (2000, 47), (2000, 6)]
    assert np.bincount(data.labels["digit"]).tolist() == [200] * 10
    # pixel view: integer intensities 0..6; first Fourier coefficient of row 0 as in the CSV
    assert data.views[0].max() == 6.0 and np.all(data.views[0] == np.round(data.views[0]))
    assert data.views[1][0, 0] == pytest.approx(0.065882, abs=1e-6)
    with pytest.raises(DSSLError, match=r"unknown UCI view\(s\) \['rgb'\]"):
        load_uci_multiple_features(views=["rgb"])


def test_digits_halves_and_registry():
    data = load_dataset("digits-halves")
    assert len(data) == 1797 and data.view_names == ["left", "right"]
    assert all(np.ptp(v, axis=0).min() > 0 for v in data.views)  # constant pixels dropped
    images = load_digits_halves(as_images=True)
    assert images.views[0].shape == (1797, 1, 8, 4)
    np.testing.assert_array_equal(
        np.concatenate([images.views[0], images.views[1]], axis=3)[:, 0],
        load_digits().images)
    with pytest.raises(DSSLError, match=r"unknown dataset 'mnist'"):
        load_dataset("mnist")


def test_nci_molecules_views():
    pytest.importorskip("rdkit")
    from disentangled_ssl.data.datasets import load_nci_molecules

    data = load_nci_molecules(n_molecules=60)
    assert len(data) == 60 and data.view_names == ["morgan", "descriptors"]
    fp, desc = data.views
    assert set(np.unique(fp)) == {0.0, 1.0} and np.isfinite(desc).all()
    assert "MolLogP" not in data.feature_names[1] and "TPSA" in data.feature_names[1]
    assert data.labels["logp_high"].sum() == 30


# --------------------------------------------------------------------------- M = 3 modalities
def test_synthetic_multimodal_generator_structure():
    data = make_synthetic_multimodal(500, n_modalities=4, shared_dim=3, private_dim=2,
                                     x_dim=12, seed=1)
    assert len(data.views) == 4 and sorted(data.labels) == ["y1", "y2", "y3", "y4", "yc"]
    assert all(abs(v.mean() - 0.5) < 0.01 for v in data.labels.values())
    # each view has rank shared_dim + private_dim (linear in its latents)
    assert all(np.linalg.matrix_rank(v.astype(np.float64), tol=1e-3) == 5 for v in data.views)
    with pytest.raises(DSSLError, match=r"n_modalities must be >= 2"):
        make_synthetic_multimodal(10, n_modalities=1)


def test_three_modalities_each_specific_code_holds_its_own_private_label():
    data = make_synthetic_multimodal(2400, n_modalities=3, shared_dim=6, private_dim=6,
                                     x_dim=24, seed=0)
    train, test = data.split(0.25, seed=0)
    est = DisentangledSSL(shared_dim=16, specific_dim=16, hidden_dim=64, shared_epochs=12,
                          specific_epochs=12, batch_size=128, lr=1e-3, random_state=0,
                          verbose=False, device="cpu").fit(*train.views)
    tr, te = est.transform(*train.views), est.transform(*test.views)
    for i in range(3):
        acc = linear_probe(tr.specific_list[i], train.labels, te.specific_list[i], test.labels)
        own = acc[f"y{i + 1}"]
        others = [acc[f"y{j + 1}"] for j in range(3) if j != i]
        assert own > 0.65, acc
        assert max(others) < 0.58, acc   # chance is 0.5 on a balanced label
        assert own - max(others) > 0.1, acc
    shared = linear_probe(tr.shared, train.labels, te.shared, test.labels)
    assert shared["yc"] > 0.7, shared


# --------------------------------------------------------------------------- benchmark
def test_benchmark_real_cli_writes_table(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["benchmark", "real", "--datasets", "digits-halves", "--seeds", "0",
            "--shared-epochs", "1", "--specific-epochs", "1", "--hidden-dim", "16",
            "--shared-dim", "8", "--specific-dim", "8", "--device", "cpu", "--quiet",
            "--out", str(out)]
    assert main(args) == 0
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    value = {(r["representation"], r["metric"]): float(r["value"]) for r in rows}
    assert {r["representation"] for r in rows} == {"shared", "specific", "both", "clip", "raw",
                                                   "random"}
    assert value[("random", "top1")] == pytest.approx(1 / 400)
    assert value[("random", "mrr")] == pytest.approx(sum(1 / k for k in range(1, 401)) / 400)
    assert value[("raw", "probe")] > 0.9          # digits are easy for a linear probe
    assert value[("raw", "top10")] > 5 * 10 / 400  # CCA retrieval far above chance
    assert value[("raw", "rev_top10")] > 5 * 10 / 400  # and the other way
    assert value[("random", "rev_top1")] == pytest.approx(1 / 400)
    assert ("shared", "rev_mrr") in value and ("specific", "rev_mrr") not in value
    summary = (out / "summary.md").read_text()
    assert "| DisentangledSSL shared |" in summary and "| CLIP |" in summary
    assert "| probe digit | 1→2 top-1 |" in summary and "| 2→1 MRR |" in summary
    assert main(args) == 2  # refuses to overwrite
    assert "already holds benchmark results" in capsys.readouterr().err


def test_cca_and_random_baselines(rng):
    from disentangled_ssl.evaluation.baselines import CCA, cca_retrieval, random_retrieval

    z = rng.normal(size=(600, 3))
    x1 = np.hstack([z @ rng.normal(size=(3, 6)), rng.normal(size=(600, 4))])
    x2 = np.hstack([z @ rng.normal(size=(3, 5)), rng.normal(size=(600, 2))])
    cca = CCA(n_components=3, reg=1e-3).fit(x1[:500], x2[:500])
    assert cca.correlations_.min() > 0.99     # the three shared directions are found
    u, v = cca.transform(x1[500:], 0), cca.transform(x2[500:], 1)
    assert all(abs(np.corrcoef(u[:, k], v[:, k])[0, 1]) > 0.99 for k in range(3))
    assert cca_retrieval([x1[:500], x2[:500]], [x1[500:], x2[500:]], 3, 1e-3)["top1"] > 0.9
    assert random_retrieval(4) == {"top1": 0.25, "top5": 1.0, "top10": 1.0,
                                   "mrr": pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)}
    with pytest.raises(DSSLError, match=r"n_items must be >= 1"):
        random_retrieval(0)
