"""The bad-input catalogue: every bad input gets an exact error and nothing is written.

Each case is checked twice where both apply:

* through the Python API (``DisentangledSSL``, ``read_array``/``read_paired``, ``load``): the
  exact exception message;
* through the CLI: exit code 2, exactly one stderr line ``dssl: error: <the message>`` (argparse
  usage errors: its usage line plus ``dssl: error: ...``), no traceback.

Both sides also assert that nothing was written: the snapshot (path, size, mtime) of the test's
folder and of the shared inputs is unchanged, so no model, no embeddings and no checkpoint
folder appeared (every fit case passes a checkpoint folder).

In expected messages, ``{tmp}``/``{base}`` are the folders and ``{ANY}`` stands for text that
NumPy or safetensors supply (their wording is theirs, not ours).
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from disentangled_ssl import DisentangledSSL, make_synthetic
from disentangled_ssl._errors import DSSLError
from disentangled_ssl._version import __version__
from disentangled_ssl.cli import main
from disentangled_ssl.data.io import read_array, read_paired, save_paired
from disentangled_ssl.training.checkpoint import checkpoint_path

N, D = 256, 16
L = 8  # tokens per row
FIT = ["--shared-epochs", "1", "--specific-epochs", "1", "--batch-size", "64", "--hidden-dim",
       "16", "--shared-dim", "4", "--specific-dim", "4", "--quiet", "--device", "cpu"]
EST = dict(shared_epochs=1, specific_epochs=1, batch_size=64, hidden_dim=16, shared_dim=4,
           specific_dim=4, verbose=False, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Good inputs shared by all cases (never written to by a case): ok1/ok2.npy, data.npz,
    a fitted model folder, and tok.npy (token ids 0..9) with a model fitted on it as
    ``modalities=("tokens", "vector")`` (tok_model)."""
    folder = tmp_path_factory.mktemp("base")
    data = make_synthetic(n_samples=N, shared_dim=4, private_dim1=4, private_dim2=4,
                          x_dim1=D, x_dim2=D, seed=0)
    np.save(folder / "ok1.npy", data.x1)
    np.save(folder / "ok2.npy", data.x2)
    save_paired(folder / "data.npz", data)
    DisentangledSSL(**EST).fit(data.x1, data.x2).save(folder / "model")
    np.save(folder / "tok.npy", _tokens())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small Transformer: as fast, and robust to a busy machine
    try:
        DisentangledSSL(**EST, modalities=("tokens", "vector")).fit(_tokens(), data.x2).save(
            folder / "tok_model")
    finally:
        torch.set_num_threads(threads)
    return folder


def _tokens() -> np.ndarray:
    """(N, L) int64 token ids with max id 9, so a model fitted on them has 10 ids."""
    ids = np.random.default_rng(6).integers(0, 10, size=(N, L))
    ids[0, 0] = 9
    return ids


def _ok(base: Path) -> tuple[np.ndarray, np.ndarray]:
    return np.load(base / "ok1.npy"), np.load(base / "ok2.npy")


def _snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns)
            for folder in folders for p in sorted(folder.rglob("*"))}


def _pattern(template: str, tmp: Path, base: Path) -> str:
    parts = template.replace("{tmp}", str(tmp)).replace("{base}", str(base)).split("{ANY}")
    return ".*".join(re.escape(p) for p in parts)


