from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from disentangled_ssl import DSSLError
from disentangled_ssl.data.published import (
    affect_labels,
    drug_split,
    read_infocore_cp,
    read_infocore_ge,
    read_multibench_affect,
    safe_load_pickle,
)
from disentangled_ssl.evaluation.retrieval import by_group_retrieval


def dump(path, obj):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)
    return path


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_safe_unpickler_refuses_code_and_reads_arrays(tmp_path):
    with pytest.raises(DSSLError, match=r"refusing to unpickle (posix|os|nt)\.system: only numpy "
                       r"arrays and built-in containers"):
        safe_load_pickle(dump(tmp_path / "evil.pkl", {"train": Evil()}))
    with pytest.raises(DSSLError, match=r"refusing to unpickle collections.Counter"):
        from collections import Counter
        safe_load_pickle(dump(tmp_path / "c.pkl", Counter("aab")))
    ok = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [np.float64(1.5), ("x", 2)],
          "c": np.array(["u", "v"])}
    back = safe_load_pickle(dump(tmp_path / "ok.pkl", ok))
    assert np.array_equal(back["a"], ok["a"]) and back["b"][1] == ("x", 2)
    (tmp_path / "trunc.pkl").write_bytes(pickle.dumps(ok)[:40])
    with pytest.raises(DSSLError, match=r"trunc.pkl is not a readable pickle of arrays"):
        safe_load_pickle(tmp_path / "trunc.pkl")


def affect_split(rng, n, t=6, dims=(3, 2, 4), labels=None):
    vision = rng.normal(size=(n, t, dims[0]))
    audio = rng.normal(size=(n, t, dims[1]))
    text = rng.normal(size=(n, t, dims[2]))
    text[:, :2] = 0.0  # left padding of two steps
    audio[0, 3, 0] = -np.inf
    y = rng.normal(size=(n, 1, 1)) if labels is None else labels
    return {"vision": vision, "audio": audio, "text": text, "labels": y,
            "id": np.array([[f"clip{k}"] for k in range(n)])}


def test_multibench_affect_reader_follows_the_loader(tmp_path, rng):
    train = affect_split(rng, 10)
    train["text"][4] = 0.0  # an all-zero text row is dropped, from every key
    content = {"train": train, "valid": affect_split(rng, 5), "test": affect_split(rng, 6)}
    path = dump(tmp_path / "mosi_data.pkl", content)
    data = read_multibench_affect(path, "mosi", modalities=("vision", "audio", "text"),
                                  max_seq_len=6, pooling="none")
    tr = data["train"]
    assert len(tr) == 9 and "clip4" not in list(tr.ids)
    # front-trimmed at the first non-zero text step (2), then zero-padded at the end
    np.testing.assert_allclose(tr.views[0][0, :4], train["vision"][0, 2:], rtol=1e-6)
    assert np.all(tr.views[0][0, 4:] == 0)
    assert tr.views[1][0, 1, 0] == 0.0  # audio -inf -> 0 (step 3 is step 1 after trimming)
    # mean pooling averages the real (non-padded) steps only
    pooled = read_multibench_affect(path, "mosi", max_seq_len=6)["train"]
    np.testing.assert_allclose(pooled.views[0][0], train["vision"][0, 2:].mean(0), rtol=1e-5)
    assert pooled.view_names == ["vision", "text"] and pooled.views[1].shape == (9, 4)
    flat = read_multibench_affect(path, "mosi", max_seq_len=3, pooling="flatten")["test"]
    assert flat.views[0].shape == (6, 9)
    scores = train["labels"].reshape(-1)[np.arange(10) != 4]
    assert np.array_equal(tr.labels["label"], (scores >= 0).astype(int))


def test_affect_label_policies():
    y = np.array([-1.2, 0.0, 2.0, -0.0, 0.4])
    labels, keep = affect_labels(y, "mosi", "factorcl")
    assert labels.tolist() == [0, 1, 1, 1, 1] and keep.all()
    labels, keep = affect_labels(y, "mosei", "multibench")
    assert labels.tolist() == [0, 1, 1] and keep.tolist() == [True, False, True, False, True]
    labels, _ = affect_labels(np.array([0, 1, 1, 0]), "sarcasm")
    assert labels.tolist() == [0, 1, 1, 0]
    with pytest.raises(DSSLError, match=r"unknown affect dataset 'iemocap'"):
        affect_labels(y, "iemocap")


