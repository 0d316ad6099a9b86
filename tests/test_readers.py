from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from disentangled_ssl import DSSLError
from disentangled_ssl.data.readers import (
    MultimodalData,
    MultimodalDataset,
    NpyRows,
    read_multimodal,
    read_table,
    transform_dataset,
)


def write(path, text):
    path.write_text(text)
    return str(path)


@pytest.fixture()
def pair(tmp_path, rng):
    """Two CSVs with a header, an ID column and a label, rows in different orders."""
    n = 40
    ids = [f"s{k:03d}" for k in range(n)]
    x1, x2 = rng.normal(size=(n, 3)), rng.normal(size=(n, 2))
    y = rng.integers(0, 3, n)
    lines1 = ["sample,a,b,c,label"] + [
        f"{i},{r[0]},{r[1]},{r[2]},{lab}" for i, r, lab in zip(ids, x1, y)]
    perm = rng.permutation(n)
    lines2 = ["sample,u,v"] + [f"{ids[k]},{x2[k, 0]},{x2[k, 1]}" for k in perm]
    p1 = write(tmp_path / "m1.csv", "\n".join(lines1) + "\n")
    p2 = write(tmp_path / "m2.csv", "\n".join(lines2) + "\n")
    return p1, p2, ids, x1, x2, y


def test_csv_join_on_ids_restores_pairing(pair):
    p1, p2, ids, x1, x2, y = pair
    data = read_multimodal([p1, p2], id_column="sample", label_columns=["label"])
    assert list(data.ids) == ids
    np.testing.assert_allclose(data.x1, x1, rtol=1e-6)
    np.testing.assert_allclose(data.x2, x2, rtol=1e-6)  # re-ordered to file 1's order
    assert data.labels["label"].dtype == np.int64
    assert np.array_equal(data.labels["label"], y)
    assert data.feature_names == [["a", "b", "c"], ["u", "v"]]
    assert data.view_names == ["m1", "m2"]


def test_string_labels_kept_and_checked_across_files(tmp_path):
    p1 = write(tmp_path / "a.csv", "id,f,g,kind\n1,0,1,cat\n2,1,0,dog\n3,2,2,cat\n")
    p2 = write(tmp_path / "b.csv", "id,h,kind\n3,5,cat\n1,6,cat\n2,7,dog\n")
    data = read_multimodal([p1, p2], id_column="id", label_columns=["kind"])
    assert list(data.labels["kind"]) == ["cat", "dog", "cat"]
    p3 = write(tmp_path / "c.csv", "id,h,kind\n3,5,cat\n1,6,dog\n2,7,dog\n")
    with pytest.raises(DSSLError, match=r"label 'kind' disagrees between .*a.csv and .*c.csv "
                       r"at ID '1'"):
        read_multimodal([p1, p3], id_column="id", label_columns=["kind"])


def test_mismatched_row_counts(tmp_path):
    p1 = write(tmp_path / "a.csv", "1,2\n3,4\n5,7\n")
    p2 = write(tmp_path / "b.csv", "1,2\n3,5\n")
    with pytest.raises(DSSLError, match=r"paired row by row but .*a.csv has 3, .*b.csv has 2 "
                       r"rows; pass an ID column"):
        read_multimodal([p1, p2])


def test_ids_missing_from_one_file(tmp_path):
    p1 = write(tmp_path / "a.csv", "id,f\nx,1\ny,2\nz,3\n")
    p2 = write(tmp_path / "b.csv", "id,g\nx,1\ny,5\n")
    with pytest.raises(DSSLError, match=r"ID 'z' is in .*a.csv but not in .*b.csv \(1 such "
                       r"IDs\); .*join='inner'"):
        read_multimodal([p1, p2], id_column="id")
    data = read_multimodal([p1, p2], id_column="id", join="inner")
    assert list(data.ids) == ["x", "y"] and data.x2[:, 0].tolist() == [1.0, 5.0]