class _Unpickled:
    """An object whose unpickling creates ``marker`` (proof that a file was unpickled)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ------------------------------------------------------------------------------ the cases
@dataclass
class Case:
    """One bad input.

    Attributes:
        name: what is bad.
        setup: writes the bad input files into the test folder (tmp, base).
        argv: CLI arguments ({tmp}/{base} substituted); None when the CLI cannot express it.
        cli_message: the exact message after ``dssl: error: `` (defaults to api_message).
        api: the Python API call that must raise; None when there is no API equivalent.
        api_message: the exact message of the API's exception.
        api_error: the exception type of the API.
        argparse: the CLI error comes from argparse (usage line + error line).
    """

    name: str
    setup: Callable[[Path, Path], None] | None
    argv: list[str] | None
    api: Callable[[Path, Path], object] | None
    api_message: str
    cli_message: str | None = None
    api_error: type[Exception] = DSSLError
    argparse: bool = False


def _fit_argv(x1: str = "{base}/ok1.npy", x2: str = "{base}/ok2.npy", *extra: str
              ) -> list[str]:
    """``dssl fit`` on x1/x2 with tiny settings, writing to {tmp}/out and {tmp}/ck."""
    return ["fit", "--x1", x1, "--x2", x2, "--out", "{tmp}/out", "--checkpoint-dir",
            "{tmp}/ck", *FIT, *extra]


def _fit(x1: np.ndarray, x2: np.ndarray, tmp: Path, **params: object) -> object:
    return DisentangledSSL(**{**EST, **params}, checkpoint_dir=str(tmp / "ck")).fit(x1, x2)


def _save(name: str, array: np.ndarray) -> Callable[[Path, Path], None]:
    return lambda tmp, base: np.save(tmp / name, array)


def _write(name: str, content: bytes | str) -> Callable[[Path, Path], None]:
    def setup(tmp: Path, base: Path) -> None:
        if isinstance(content, str):
            (tmp / name).write_text(content)
        else:
            (tmp / name).write_bytes(content)

    return setup


def _with_nan() -> np.ndarray:
    x = np.random.default_rng(0).normal(size=(N, D)).astype(np.float32)
    x[3, 2] = np.nan
    return x


def _with_inf() -> np.ndarray:
    x = np.random.default_rng(1).normal(size=(N, D)).astype(np.float32)
    x[5, 0], x[7, 1] = np.inf, -np.inf
    return x


def _with_constant() -> np.ndarray:
    x = np.random.default_rng(2).normal(size=(N, D)).astype(np.float32)
    x[:, 3] = 1.5
    return x


def _image_with_nan() -> np.ndarray:
    """(N, 1, 4, 4) images in [0, 1] with one NaN pixel (row 3, channel 0, y 1, x 2)."""
    x = np.random.default_rng(7).random((N, 1, 4, 4)).astype(np.float32)
    x[3, 0, 1, 2] = np.nan
    return x


def _tokens_out_of_vocabulary() -> np.ndarray:
    """Token ids 0..9 but id 12 at row 5, position 3 (the tok_model's vocabulary is 10)."""
    ids = _tokens()
    ids[5, 3] = 12
    return ids


def _ragged_sequences() -> list[np.ndarray]:
    """N sequences of 3 features with 4, 5 or 6 time steps: not one array."""
    rng = np.random.default_rng(8)
    return [rng.normal(size=(4 + k % 3, 3)).astype(np.float32) for k in range(N)]


def _lengths_past_padding() -> tuple[np.ndarray, np.ndarray]:
    """A padded (N, 6, 3) sequence with lengths 2..9: row 10 claims 9 steps of 6."""
    values = np.random.default_rng(9).normal(size=(N, 6, 3)).astype(np.float32)
    lengths = np.full(N, 6, dtype=np.int64)
    lengths[0], lengths[10] = 2, 9
    return values, lengths


class ListLoader:
    """A re-iterable of batch tuples (what a DataLoader is to the estimator); a plain list of
    tuples would be read as the views themselves."""

    def __init__(self, batches: list[tuple[np.ndarray, ...]]) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


def _loader(*second: slice) -> ListLoader:
    """Batch 0 is 64 good paired rows; batch 1 takes rows ``second[i]`` of modality i."""
    x1, x2 = np.random.default_rng(10).normal(size=(2, N, D)).astype(np.float32)
    views = [x1, x2, x2]
    return ListLoader([(x1[:64], x2[:64]), tuple(views[i][s] for i, s in enumerate(second))])


def _fit_loader(loader: ListLoader, tmp: Path) -> object:
    return DisentangledSSL(**EST, checkpoint_dir=str(tmp / "ck")).fit(loader)


def _model_copy(tmp: Path, base: Path, edit: Callable[[Path], None]) -> None:
    shutil.copytree(base / "model", tmp / "m")
    edit(tmp / "m")


def _edit_config(**changes: object) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        for key, value in changes.items():
            if key in config:
                config[key] = value
            else:
                config["params"][key] = value
        (folder / "config.json").write_text(json.dumps(config))

    return edit


def _truncate(folder: Path) -> None:
    raw = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(raw[: len(raw) // 2])


def _id_tables(tmp: Path, base: Path) -> None:
    """Two CSVs keyed by an ``id`` column; b.csv has s555 where a.csv has s99."""
    rng = np.random.default_rng(5)
    for name, ids in (("a.csv", range(100)), ("b.csv", [*range(99), 555])):
        rows = [f"s{i}," + ",".join(f"{v:.6f}" for v in rng.normal(size=4)) for i in ids]
        (tmp / name).write_text("id,f0,f1,f2,f3\n" + "\n".join(rows) + "\n")


def _pickled_npy(tmp: Path, base: Path) -> None:
    array = np.array([_Unpickled(str(tmp / "PWNED")), 1.0], dtype=object)
    np.save(tmp / "evil.npy", array, allow_pickle=True)


def _pickled_npz(tmp: Path, base: Path) -> None:
    np.savez(tmp / "evil.npz", x1=np.array([_Unpickled(str(tmp / "PWNED"))], dtype=object),
             x2=np.ones((3, 2)))


def _tampered_checkpoint(tmp: Path, base: Path) -> None:
    x1, x2 = _ok(base)
    folder = tmp / "ck"
    DisentangledSSL(**EST, checkpoint_dir=str(folder)).fit(x1, x2)
    raw = bytearray(checkpoint_path(folder).read_bytes())
    raw[-5] ^= 0xFF  # one flipped byte in the last tensor
    checkpoint_path(folder).write_bytes(bytes(raw))


def _existing_checkpoint(tmp: Path, base: Path) -> None:
    x1, x2 = _ok(base)
    DisentangledSSL(**EST, checkpoint_dir=str(tmp / "ck")).fit(x1, x2)


NOT_FINITE = "contains NaN or infinite values"
CASES = [
    Case("nan_value", _save("nan.npy", _with_nan()), _fit_argv("{tmp}/nan.npy"),
         lambda tmp, base: _fit(np.load(tmp / "nan.npy"), _ok(base)[1], tmp),
         f"X1 {NOT_FINITE} (1 entries, first at row 3, column 2); impute or drop them before "
         "fitting",
         cli_message="{tmp}/nan.npy: column '2' has a missing, NaN or infinite value at row 3 "
         "(1 such entries in the file); impute or drop them first"),
    Case("inf_value", _save("inf.npy", _with_inf()), _fit_argv(x2="{tmp}/inf.npy"),
         lambda tmp, base: _fit(_ok(base)[0], np.load(tmp / "inf.npy"), tmp),
         f"X2 {NOT_FINITE} (2 entries, first at row 5, column 0); impute or drop them before "
         "fitting",
         cli_message="{tmp}/inf.npy: column '0' has a missing, NaN or infinite value at row 5 "
         "(2 such entries in the file); impute or drop them first"),
    Case("row_count_mismatch",
         _save("short.npy", np.random.default_rng(4).normal(size=(N - 1, D))),
         _fit_argv(x2="{tmp}/short.npy"),
         lambda tmp, base: _fit(_ok(base)[0], _ok(base)[1][:-1], tmp),
         f"modalities must be paired row by row but X1 has {N}, X2 has {N - 1} rows; align "
         "them (e.g. join on an ID column) first",
         cli_message=f"files must be paired row by row but {{base}}/ok1.npy has {N}, "
         f"{{tmp}}/short.npy has {N - 1} rows; pass an ID column (CLI: --id-column) to join "
         "them"),
    Case("id_mismatch", _id_tables,
         ["fit", "--x1", "{tmp}/a.csv", "--x2", "{tmp}/b.csv", "--id-column", "id", "--out",
          "{tmp}/out", "--checkpoint-dir", "{tmp}/ck", *FIT], None, "",
         cli_message="ID 's99' is in {tmp}/a.csv but not in {tmp}/b.csv (1 such IDs); fix "
         "the files or pass join='inner' (CLI: --join inner) to keep only IDs present "
         "everywhere"),
    Case("one_dimensional", _save("flat.npy", np.arange(N, dtype=np.float32)),
         _fit_argv("{tmp}/flat.npy"),
         lambda tmp, base: _fit(np.arange(N, dtype=np.float32), _ok(base)[1], tmp),
         f"X1 must be 2-D (rows × features), got shape ({N},); use x.reshape(-1, 1) for a "
         "single feature",
         cli_message=f"{{tmp}}/flat.npy is 1-D (shape ({N},)); store a (rows, features) "
         "matrix, e.g. x.reshape(-1, 1)"),
    # 2-D, 3-D and 4-D arrays are vectors, sequences and images; no kind reads 5-D.
    Case("five_dimensional", _save("cube.npy", np.ones((N, 2, 2, 2, 2), dtype=np.float32)),
         _fit_argv(x2="{tmp}/cube.npy"),
         lambda tmp, base: _fit(_ok(base)[0], np.ones((N, 2, 2, 2, 2), dtype=np.float32), tmp),
         "X2 has 5 dimensions; 'auto' reads 2-D arrays as vectors, 3-D as sequences (rows, "
         "time, features) and 4-D as images (rows, channels, height, width): reshape it or "
         "declare its kind in modalities=(...)"),
    Case("wrong_rank_for_declared_kind", None,
         _fit_argv("{base}/ok1.npy", "{base}/ok2.npy", "--modalities", "image,vector"),
         lambda tmp, base: _fit(*_ok(base), tmp, modalities=("image", "vector")),
         f"X1 is declared 'image', which needs shape (rows, channels, height, width), but got "
         f"shape ({N}, {D}); declare its kind in modalities=(...) or reshape it"),
    Case("unknown_modality_kind", None,
         _fit_argv("{base}/ok1.npy", "{base}/ok2.npy", "--modalities", "vector,bogus"),
         lambda tmp, base: _fit(*_ok(base), tmp, modalities=("vector", "bogus")),
         "modalities[1] is 'bogus'; the kinds are 'auto', 'vector', 'sequence', 'image', "
         "'tokens'",
         cli_message="--modalities: unknown kind 'bogus'; the kinds are auto, vector, "
         "sequence, image, tokens"),
    Case("float_tokens", None,
         _fit_argv("{base}/ok1.npy", "{base}/ok2.npy", "--modalities", "tokens,vector"),
         lambda tmp, base: _fit(*_ok(base), tmp, modalities=("tokens", "vector")),
         "X1 is declared 'tokens' but has dtype torch.float32; token ids must be integers "
         "(e.g. x.astype(np.int64))"),
    Case("token_id_outside_vocabulary", _save("tok12.npy", _tokens_out_of_vocabulary()),
         ["transform", "--model", "{base}/tok_model", "--x1", "{tmp}/tok12.npy", "--x2",
          "{base}/ok2.npy", "--out", "{tmp}/emb.npz", "--device", "cpu"],
         lambda tmp, base: DisentangledSSL.load(base / "tok_model", device="cpu").transform(
             np.load(tmp / "tok12.npy"), _ok(base)[1]),
         "X1 has token id 12 at row 5, position 3, outside the vocabulary of 10 ids (0..9); "
         "map unknown words to a reserved id, or give Tokens(vocab_size=...) large enough "
         "when fitting"),
    Case("image_with_nan", _save("img.npy", _image_with_nan()),
         _fit_argv("{tmp}/img.npy", "{base}/ok2.npy", "--modalities", "image,vector"),
         lambda tmp, base: _fit(np.load(tmp / "img.npy"), _ok(base)[1], tmp,
                                modalities=("image", "vector")),
         f"X1 {NOT_FINITE} (1 entries, first at row 3, position (0, 1, 2)); impute or drop "
         "them before fitting",
         cli_message="{tmp}/img.npy has a NaN or infinite value at row 3, position (0, 1, 2) "
         "(1 such entries in the file); impute or drop them first"),
    # Python only: no file holds these.
    Case("ragged_sequences", None, None,
         lambda tmp, base: _fit(_ragged_sequences(), _ok(base)[1], tmp),
         "X1 could not be read as an array ({ANY}); sequences of different lengths must be "
         "padded: pack_sequences(list_of_arrays) returns (values, lengths)"),
    Case("lengths_past_the_padding", None, None,
         lambda tmp, base: _fit(_lengths_past_padding(), _ok(base)[1], tmp),
         "X1: lengths must be in 0..6 (the padded length), got 2..9"),
    Case("loader_modality_count_changes", None, None,
         lambda tmp, base: _fit_loader(_loader(slice(64, 128), slice(64, 128),
                                               slice(64, 128)), tmp),
         "batch 1 of the ListLoader has 3 modalities but earlier batches had 2; every batch "
         "must hold the same modalities"),
    Case("loader_rows_differ_within_a_batch", None, None,
         lambda tmp, base: _fit_loader(_loader(slice(64, 128), slice(64, 127)), tmp),
         "batch 1 of the ListLoader is not paired row by row (modality 1 has 64, modality 2 "
         "has 63 rows); every modality of a batch needs the same rows"),
    Case("no_rows", _save("empty.npy", np.zeros((0, D), dtype=np.float32)),
         _fit_argv("{tmp}/empty.npy", "{tmp}/empty.npy"),
         lambda tmp, base: _fit(np.zeros((0, D)), np.zeros((0, D)), tmp),
         f"X1 is empty (shape (0, {D})); it needs rows and features",
         cli_message="{tmp}/empty.npy has no data rows; it needs at least one sample per row"),
    Case("csv_without_data_rows", _write("header.csv", "a,b,c\n"),
         _fit_argv("{tmp}/header.csv"), lambda tmp, base: read_array(tmp / "header.csv"),
         "{tmp}/header.csv has no data rows; it needs one row per sample",
         cli_message="{tmp}/header.csv has a header but no data rows"),
    Case("fewer_rows_than_batch",  # the message suggests a batch size that fits
         _save("few.npy", np.random.default_rng(3).normal(size=(50, D))),
         _fit_argv("{tmp}/few.npy", "{tmp}/few.npy"),
         lambda tmp, base: _fit(np.load(tmp / "few.npy"), np.load(tmp / "few.npy"), tmp),
         "X1 has 50 rows, fewer than batch_size=64; set batch_size=32 (or another value "
         "<= 50)"),
    Case("non_numeric_csv", _write("text.csv", "a,b,c\n1,2,3\n4,5,oops\n"),
         _fit_argv("{tmp}/text.csv"), lambda tmp, base: read_array(tmp / "text.csv"),
         "{tmp}/text.csv has non-numeric or ragged values ({ANY}'oops'{ANY})",
         cli_message="{tmp}/text.csv: column 'c' is not numeric (value 'oops' at line 3); drop "
         "it, or name it with id_column/label_columns (CLI: --id-column/--label-columns)"),
    Case("non_numeric_array", _save("strings.npy", np.array([["a", "b"]] * N)),
         _fit_argv("{tmp}/strings.npy"),
         lambda tmp, base: _fit(np.array([["a", "b"]] * N), _ok(base)[1], tmp),
         "X1 must be numeric, got dtype <U1; convert or drop non-numeric columns first",
         cli_message="{tmp}/strings.npy has non-numeric dtype <U1; store numbers"),
    Case("ragged_csv", _write("ragged.csv", "1,2,3\n4,5\n"), _fit_argv("{tmp}/ragged.csv"),
         lambda tmp, base: read_array(tmp / "ragged.csv"),
         "{tmp}/ragged.csv has non-numeric or ragged values (the number of columns changed "
         "from 3 to 2{ANY})",
         cli_message="{tmp}/ragged.csv: line 2 has 2 fields, the first line has 3; every row "
         "needs the same columns"),
    Case("transform_other_feature_count", _save("narrow.npy", np.ones((N, D - 1))),
         ["transform", "--model", "{base}/model", "--x1", "{base}/ok1.npy", "--x2",
          "{tmp}/narrow.npy", "--out", "{tmp}/emb.npz", "--device", "cpu"],
         lambda tmp, base: DisentangledSSL.load(base / "model", device="cpu").transform(
             _ok(base)[0], np.ones((N, D - 1))),
         f"X2 has {D - 1} features but the model was fitted with {D}"),
    Case("unknown_option", None,
         ["fit", "--data", "{base}/data.npz", "--out", "{tmp}/out", "--betta", "1"],
         lambda tmp, base: DisentangledSSL().set_params(betta=1.0),
         "Invalid parameter 'betta' for estimator DisentangledSSL(){ANY}",
         cli_message="unrecognized arguments: --betta 1", api_error=ValueError, argparse=True),
    Case("unknown_method", None, ["compare", "--methods", "joint,nope", "--out", "{tmp}/cmp",
                                  "--quiet"],
         lambda tmp, base: _fit(*_ok(base), tmp, method="nope"),
         "unknown method 'nope'; choose one of: clip, simclr, joint, focal, dmvae, factorcl, "
         "disentangled_ssl"),
    Case("unknown_device", None, _fit_argv("{base}/ok1.npy", "{base}/ok2.npy", "--device",
                                           "tpu"),
         lambda tmp, base: _fit(*_ok(base), tmp, device="tpu"),
         "unknown device 'tpu'; use 'auto', 'cpu' or 'cuda[:N]'"),
    Case("negative_beta", None, _fit_argv("{base}/ok1.npy", "{base}/ok2.npy", "--beta", "-0.5"),
         lambda tmp, base: _fit(*_ok(base), tmp, beta=-0.5),
         "beta must be a finite number >= 0, got -0.5"),
    Case("infinite_lambda", None, _fit_argv("{base}/ok1.npy", "{base}/ok2.npy", "--lam", "inf"),
         lambda tmp, base: _fit(*_ok(base), tmp, lam=float("inf")),
         "lam must be a finite number >= 0, got inf"),
    Case("negative_kappa", None, _fit_argv("{base}/ok1.npy", "{base}/ok2.npy", "--kappa", "-3"),
         lambda tmp, base: _fit(*_ok(base), tmp, kappa=-3.0),
         "kappa must be a positive finite number, got -3.0"),
    Case("nan_learning_rate", None, _fit_argv("{base}/ok1.npy", "{base}/ok2.npy", "--lr", "nan"),
         lambda tmp, base: _fit(*_ok(base), tmp, lr=float("nan")),
         "lr must be a positive finite number, got nan"),
    Case("negative_learning_rate", None,
         _fit_argv("{base}/ok1.npy", "{base}/ok2.npy", "--lr", "-0.001"),
         lambda tmp, base: _fit(*_ok(base), tmp, lr=-0.001),
         "lr must be a positive finite number, got -0.001"),
    Case("missing_file", None, _fit_argv("{tmp}/absent.npy"),
         lambda tmp, base: read_array(tmp / "absent.npy"), "file not found: {tmp}/absent.npy"),
    Case("truncated_npy", lambda tmp, base: (tmp / "cut.npy").write_bytes(
        (base / "ok1.npy").read_bytes()[:-100]), _fit_argv("{tmp}/cut.npy"),
         lambda tmp, base: read_array(tmp / "cut.npy"),
         "{tmp}/cut.npy is truncated or corrupt (Failed to read all data for array.{ANY})"),
    Case("truncated_npz", lambda tmp, base: (tmp / "cut.npz").write_bytes(
        (base / "data.npz").read_bytes()[:-200]),
         ["fit", "--data", "{tmp}/cut.npz", "--out", "{tmp}/out", *FIT],
         lambda tmp, base: read_paired(tmp / "cut.npz"),
         "{tmp}/cut.npz is not a readable .npz file (File is not a zip file)"),
    Case("npz_named_npy", lambda tmp, base: shutil.copy(base / "data.npz", tmp / "arch.npy"),
         _fit_argv("{tmp}/arch.npy"), lambda tmp, base: read_array(tmp / "arch.npy"),
         "{tmp}/arch.npy is an .npz archive, not an .npy file; name it .npz and pass "
         "{tmp}/arch.npz:KEY"),
    Case("text_named_npy", _write("text.npy", "1,2\n3,4\n"), _fit_argv("{tmp}/text.npy"),
         lambda tmp, base: read_array(tmp / "text.npy"),
         "{tmp}/text.npy is not an .npy file (no NumPy header); write it with numpy.save, or "
         "use .csv for text"),
    Case("binary_csv", _write("bin.csv", bytes(range(128, 256)) * 4),
         _fit_argv("{tmp}/bin.csv"), lambda tmp, base: read_array(tmp / "bin.csv"),
         "{tmp}/bin.csv is not a UTF-8 text file",
         cli_message="{tmp}/bin.csv is not a UTF-8 text file ({ANY})"),
    Case("unsupported_extension", _write("sheet.xlsx", b"PK\x03\x04 not really"),
         _fit_argv("{tmp}/sheet.xlsx"), lambda tmp, base: read_array(tmp / "sheet.xlsx"),
         "unsupported file type '.xlsx' for {tmp}/sheet.xlsx; use .npy, .npz (file.npz:key) "
         "or .csv",
         cli_message="unsupported file type '.xlsx' for {tmp}/sheet.xlsx; use .npy, .npz, "
         ".csv, .tsv, .parquet, .h5ad or .h5mu (cells.h5mu:MODALITY)"),
    Case("pickle_in_npy", _pickled_npy, _fit_argv("{tmp}/evil.npy"),
         lambda tmp, base: read_array(tmp / "evil.npy"),
         "{tmp}/evil.npy holds Python objects (pickled data); it is refused because "
         "unpickling can run arbitrary code: save a numeric array instead (e.g. np.save(f, "
         "x.astype(np.float32)))"),
    Case("pickle_in_npz", _pickled_npz,
         ["fit", "--data", "{tmp}/evil.npz", "--out", "{tmp}/out", *FIT],
         lambda tmp, base: read_paired(tmp / "evil.npz"),
         "{tmp}/evil.npz:x1 holds Python objects (pickled data); it is refused because "
         "unpickling can run arbitrary code: save a numeric array instead (e.g. np.save(f, "
         "x.astype(np.float32)))"),
    Case("npz_without_x2", lambda tmp, base: np.savez(tmp / "half.npz", x1=np.ones((N, D))),
         ["fit", "--data", "{tmp}/half.npz", "--out", "{tmp}/out", *FIT],
         lambda tmp, base: read_paired(tmp / "half.npz"),
         "{tmp}/half.npz lacks array(s) ['x2']; it holds ['x1']"),
    Case("output_exists", lambda tmp, base: (tmp / "out").mkdir(),
         _fit_argv(), lambda tmp, base: DisentangledSSL.load(base / "model").save(tmp / "out"),
         "{tmp}/out already exists; pass overwrite=True (CLI: --overwrite)",
         cli_message="{tmp}/out already exists; pass --overwrite to replace it"),
    Case("embeddings_output_exists", _write("emb.npz", b"keep me"),
         ["transform", "--model", "{base}/model", "--data", "{base}/data.npz", "--out",
          "{tmp}/emb.npz"], None, "",
         cli_message="{tmp}/emb.npz already exists; pass --overwrite to replace it"),
    Case("output_under_a_file", _write("file.txt", "x"),
         ["fit", "--data", "{base}/data.npz", "--out", "{tmp}/file.txt/model", *FIT], None, "",
         cli_message="cannot write {tmp}/file.txt/model: {tmp}/file.txt is a file, not a "
         "folder"),
    Case("model_from_other_version",
         lambda tmp, base: _model_copy(tmp, base, _edit_config(format_version=99)),
         ["transform", "--model", "{tmp}/m", "--data", "{base}/data.npz", "--out",
          "{tmp}/emb.npz"],
         lambda tmp, base: DisentangledSSL.load(tmp / "m"),
         f"{{tmp}}/m was written in model format 99 (library {__version__}); this library "
         f"({__version__}) reads format 1"),
    Case("model_config_tampered",
         lambda tmp, base: _model_copy(tmp, base, _edit_config(hidden_dim=32)),
         ["transform", "--model", "{tmp}/m", "--data", "{base}/data.npz", "--out",
          "{tmp}/emb.npz"],
         lambda tmp, base: DisentangledSSL.load(tmp / "m"),
         "{tmp}/m/model.safetensors does not match the architecture in {tmp}/m/config.json "
         "(tampered or mixed-up files)"),
    Case("model_weights_truncated", lambda tmp, base: _model_copy(tmp, base, _truncate),
         ["evaluate", "--model", "{tmp}/m", "--data", "{base}/data.npz", "--out",
          "{tmp}/metrics.json"],
         lambda tmp, base: DisentangledSSL.load(tmp / "m"),
         "{tmp}/m/model.safetensors is damaged or not the file this model saved: its SHA-256 "
         "differs from the one recorded in {tmp}/m/config.json; save the model again or restore "
         "the file"),
    Case("checkpoint_tampered", _tampered_checkpoint, _fit_argv(x1="{base}/ok1.npy")
         + ["--resume"],
         lambda tmp, base: DisentangledSSL.from_checkpoint(tmp / "ck"),
         "{tmp}/ck/checkpoint.safetensors failed its checksum: the checkpoint was modified or "
         "corrupted; delete it and start the run again"),
    Case("checkpoint_exists_without_resume", _existing_checkpoint, _fit_argv(),
         lambda tmp, base: _fit(*_ok(base), tmp),
         "{tmp}/ck/checkpoint.safetensors holds the checkpoint of an earlier run; pass "
         "resume=True (CLI: --resume) to continue it, or delete it (CLI: --overwrite) to "
         "start again"),
    Case("resume_without_checkpoint_dir", None,
         ["fit", "--data", "{base}/data.npz", "--out", "{tmp}/out", "--resume", *FIT],
         lambda tmp, base: DisentangledSSL(**EST).fit(*_ok(base), resume=True),
         "resume=True needs checkpoint_dir, the folder of the run to continue (CLI: "
         "--checkpoint-dir DIR --resume)"),
]
def _resolve(argv: list[str], tmp: Path, base: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)).replace("{base}", str(base)) for a in argv]


def test_catalogue_is_large_and_distinct():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) >= 15
    assert sum(c.argv is not None for c in CASES) >= 15
    assert sum(c.api is not None for c in CASES) >= 15


