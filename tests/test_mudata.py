"""MuData .h5mu modalities by name, joined on obs_names, and embeddings written back into obsm
of a copy of the input (the input itself untouched)."""

from __future__ import annotations

import hashlib
import importlib.util

import numpy as np
import pytest

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.cli import main
from disentangled_ssl.data.readers import read_multimodal

anndata = pytest.importorskip("anndata")
h5py = pytest.importorskip("h5py")
pd = pytest.importorskip("pandas")


def _write_elem(group, key, value):
    writer = getattr(getattr(anndata, "io", None), "write_elem", None)
    if writer is None:
        from anndata.experimental import write_elem as writer
    writer(group, key, value)


def write_h5mu(path, n=320, missing=12, seed=0):
    """A MuData file written with h5py + anndata alone (as mudata lays it out): modalities
    ``rna`` (all n cells, 20 genes) and ``prot`` (the first n - missing cells, in another
    order, 8 proteins), a planted shared factor in both, and a global obs label."""
    rng = np.random.default_rng(seed)
    cells = np.array([f"cell{k:04d}" for k in range(n)])
    shared = rng.integers(0, 2, n)
    rna = np.c_[shared[:, None] * 2.0 + rng.normal(size=(n, 4)), rng.normal(size=(n, 16))]
    rna[:, 19] = 1.0  # a gene expressed the same in every cell: accepted
    prot_cells = rng.permutation(n - missing)
    prot = np.c_[shared[prot_cells, None] * 2.0 + rng.normal(size=(n - missing, 3)),
                 rng.normal(size=(n - missing, 5))]
    mods = {
        "rna": anndata.AnnData(rna.astype(np.float32),
                               obs=pd.DataFrame(index=cells),
                               var=pd.DataFrame(index=[f"g{i}" for i in range(20)])),
        "prot": anndata.AnnData(prot.astype(np.float32),
                                obs=pd.DataFrame(index=cells[prot_cells]),
                                var=pd.DataFrame(index=[f"p{i}" for i in range(8)])),
    }
    obs = pd.DataFrame({"cell_type": np.where(shared == 1, "T", "B")}, index=cells)
    with h5py.File(path, "w") as f:
        f.attrs.update({"encoding-type": "MuData", "encoding-version": "0.1.0",
                        "encoder": "test"})
        f.create_group("mod")
        for name, adata in mods.items():
            _write_elem(f["mod"], name, adata)
        _write_elem(f, "obs", obs)
        _write_elem(f, "obsm", {})
    return shared, cells


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_modalities_by_name_joined_on_obs_names(tmp_path):
    shared, cells = write_h5mu(tmp_path / "cells.h5mu")
    data = read_multimodal([f"{tmp_path}/cells.h5mu:rna", f"{tmp_path}/cells.h5mu:prot"],
                           label_columns=["cell_type"], join="inner")
    assert data.view_names == ["rna", "prot"]
    assert [v.shape for v in data.views] == [(308, 20), (308, 8)]
    assert list(data.ids) == list(cells[:308])  # the first file's order, inner join
    expected = np.where(shared[:308] == 1, "T", "B")
    np.testing.assert_array_equal(data.labels["cell_type"], expected)
    with pytest.raises(DSSLError, match=r"has no modality 'atac'; its modalities are prot, rna"):
        read_multimodal([f"{tmp_path}/cells.h5mu:atac", f"{tmp_path}/cells.h5mu:rna"])
    with pytest.raises(DSSLError, match=r"is a MuData file: name the modality as "):
        read_multimodal([f"{tmp_path}/cells.h5mu", f"{tmp_path}/cells.h5mu:rna"])
    with pytest.raises(DSSLError, match=r"ID 'cell0308' is in .*cells.h5mu:rna but not in "
                                        r".*cells.h5mu:prot \(12 such IDs\)"):
        read_multimodal([f"{tmp_path}/cells.h5mu:rna", f"{tmp_path}/cells.h5mu:prot"])