def test_no_shared_ids(tmp_path):
    p1 = write(tmp_path / "a.csv", "id,f\nx,1\ny,2\n")
    p2 = write(tmp_path / "b.csv", "id,g\nq,1\nr,5\n")
    with pytest.raises(DSSLError, match="no ID is shared by all of"):
        read_multimodal([p1, p2], id_column="id", join="inner")


def test_duplicate_and_blank_ids(tmp_path):
    p = write(tmp_path / "a.csv", "id,f\nx,1\ny,2\nx,3\n")
    with pytest.raises(DSSLError, match=r"a.csv: ID 'x' appears 2 times in column 'id' "
                       r"\(rows 0 and 2\)"):
        read_table(p, id_column="id")
    p = write(tmp_path / "b.csv", "id,f\nx,1\n,2\n")
    with pytest.raises(DSSLError, match=r"b.csv: ID column 'id' is empty at row 1"):
        read_table(p, id_column="id")


def test_missing_id_or_label_column_named(tmp_path):
    p = write(tmp_path / "a.csv", "id,f\nx,1\ny,2\n")
    with pytest.raises(DSSLError, match=r"a.csv has no ID column 'sample'; its columns are "
                       r"'id', 'f'"):
        read_table(p, id_column="sample")
    with pytest.raises(DSSLError, match=r"a.csv has no label column 'y'"):
        read_table(p, id_column="id", label_columns=["y"])
    q = write(tmp_path / "b.csv", "id,g\nx,1\ny,3\n")
    with pytest.raises(DSSLError, match=r"label column 'y' is in none of .*a.csv, .*b.csv"):
        read_multimodal([p, q], id_column="id", label_columns=["y"])


def test_nan_and_inf_name_file_column_line(tmp_path):
    p = write(tmp_path / "a.csv", "f,g\n1,2\n3,nan\n4,5\n")
    with pytest.raises(DSSLError, match=r"a.csv: column 'g' has a missing, NaN or infinite "
                       r"value at line 3 \(1 such entries"):
        read_table(p)
    p = write(tmp_path / "b.csv", "f,g\n1,2\n3,4\ninf,5\n")
    with pytest.raises(DSSLError, match=r"b.csv: column 'f' .* at line 4"):
        read_table(p)
    p = write(tmp_path / "c.csv", "f,g\n1,2\n3,\n4,5\n")  # empty cell = missing
    with pytest.raises(DSSLError, match=r"c.csv: column 'g' has a missing.* at line 3"):
        read_table(p)
    np.save(tmp_path / "d.npy", np.array([[1.0, 2.0], [np.nan, 1.0]]))
    with pytest.raises(DSSLError, match=r"d.npy: column '0' has a missing.* at row 1"):
        read_table(tmp_path / "d.npy")


def test_non_numeric_column_names_value_and_line(tmp_path):
    p = write(tmp_path / "a.csv", "f,g,h\n1,2,3\n3,abc,4\n4,5,6\n")
    with pytest.raises(DSSLError, match=r"a.csv: column 'g' is not numeric \(value 'abc' at "
                       r"line 3\); drop it, or name it with id_column/label_columns"):
        read_table(p)


def test_constant_columns_are_accepted_unless_asked(tmp_path):
    """A constant column is standardised with scale 1, so the readers keep it; the check
    stays available on request."""
    p = write(tmp_path / "a.csv", "f,g,h\n1,7,3\n3,7,4\n4,7,6\n")
    assert read_table(p).features[:, 1].tolist() == [7.0, 7.0, 7.0]
    q = write(tmp_path / "b.csv", "1,2\n3,4\n5,7\n")
    assert read_multimodal([p, q]).x1.shape == (3, 3)
    with pytest.raises(DSSLError, match=re.escape(
            f"{p}: column 'g' is constant (value 7.0); drop it, or read without "
            "check_constant (standardisation gives a constant column scale 1)")):
        read_table(p, check_constant=True)
    np.save(tmp_path / "img.npy", np.ones((3, 1, 2, 2)))
    with pytest.raises(DSSLError, match=re.escape(
            f"{tmp_path / 'img.npy'}: column '(0, 0, 0)', '(0, 0, 1)', '(0, 1, 0)', "
            "'(0, 1, 1)' is constant (value 1.0)")):
        read_table(tmp_path / "img.npy", check_constant=True)