def test_affect_reader_errors(tmp_path, rng):
    with pytest.raises(DSSLError, match=r"has no split 'valid'"):
        read_multibench_affect(dump(tmp_path / "a.pkl", {"train": affect_split(rng, 4)}),
                               splits=("train", "valid"))
    bad = affect_split(rng, 4)
    del bad["labels"]
    with pytest.raises(DSSLError, match=r"\['train'\] lacks \['labels'\]"):
        read_multibench_affect(dump(tmp_path / "b.pkl", {"train": bad}), splits=("train",))
    bad = affect_split(rng, 4)
    bad["vision"] = bad["vision"][:, :, 0]
    with pytest.raises(DSSLError, match=r"\['vision'\] has shape \(4, 6\); expected \(4, T, D\)"):
        read_multibench_affect(dump(tmp_path / "c.pkl", {"train": bad}), splits=("train",))


def test_infocore_ge_and_cp_readers(tmp_path, rng):
    genes, mol_dim = 7, 5
    smiles = {"d1": "CCO", "d2": "c1ccccc1", "d3": "CCN"}
    vectors = {s: rng.normal(size=mol_dim) for s in smiles.values()}
    controls = {"b1": rng.normal(size=genes), "b2": rng.normal(size=genes)}
    inst = {}
    expected = {}
    for k, (cell, drug, batch) in enumerate([("A375", "d1", "b1"), ("A375", "d1", "b2"),
                                             ("MCF7", "d2", "b1"), ("MCF7", "d3", "b2"),
                                             ("XYZ", "d1", "b1"), ("A375", "d9", "b1"),
                                             ("A549", "d2", "b3")]):
        expr = rng.normal(size=genes)
        inst[f"P{k}_{cell}_x"] = (batch, "p", drug, 0, 0, 0, 0, 0, 0, cell, expr)
        if cell != "XYZ" and drug != "d9" and batch != "b3":
            expected.setdefault((cell, drug), []).append(expr - controls[batch])
    paths = [dump(tmp_path / n, obj) for n, obj in [("inst.pkl", inst), ("ctl.pkl", controls),
                                                    ("id_smiles", smiles),
                                                    ("m2v.pkl", vectors)]]
    data = read_infocore_ge(*paths)
    assert list(data.ids) == ["A375d1", "MCF7d2", "MCF7d3"]
    raw = np.clip(np.stack([np.mean(expected[k], 0) for k in sorted(expected)]), -1.5, 1.5)
    z = (raw - raw.mean(0)) / raw.std(0)
    np.testing.assert_allclose(data.views[0], z, rtol=1e-4, atol=1e-5)
    assert data.labels["drug"].tolist() == ["CCO", "c1ccccc1", "CCN"]
    assert np.abs(data.views[1]).max() <= 2.5
    subset = read_infocore_ge(*paths, keys=["P2_MCF7_x", "P3_MCF7_x"])
    assert list(subset.ids) == ["MCF7d2", "MCF7d3"]

    cp = {f"k{k}": (0, 0, 0, drug, smiles[drug], plate, rng.normal(size=genes))
          for k, (drug, plate) in enumerate([("d1", "p1"), ("d1", "p2"), ("d2", "p1"),
                                             ("d3", "p1")])}
    cp_data = read_infocore_cp(dump(tmp_path / "cp.pkl", cp), paths[3])
    assert list(cp_data.ids) == ["d1", "d2", "d3"] and cp_data.labels["batch"][0] == "p1"
    with pytest.raises(DSSLError, match=r"entry 'k0' is not a sequence with drug \[3\]"):
        read_infocore_cp(dump(tmp_path / "bad.pkl", {"k0": (1, 2)}), paths[3])


def test_drug_split_and_by_group_retrieval(rng):
    drugs = np.repeat([f"d{k}" for k in range(50)], 3)
    train, held = drug_split(drugs, 0.8, seed=0)
    assert set(drugs[train]).isdisjoint(drugs[held])
    assert abs(train.size / drugs.size - 0.8) < 0.05
    x = rng.normal(size=(60, 4))
    groups = np.array(["a"] * 30 + ["b"] * 25 + ["c"] * 5)
    perfect = by_group_retrieval(x, x, groups)
    assert perfect["top1"] == 1.0 and perfect["mrr"] == 1.0
    with pytest.raises(DSSLError, match=r"no group has more than 40 items"):
        by_group_retrieval(x, x, groups, min_size=40)


TRAIN_ARGS = ["--seeds", "0", "--shared-epochs", "2", "--specific-epochs", "1",
              "--hidden-dim", "16", "--shared-dim", "4", "--specific-dim", "4",
              "--batch-size", "16", "--device", "cpu"]