def test_fit_transform_into_obsm_of_a_copy(tmp_path, capsys):
    path = tmp_path / "cells.h5mu"
    shared, cells = write_h5mu(path)
    before = _sha(path)
    views = ["--x1", f"{path}:rna", "--x2", f"{path}:prot", "--join", "inner"]
    small = ["--shared-epochs", "3", "--specific-epochs", "2", "--batch-size", "64",
             "--hidden-dim", "32", "--shared-dim", "8", "--specific-dim", "8", "--lr", "1e-3",
             "--standardize", "--device", "cpu", "--quiet"]
    assert main(["fit", *views, *small, "--out", str(tmp_path / "model")]) == 0
    out = tmp_path / "embedded.h5mu"
    assert main(["transform", "--model", str(tmp_path / "model"), *views, "--out", str(out),
                 "--device", "cpu"]) == 0
    assert "X_dssl_specific_prot (308, 8)" in capsys.readouterr().out
    assert _sha(path) == before  # the input is never modified
    with h5py.File(out, "r") as f:
        obsm = {k: np.asarray(f["obsm"][k]) for k in f["obsm"]}
        assert {"X_dssl_shared", "X_dssl_shared_rna", "X_dssl_shared_prot",
                "X_dssl_specific_rna", "X_dssl_specific_prot"} <= set(obsm)
        assert list(f["mod"]) == ["prot", "rna"]  # the rest of the file is kept
    full = obsm["X_dssl_shared"]
    assert full.shape == (320, 16)
    assert np.isnan(full[308:]).all() and np.isfinite(full[:308]).all()  # not in prot: NaN
    # The shared code carries the planted factor of the embedded cells.
    from disentangled_ssl import linear_probe

    y = {"shared": shared[:308]}
    acc = linear_probe(full[:200], {"shared": y["shared"][:200]}, full[200:308],
                       {"shared": y["shared"][200:]})["shared"]
    assert acc > 0.8, acc
    if importlib.util.find_spec("mudata") is not None:  # read back by mudata where installed
        import mudata

        back = mudata.read_h5mu(out)
        assert back.obsm["X_dssl_specific_rna"].shape == (320, 8)


def test_obsm_copy_refusals(tmp_path, capsys):
    path = tmp_path / "cells.h5mu"
    write_h5mu(path, n=200, missing=0)
    views = ["--x1", f"{path}:rna", "--x2", f"{path}:prot"]
    small = ["--shared-epochs", "1", "--specific-epochs", "1", "--batch-size", "64",
             "--hidden-dim", "16", "--shared-dim", "4", "--specific-dim", "4", "--device",
             "cpu", "--quiet"]
    assert main(["fit", *views, *small, "--out", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    code = main(["transform", "--model", str(tmp_path / "m"), *views, "--out", str(path),
                 "--overwrite", "--device", "cpu"])
    assert code == 2
    assert "is the input file; the embeddings are written to a copy" in capsys.readouterr().err
    code = main(["transform", "--model", str(tmp_path / "m"), *views, "--out",
                 str(tmp_path / "e.h5ad"), "--device", "cpu"])
    assert code == 2
    assert "must be a .h5ad file too" in capsys.readouterr().err
    assert not (tmp_path / "e.h5ad").exists()


def test_cli_refuses_a_missing_modality_and_unmatched_cells(tmp_path, capsys):
    """`dssl fit` on a modality the .h5mu lacks, or on modalities whose obs_names do not all
    match (exact join): exit 2, one line, no model written."""
    path = tmp_path / "cells.h5mu"
    write_h5mu(path, n=200, missing=10)
    small = ["--shared-epochs", "1", "--specific-epochs", "1", "--batch-size", "64",
             "--device", "cpu", "--quiet"]
    for views, message in [
        (["--x1", f"{path}:atac", "--x2", f"{path}:rna"],
         "has no modality 'atac'; its modalities are prot, rna"),
        (["--x1", f"{path}:rna", "--x2", f"{path}:prot"],
         "but not in"),
    ]:
        code = main(["fit", *views, *small, "--out", str(tmp_path / "m")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0], err
        assert not (tmp_path / "m").exists()


def test_two_matrices_of_one_file_get_distinct_view_names():
    """Two views of one .h5ad would both be named after its stem, and their
    obsm["X_dssl_specific_<view>"] would overwrite each other."""
    from disentangled_ssl.data.readers import _view_names

    assert _view_names(["cite.h5ad", "cite.h5ad:obsm/protein"]) == ["cite", "cite_obsm_protein"]
    assert _view_names(["cells.h5mu:rna", "cells.h5mu:prot"]) == ["rna", "prot"]
    assert _view_names(["d.npz:x1", "d.npz:x2"]) == ["d_x1", "d_x2"]
    assert _view_names(["x.npy", "x.npy"]) == ["x_1", "x_2"]