def test_npy_and_npz_arrays_keep_their_rank_and_integer_dtype(tmp_path, rng):
    """Sequences (n, T, d) and images (n, C, H, W) keep their shape; integer arrays stay
    int64 (token ids); other arrays become float32. Text tables stay 2-D float32."""
    seq = rng.normal(size=(20, 6, 3))  # float64 on disk
    img = rng.random((20, 1, 4, 4)).astype(np.float32)
    tok = rng.integers(0, 50, size=(20, 7)).astype(np.int32)
    np.save(tmp_path / "seq.npy", seq)
    np.save(tmp_path / "img.npy", img)
    np.savez(tmp_path / "tok.npz", ids=tok, y=np.arange(20) % 2)
    t = read_table(tmp_path / "seq.npy")
    assert t.features.shape == (20, 6, 3) and t.features.dtype == np.float32
    assert t.feature_names == []
    np.testing.assert_allclose(t.features, seq.astype(np.float32))
    t = read_table(f"{tmp_path / 'tok.npz'}:ids", label_columns=["y"])
    assert t.features.dtype == np.int64 and np.array_equal(t.features, tok)
    assert t.labels["y"].tolist() == (np.arange(20) % 2).tolist()
    np.save(tmp_path / "counts.npy", tok[:, :3].astype(np.uint8))
    assert read_table(tmp_path / "counts.npy").features.dtype == np.int64
    np.save(tmp_path / "mask.npy", tok[:, :3] > 10)
    assert read_table(tmp_path / "mask.npy").features.dtype == np.float32
    data = read_multimodal([tmp_path / "img.npy", f"{tmp_path / 'tok.npz'}:ids"],
                           label_columns=["y"])
    assert data.x1.shape == (20, 1, 4, 4) and data.x1.dtype == np.float32
    assert data.x2.shape == (20, 7) and data.x2.dtype == np.int64
    train, test = data.split(0.25, seed=0)
    assert train.x1.shape == (15, 1, 4, 4) and test.x2.dtype == np.int64
    ints = write(tmp_path / "ints.csv", "1,2\n3,4\n")
    assert read_table(ints).features.dtype == np.float32  # tables are float by nature


def test_nd_arrays_are_checked_per_entry(tmp_path):
    img = np.zeros((5, 2, 3, 3), dtype=np.float32)
    img[:, 0, 0, 0] = np.arange(5)
    img[4, 1, 2, 0] = np.inf
    np.save(tmp_path / "img.npy", img)
    with pytest.raises(DSSLError, match=re.escape(
            f"{tmp_path / 'img.npy'} has a NaN or infinite value at row 4, position (1, 2, 0) "
            "(1 such entries in the file); impute or drop them first")):
        read_table(tmp_path / "img.npy")
    np.save(tmp_path / "flat.npy", np.arange(5.0))
    with pytest.raises(DSSLError, match=re.escape(
            f"{tmp_path / 'flat.npy'} is 1-D (shape (5,)); store a (rows, features) matrix, "
            "e.g. x.reshape(-1, 1)")):
        read_table(tmp_path / "flat.npy")
    np.save(tmp_path / "hollow.npy", np.zeros((5, 0, 3)))
    with pytest.raises(DSSLError, match=re.escape(
            f"{tmp_path / 'hollow.npy'} has shape (5, 0, 3): its rows hold no values")):
        read_table(tmp_path / "hollow.npy")


def test_too_few_rows_for_batch(tmp_path):
    p1 = write(tmp_path / "a.csv", "1,2\n3,4\n5,7\n")
    p2 = write(tmp_path / "b.csv", "1,2\n3,5\n0,1\n")
    with pytest.raises(DSSLError, match=r"a.csv, .*b.csv: 3 paired rows, fewer than "
                       r"batch_size=64; use batch_size=2 or more rows"):
        read_multimodal([p1, p2], batch_size=64)
    assert len(read_multimodal([p1, p2], batch_size=2)) == 3