def test_dssl_benchmark_multibench_on_fixture(tmp_path, rng, one_thread):
    import json

    from disentangled_ssl.cli import main

    content = {s: affect_split(rng, n) for s, n in (("train", 40), ("valid", 8), ("test", 20))}
    path = dump(tmp_path / "mosi_data.pkl", content)
    out = tmp_path / "mosi.json"
    assert main(["benchmark", "multibench", "--file", str(path), "--dataset", "mosi",
                 "--max-seq-len", "6", "--out", str(out), *TRAIN_ARGS]) == 0
    result = json.loads(out.read_text())
    assert result["n_train"] == 40 and result["n_test"] == 20
    run = result["runs"][0]
    assert set(run["probe"]) == {"shared", "specific", "both", "raw"}
    assert all(0.0 <= v <= 1.0 for v in run["probe"].values())
    assert set(run["retrieval"]) == {"top1", "top5", "top10", "mrr"}


def test_dssl_benchmark_infocore_cp_on_fixture(tmp_path, rng):
    import json

    from disentangled_ssl.cli import main

    n_drugs, dim = 80, 6
    vectors = {f"S{k}": rng.normal(size=5) for k in range(n_drugs)}
    inst = {f"k{k}": (0, 0, 0, f"d{k}", f"S{k}", f"plate{k % 2}", rng.normal(size=dim))
            for k in range(n_drugs)}
    out = tmp_path / "cp.json"
    assert main(["benchmark", "infocore", "--kind", "cp", "--inst-info",
                 str(dump(tmp_path / "inst_info_drug_cp.pkl", inst)), "--mol-repr",
                 str(dump(tmp_path / "m2v.pkl", vectors)), "--out", str(out),
                 *TRAIN_ARGS]) == 0
    result = json.loads(out.read_text())
    assert result["n_train"] + result["n_heldout"] == n_drugs
    assert result["random_whole"]["top1"] == pytest.approx(1 / result["n_heldout"])
    assert set(result["runs"][0]["whole"]) == {"top1", "top5", "top10", "mrr"}


def ordered_affect_split(rng, n, t=8):
    """MultiBench layout whose label lives only in the temporal order: feature 0 of vision
    and of text rises (label +1) or falls (-1) over time, each row centred over time, so the
    time average of every feature carries nothing (text never zero: no trimming)."""
    y = rng.choice([-1.0, 1.0], n)
    ramp = np.linspace(-1, 1, t)

    def view(d):
        x = rng.normal(scale=0.3, size=(n, t, d))
        x[:, :, 0] += y[:, None] * rng.uniform(0.5, 1.5, (n, 1)) * ramp[None, :]
        return x - x.mean(axis=1, keepdims=True) + 5.0  # + 5: text is never all zero

    return {"vision": view(3), "audio": rng.normal(size=(n, t, 2)), "text": view(4),
            "labels": y.reshape(n, 1, 1), "id": np.array([[f"clip{k}"] for k in range(n)])}


@pytest.mark.usefixtures("one_thread")
def test_multibench_sequences_beat_mean_pooling_with_every_baseline_row(tmp_path, rng):
    """Through `dssl benchmark multibench`: DisentangledSSL on padded sequences predicts the
    order-coded label far above chance, the mean-pooled ablation stays at chance, and every
    baseline has its row (tidy CSV + markdown beside the JSON)."""
    import csv
    import json

    from disentangled_ssl.cli import main

    content = {s: ordered_affect_split(rng, n)
               for s, n in (("train", 256), ("valid", 96), ("test", 128))}
    path = dump(tmp_path / "sarcasm.pkl", content)
    out = tmp_path / "sarcasm.json"
    args = ["--seeds", "0", "--shared-epochs", "8", "--specific-epochs", "3",
            "--hidden-dim", "32", "--shared-dim", "16", "--specific-dim", "16",
            "--batch-size", "64", "--lr", "0.001", "--device", "cpu"]
    assert main(["benchmark", "multibench", "--file", str(path), "--dataset", "sarcasm",
                 "--max-seq-len", "8", "--out", str(out), *args]) == 0
    result = json.loads(out.read_text())
    run = result["runs"][0]
    assert result["pooling"] == "sequence" and run["beta"] in (0.1, 1.0)
    assert run["probe"]["shared"] > 0.85, run
    assert max(run["ablation_mean_pooling"].values()) < 0.65, run  # chance is 0.5
    assert set(result["baselines"]) == {"clip", "factorcl", "joint", "focal", "simclr"}
    for method, runs in result["baselines"].items():
        assert "shared" in runs[0]["probe"], method
        valid = runs[0]["valid_probe"]  # one valid score per lr of the grid; the best chosen
        assert set(valid) == {"0.0001", "0.001"}, method
        assert valid[repr(runs[0]["lr"])] == max(valid.values()), method
        assert len(runs[0]["loss_curves"][method]) == 8, method  # 8 epochs recorded
    assert run["lr"] in (1e-4, 1e-3) and len(run["loss_curves"]["shared"]) == 8
    assert (tmp_path / "sarcasm_loss_curves.png").read_bytes()[:4] == b"\x89PNG"
    with open(out.with_suffix(".csv")) as fh:
        rows = list(csv.DictReader(fh))
    assert set(rows[0]) == {"dataset", "seed", "representation", "metric", "value"}
    reps = {r["representation"] for r in rows}
    assert {"DisentangledSSL shared", "CLIP shared", "FactorCL specific", "JointOpt both",
            "DisentangledSSL shared, mean-pooled (ablation)"} <= reps
    assert "| majority class |" in out.with_suffix(".md").read_text()