@pytest.mark.parametrize("case", [c for c in CASES if c.argv is not None], ids=lambda c: c.name)
def test_cli_bad_input_one_line_exit_2_nothing_written(case, tmp_path, base, capsys):
    if case.setup is not None:
        case.setup(tmp_path, base)
    before = _snapshot(tmp_path, base)
    capsys.readouterr()
    try:
        code = main(_resolve(case.argv, tmp_path, base))
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in err
    if case.argparse:  # argparse: its (wrapped) usage, then one error line
        assert lines[0].startswith("usage: dssl") and lines[-1].startswith("dssl: error: ")
    else:
        assert len(lines) == 1, err
    message = case.cli_message if case.cli_message is not None else case.api_message
    assert re.fullmatch("dssl: error: " + _pattern(message, tmp_path, base), lines[-1]), lines
    assert _snapshot(tmp_path, base) == before
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("case", [c for c in CASES if c.api is not None], ids=lambda c: c.name)
def test_api_bad_input_exact_message_nothing_written(case, tmp_path, base):
    if case.setup is not None:
        case.setup(tmp_path, base)
    before = _snapshot(tmp_path, base)
    with pytest.raises(case.api_error) as info:
        case.api(tmp_path, base)
    assert re.fullmatch(_pattern(case.api_message, tmp_path, base), str(info.value)), str(
        info.value)
    assert _snapshot(tmp_path, base) == before
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("standardize", [False, True], ids=["raw", "standardized"])
def test_constant_column_is_accepted(tmp_path, base, capsys, standardize):
    """A constant column is not refused (API or CLI): as scikit-learn's StandardScaler, it
    keeps scale 1, and the embeddings are finite."""
    x1, x2 = np.load(base / "ok1.npy"), _with_constant()
    np.save(tmp_path / "const.npy", x2)
    est = DisentangledSSL(**EST, standardize=standardize).fit(x1, x2)
    emb = est.transform(x1, x2).as_dict()
    assert all(np.isfinite(v).all() for v in emb.values())
    if standardize:
        assert float(est.model_.input_scale_1[3]) == 1.0
    flags = ["--standardize"] if standardize else []
    assert main(["fit", "--x1", str(base / "ok1.npy"), "--x2", str(tmp_path / "const.npy"),
                 "--out", str(tmp_path / "m"), *FIT, *flags]) == 0
    assert main(["transform", "--model", str(tmp_path / "m"), "--x1", str(base / "ok1.npy"),
                 "--x2", str(tmp_path / "const.npy"), "--out", str(tmp_path / "emb.npz"),
                 "--device", "cpu"]) == 0
    assert "error" not in capsys.readouterr().err
    cli = np.load(tmp_path / "emb.npz")
    assert sorted(cli.files) == sorted(emb)
    for key, value in emb.items():  # same data, settings and seed as the API fit
        assert np.isfinite(cli[key]).all()
        np.testing.assert_allclose(cli[key], value, rtol=1e-4, atol=1e-5)