def test_empty_inputs(tmp_path):
    p = write(tmp_path / "empty.csv", "")
    with pytest.raises(DSSLError, match=r"empty.csv is empty \(0 bytes\)"):
        read_table(p)
    p = write(tmp_path / "blank.csv", "\n\n")
    with pytest.raises(DSSLError, match=r"blank.csv is empty; it needs one row per sample"):
        read_table(p)
    p = write(tmp_path / "header.csv", "a,b\n")
    with pytest.raises(DSSLError, match=r"header.csv has a header but no data rows"):
        read_table(p)
    p = write(tmp_path / "ids.csv", "id,y\na,1\nb,2\n")
    with pytest.raises(DSSLError, match=r"ids.csv has no feature columns left"):
        read_table(p, id_column="id", label_columns=["y"])
    np.save(tmp_path / "e.npy", np.zeros((0, 3)))
    with pytest.raises(DSSLError, match=r"e.npy has no data rows"):
        read_table(tmp_path / "e.npy")
    with pytest.raises(DSSLError, match=r"need at least two files"):
        read_multimodal([str(tmp_path / "e.npy")])
    with pytest.raises(DSSLError, match=r"file not found: .*nope.csv"):
        read_table(tmp_path / "nope.csv")


def test_ragged_rows_and_headerless_names(tmp_path):
    p = write(tmp_path / "a.csv", "f,g\n1,2\n3\n")
    with pytest.raises(DSSLError, match=r"a.csv: line 3 has 1 fields, the first line has 2"):
        read_table(p)
    p = write(tmp_path / "b.csv", "1,2\n3,4\n")
    with pytest.raises(DSSLError, match=r"b.csv has no header row, so columns cannot be named"):
        read_table(p, id_column="id")
    p = write(tmp_path / "c.csv", "f,f\n1,2\n3,4\n")
    with pytest.raises(DSSLError, match=r"c.csv: column name 'f' appears twice"):
        read_table(p)


def test_tsv_and_npz_with_ids_and_labels(tmp_path):
    p = write(tmp_path / "a.tsv", "id\tf\tg\nx\t1\t2\ny\t3\t5\n")
    t = read_table(p, id_column="id")
    assert t.features.tolist() == [[1.0, 2.0], [3.0, 5.0]] and list(t.ids) == ["x", "y"]
    np.savez(tmp_path / "b.npz", feats=np.array([[1.0, 2.0], [3.0, 1.0]]),
             sid=np.array(["y", "x"]), y=np.array([0, 1]))
    t = read_table(tmp_path / "b.npz", id_column="sid", label_columns=["y"])
    assert t.source.endswith("b.npz:feats") and list(t.ids) == ["y", "x"]
    data = read_multimodal([p, str(tmp_path / "b.npz")], id_column=["id", "sid"],
                           label_columns=["y"])
    assert data.x2.tolist() == [[3.0, 1.0], [1.0, 2.0]] and data.labels["y"].tolist() == [1, 0]
    np.savez(tmp_path / "c.npz", a=np.ones((2, 2)), b=np.ones((2, 2)))
    with pytest.raises(DSSLError, match=r"c.npz holds arrays \['a', 'b'\]; name the features"):
        read_table(tmp_path / "c.npz")
    with pytest.raises(DSSLError, match=r"a .npy file holding one array: it cannot hold an ID"):
        np.save(tmp_path / "d.npy", np.ones((2, 2)))
        read_table(tmp_path / "d.npy", id_column="id")
    with pytest.raises(DSSLError, match=r"unsupported file type '.xlsx'"):
        write(tmp_path / "e.xlsx", "x")
        read_table(tmp_path / "e.xlsx")