def test_infocore_planted_link_beats_chance_with_every_baseline_row(tmp_path, rng):
    """Generated Cell Painting-layout files whose phenotype is a linear image of the
    molecule's vector plus noise: DisentangledSSL's shared codes retrieve the right molecule
    far above chance over the held-out library, and CLIP / JointOpt / FOCAL have their rows
    (tidy CSV + markdown beside the JSON)."""
    import csv
    import json

    from disentangled_ssl.cli import main

    n_drugs, mol_dim, dim = 200, 8, 12
    vectors = {f"S{k}": rng.normal(size=mol_dim) for k in range(n_drugs)}
    mixing = rng.normal(size=(mol_dim, dim))
    inst = {f"k{k}": (0, 0, 0, f"d{k}", f"S{k}", f"plate{k % 2}",
                      vectors[f"S{k}"] @ mixing + 0.3 * rng.normal(size=dim))
            for k in range(n_drugs)}
    out = tmp_path / "cp.json"
    assert main(["benchmark", "infocore", "--kind", "cp", "--inst-info",
                 str(dump(tmp_path / "inst_info_drug_cp.pkl", inst)), "--mol-repr",
                 str(dump(tmp_path / "m2v.pkl", vectors)), "--out", str(out),
                 "--seeds", "0", "--shared-epochs", "30", "--specific-epochs", "1",
                 "--hidden-dim", "64", "--shared-dim", "16", "--specific-dim", "16",
                 "--batch-size", "32", "--device", "cpu"]) == 0
    result = json.loads(out.read_text())
    chance = result["random_whole"]["top10"]
    assert result["runs"][0]["whole"]["top10"] > 2.5 * chance, (result["runs"][0], chance)
    assert set(result["baselines"]) == {"clip", "joint", "focal"}
    for method, runs in result["baselines"].items():  # lr chosen on training drugs only
        valid = runs[0]["valid_mrr"]
        assert set(valid) == {"0.0001", "0.001"}, method
        assert valid[repr(runs[0]["lr"])] == max(valid.values()), method
    assert (tmp_path / "cp_loss_curves.png").exists()
    with open(out.with_suffix(".csv")) as fh:
        reps = {r["representation"] for r in csv.DictReader(fh)}
    assert {"DisentangledSSL shared", "CLIP shared", "JointOpt shared", "FOCAL shared",
            "CCA", "random"} <= reps
    assert "whole_top10" in out.with_suffix(".md").read_text()


def test_cli_refuses_a_pickle_of_another_layout_in_one_line(tmp_path, rng, capsys):
    """`dssl benchmark multibench` on a pickle without a valid split: exit 2, one line, and
    none of the JSON / CSV / markdown outputs written."""
    from disentangled_ssl.cli import main

    path = dump(tmp_path / "mosi_data.pkl", {"train": affect_split(rng, 8)})
    out = tmp_path / "mosi.json"
    code = main(["benchmark", "multibench", "--file", str(path), "--dataset", "mosi",
                 "--out", str(out), *TRAIN_ARGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("dssl: error: ") and "has no split 'valid'" in err[0]
    assert not any(tmp_path.glob("mosi.*"))


def test_multibench_refuses_three_modalities_before_training(tmp_path):
    from disentangled_ssl.experiments.real import RealBenchmarkConfig, run_multibench

    with pytest.raises(DSSLError, match=r"pairs two modalities \(FactorCL's objective needs "
                       r"exactly two\), got 3: vision,audio,text; pass two"):
        run_multibench(tmp_path / "never_read.pkl", "mosi", RealBenchmarkConfig(),
                       modalities=("vision", "audio", "text"))