def test_pickle_payload_is_never_executed(tmp_path):
    """The catalogue's pickle files really would run code if unpickled."""
    _pickled_npy(tmp_path, tmp_path)
    np.load(tmp_path / "evil.npy", allow_pickle=True)  # what a careless reader would do
    assert (tmp_path / "PWNED").exists()


def test_real_process_prints_one_line_and_no_traceback(tmp_path, base):
    """The console script itself (not only ``main``): stderr is one line, exit code 2."""
    x = _with_nan()
    np.save(tmp_path / "nan.npy", x)
    result = subprocess.run(
        [sys.executable, "-m", "disentangled_ssl.cli", *_resolve(_fit_argv("{tmp}/nan.npy"),
                                                                   tmp_path, base)],
        capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"dssl: error: {tmp_path}/nan.npy: column '2' has a missing, NaN or infinite value at "
        "row 3 (1 such entries in the file); impute or drop them first"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.npy"]


UNSAFE = r"\btorch\.load\(|\bpickle\.(load|loads|Unpickler)\b|allow_pickle=True"
# The one deliberate exception: the paper's MultiBench files exist only as pickles, read by
# an allow-list unpickler (tested below to refuse a payload that would run code).
ALLOWED_UNPICKLERS = {"published.py: class _RestrictedUnpickler(pickle.Unpickler):"}


def test_no_code_path_unpickles(tmp_path, base, monkeypatch):
    """Models, checkpoints and arrays load with pickle disabled, and no source file calls
    torch.load, pickle, or np.load without allow_pickle=False."""
    source = Path(__file__).parents[1] / "src" / "disentangled_ssl"
    offenders = []
    for file in source.rglob("*.py"):
        for number, line in enumerate(file.read_text().splitlines(), 1):
            code = line.split("#")[0]
            unsafe = (re.search(UNSAFE, code)
                      or ("np.load(" in code and "allow_pickle=False" not in code))
            if unsafe and f"{file.name}: {line.strip()}" not in ALLOWED_UNPICKLERS:
                offenders.append(f"{file.name}:{number}: {line.strip()}")
    assert offenders == []

    def refuse(*args, **kwargs):
        raise AssertionError("something tried to unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    x1, x2 = _ok(base)
    est = DisentangledSSL.load(base / "model", device="cpu")
    assert est.transform(x1, x2).shared1.shape == (N, 4)
    DisentangledSSL(**EST, checkpoint_dir=str(tmp_path / "ck")).fit(x1, x2)
    assert DisentangledSSL.from_checkpoint(tmp_path / "ck").history_.keys() == {
        "shared", "specific"}
    assert read_array(base / "ok1.npy").shape == (N, D)
    assert read_paired(base / "data.npz").x2.shape == (N, D)


def test_restricted_unpickler_refuses_code(tmp_path):
    """``data.published.safe_load_pickle`` (MultiBench's pickled features) admits arrays and
    containers only: the payload that runs code is refused and never executed."""
    from disentangled_ssl.data.published import safe_load_pickle

    good = {"train": {"vision": np.ones((2, 3, 4), dtype=np.float32), "labels": [1.0, -1.0]}}
    (tmp_path / "good.pkl").write_bytes(pickle.dumps(good))
    loaded = safe_load_pickle(tmp_path / "good.pkl")
    assert np.array_equal(loaded["train"]["vision"], good["train"]["vision"])
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"x": _Unpickled(str(tmp_path / "PWNED"))}))
    with pytest.raises(DSSLError, match=re.escape(
            f"{tmp_path}/evil.pkl: refusing to unpickle io.open: only numpy arrays and "
            "built-in containers are allowed")):
        safe_load_pickle(tmp_path / "evil.pkl")
    assert not (tmp_path / "PWNED").exists()