def test_parquet_round_trip_and_errors(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"id": ["a", "b", "c"], "f": [1.0, 2.0, 4.0], "g": [1, 5, 2],
                      "y": ["u", "v", "u"]})
    pq.write_table(table, tmp_path / "a.parquet")
    t = read_table(tmp_path / "a.parquet", id_column="id", label_columns=["y"])
    assert t.features.tolist() == [[1.0, 1.0], [2.0, 5.0], [4.0, 2.0]]
    assert t.feature_names == ["f", "g"] and list(t.labels["y"]) == ["u", "v", "u"]
    with pytest.raises(DSSLError, match=r"a.parquet: column 'y' is not numeric"):
        read_table(tmp_path / "a.parquet", id_column="id")
    pq.write_table(pa.table({"f": [1.0, None, 3.0], "g": [1, 2, None]}), tmp_path / "b.parquet")
    with pytest.raises(DSSLError, match=r"b.parquet: column 'f' has a missing, NaN or infinite "
                       r"value at row 1"):
        read_table(tmp_path / "b.parquet")


def test_h5ad_reader(tmp_path):
    anndata = pytest.importorskip("anndata")
    pd = pytest.importorskip("pandas")
    x = np.arange(12, dtype=np.float32).reshape(4, 3) ** 1.5
    obs = pd.DataFrame({"cell_type": ["t", "b", "t", "b"], "donor": ["d1", "d2", "d3", "d4"]},
                       index=["c0", "c1", "c2", "c3"])
    adata = anndata.AnnData(X=x, obs=obs)
    adata.obsm["X_pca"] = x[:, :2] * 2
    adata.write_h5ad(tmp_path / "a.h5ad")
    t = read_table(tmp_path / "a.h5ad", id_column="obs_names", label_columns=["cell_type"])
    np.testing.assert_allclose(t.features, x)
    assert list(t.ids) == ["c0", "c1", "c2", "c3"]
    assert list(t.labels["cell_type"]) == ["t", "b", "t", "b"]
    t = read_table(f"{tmp_path / 'a.h5ad'}:obsm/X_pca", id_column="donor")
    assert t.features.shape == (4, 2) and list(t.ids) == ["d1", "d2", "d3", "d4"]
    with pytest.raises(DSSLError, match=r"a.h5ad has no matrix 'obsm/umap'"):
        read_table(f"{tmp_path / 'a.h5ad'}:obsm/umap")
    with pytest.raises(DSSLError, match=r"a.h5ad has no obs column 'batch'"):
        read_table(tmp_path / "a.h5ad", id_column="batch")


def test_multimodal_data_split_and_select(rng):
    views = [rng.normal(size=(50, 3)).astype(np.float32) for _ in range(3)]
    data = MultimodalData(views, {"y": np.arange(50) % 2}, view_names=["a", "b", "c"])
    tr, te = data.split(0.2, seed=0)
    assert len(tr) == 40 and len(te) == 10
    sel = data.select(["c", 0])
    assert sel.view_names == ["c", "a"] and sel.x1 is views[2]
    with pytest.raises(DSSLError, match=r"no view named 'd'"):
        data.select(["d"])
    with pytest.raises(DSSLError, match=r"paired row by row but a has 50, b has 49"):
        MultimodalData([views[0], views[1][:49]], view_names=["a", "b"])


def test_memmap_dataset_loader_validate_and_transform(tmp_path, rng):
    a = rng.normal(size=(300, 6)).astype(np.float32)
    b = rng.normal(size=(300, 4)).astype(np.float64)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    ds = MultimodalDataset.from_npy([tmp_path / "a.npy", tmp_path / "b.npy"])
    assert isinstance(ds.views[0], NpyRows) and len(ds) == 300
    ds.validate(batch_size=64, chunk_size=70)
    loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=False)
    xa, xb = next(iter(loader))
    assert xa.shape == (32, 6) and xb.dtype == torch.float32
    torch.testing.assert_close(xb, torch.from_numpy(b[:32]).float())
    with pytest.raises(DSSLError, match=r"300 paired rows, fewer than batch_size=512"):
        ds.validate(batch_size=512)
    bad = a.copy()
    bad[211, 3] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    ds_bad = MultimodalDataset.from_npy([tmp_path / "bad.npy", tmp_path / "b.npy"])
    with pytest.raises(DSSLError, match=re.escape(f"{tmp_path / 'bad.npy'}: column 3 has a NaN "
                                                  "or infinite value at row 211")):
        ds_bad.validate(chunk_size=100)
    const = a.copy()
    const[:, 5] = 2.0
    np.save(tmp_path / "const.npy", const)
    with_constant = MultimodalDataset.from_npy([tmp_path / "const.npy", tmp_path / "b.npy"])
    with_constant.validate(chunk_size=64)  # accepted: standardised with scale 1
    with pytest.raises(DSSLError, match=r"const.npy: column 5 is constant"):
        with_constant.validate(chunk_size=64, check_constant=True)
    np.save(tmp_path / "short.npy", a[:10])
    with pytest.raises(DSSLError, match=r"a.npy has 300, .*short.npy has 10 rows"):
        MultimodalDataset.from_npy([tmp_path / "a.npy", tmp_path / "short.npy"])

    from disentangled_ssl import DisentangledSSL

    sub = ds.to_arrays(rng.choice(300, 128, replace=False))
    est = DisentangledSSL(shared_dim=4, specific_dim=4, hidden_dim=16, shared_epochs=1,
                          specific_epochs=1, batch_size=64, random_state=0, verbose=False,
                          device="cpu").fit(*sub)
    streamed = transform_dataset(est, ds, chunk_size=70)
    assert type(streamed) is type(est.transform(a, b))  # the Embeddings of arrays
    streamed, whole = streamed.as_dict(), est.transform(a, b).as_dict()
    assert set(streamed) == set(whole)
    for k in whole:
        np.testing.assert_allclose(streamed[k], whole[k], rtol=1e-5, atol=1e-6)


def test_memmap_dataset_keeps_the_shape_and_integer_ids_of_each_view(tmp_path, rng):
    """Images stay (B, C, H, W) float32 and token ids int64 through the DataLoader,
    ``chunks`` and ``to_arrays``."""
    img = rng.random((40, 1, 4, 4))
    tok = rng.integers(0, 9, size=(40, 5)).astype(np.int16)
    np.save(tmp_path / "img.npy", img)
    np.save(tmp_path / "tok.npy", tok)
    ds = MultimodalDataset.from_npy([tmp_path / "img.npy", tmp_path / "tok.npy"])
    ds.validate(batch_size=8, chunk_size=16)
    xi, xt = next(iter(torch.utils.data.DataLoader(ds, batch_size=8, shuffle=False)))
    assert xi.shape == (8, 1, 4, 4) and xi.dtype == torch.float32
    assert xt.dtype == torch.int64 and torch.equal(xt, torch.from_numpy(tok[:8]).long())
    start, (ci, ct) = next(ds.chunks(16))
    assert start == 0 and ci.shape == (16, 1, 4, 4) and ct.dtype == np.int64
    ai, at = ds.to_arrays(np.array([3, 1]))
    assert ai.dtype == np.float32 and np.array_equal(at, tok[[1, 3]].astype(np.int64))
    assert ds.to_arrays()[1].dtype == np.int64


def test_npy_rows_reads_rows_without_mapping_the_file(tmp_path, monkeypatch, rng):
    """NpyRows returns exactly numpy's rows for every index form, and by default never
    memory-maps the file while reading (so pages it read do not stay resident)."""
    a = rng.standard_normal((500, 6, 2)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    rows = NpyRows(tmp_path / "a.npy")
    assert rows.shape == a.shape and rows.dtype == a.dtype and len(rows) == 500

    def no_map(*args, **kwargs):
        raise AssertionError("the file was memory-mapped")

    monkeypatch.setattr(np, "memmap", no_map)
    for index in (np.array([7, 3, 3, 499, 0]), slice(10, 40), slice(None, None, 9),
                  np.array([-1, -500]), 42, np.arange(100, 200)):
        np.testing.assert_array_equal(rows[index], a[index])
    monkeypatch.undo()
    with pytest.raises(IndexError, match="row index out of range"):
        rows[np.array([500])]
    mapped = NpyRows(tmp_path / "a.npy", mmap=True)
    np.testing.assert_array_equal(mapped[np.array([4, 1])], a[[4, 1]])
