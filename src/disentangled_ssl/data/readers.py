"""Reading paired multimodal tables: .npy/.npz, CSV/TSV, parquet and AnnData .h5ad.

Each modality is one table (one row per sample). Tables are paired either row by row or, with an
``id_column``, by joining on a shared ID. Optional ``label_columns`` are pulled out of the tables
(they are not features) and kept for evaluation (linear probes). Everything is validated before
any training, and every failure is a :class:`~disentangled_ssl.DSSLError` naming the file, the
column and the row:

- empty files, tables without rows or without feature columns;
- non-numeric feature columns (with the first offending value and its line);
- missing values, NaN and infinities (first offending column and row);
- mismatched row counts, duplicate IDs, IDs present in one file and missing from another;
- fewer rows than the training batch size.

Constant feature columns are accepted (standardisation gives them scale 1, as scikit-learn's
``StandardScaler``); ``check_constant=True`` refuses them on request.

A ``.npy`` file or ``.npz`` array keeps its shape, so it can hold any modality kind: (n, d)
vectors, (n, T, d) sequences, (n, C, H, W) images; an integer array stays integer (int64), so
it can be a ``tokens`` modality, and every other array becomes float32. Text, parquet and
``.h5ad`` tables are (n, d) float32 by nature.

Files are never unpickled: ``.npy``/``.npz`` are opened with ``allow_pickle=False``. Parquet
needs ``pyarrow`` and ``.h5ad`` needs ``anndata`` (``pip install 'disentangled-ssl[data]'``).

For data that does not fit in memory, :class:`MultimodalDataset` reads rows lazily from
memory-mapped ``.npy`` files (or any array-like with fancy indexing), validates them in chunks
and plugs into a ``torch.utils.data.DataLoader``; see :func:`transform_dataset` and
``docs/real-data.md``.
"""

from __future__ import annotations

import csv
import os
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.data.anndata_io import read_h5_elem
from disentangled_ssl.data.io import load_npy, open_npz
from disentangled_ssl.data.synthetic import split_indices

__all__ = [
    "MultimodalData",
    "MultimodalDataset",
    "Table",
    "check_batch_size",
    "read_multimodal",
    "read_table",
    "transform_dataset",
]

_TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": ","}
_MISSING = {"", "na", "nan", "null", "none", "n/a"}


# ---------------------------------------------------------------------------------------------
# containers
# ---------------------------------------------------------------------------------------------
@dataclass
class Table:
    """One modality read from one file.

    Attributes:
        features: (n, d) float32 feature matrix; from ``.npy``/``.npz``, an array of any rank
            >= 2 (n, ...), int64 when the file holds integers (token ids), else float32.
        feature_names: d column names (``"0"``, ``"1"``, … when the file has none); empty for
            an array of rank > 2.
        ids: (n,) string IDs, or None without an ID column.
        labels: label column name -> (n,) labels (int64 when every value is an integer,
            strings otherwise).
        source: the file (and key) it came from, used in error messages.
    """

    features: np.ndarray
    feature_names: list[str]
    ids: np.ndarray | None
    labels: dict[str, np.ndarray]
    source: str

    def __len__(self) -> int:
        return int(self.features.shape[0])


@dataclass
class MultimodalData:
    """M >= 2 paired modalities (row k of every view is the same sample).

    Attributes:
        views: per modality an (n, ...) array: (n, d_i) float32 tables, or from
            ``.npy``/``.npz`` any rank (sequences, images) and int64 for integer arrays
            (token ids).
        labels: name -> (n,) label vector, for evaluation only.
        ids: (n,) sample IDs or None.
        view_names: one name per view (file name or dataset view name).
        feature_names: per view, its column names (empty list when unknown).
        vocabularies: view name -> the words of a token-id view (``vocabulary[id]``; id 0 is
            padding), e.g. the captions of ``emoji-captions``.
    """

    views: list[np.ndarray]
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    ids: np.ndarray | None = None
    view_names: list[str] = field(default_factory=list)
    feature_names: list[list[str]] = field(default_factory=list)
    vocabularies: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.views) < 1:
            raise DSSLError("MultimodalData needs at least one view")
        if not self.view_names:
            self.view_names = [f"x{i + 1}" for i in range(len(self.views))]
        rows = {int(v.shape[0]) for v in self.views}
        if len(rows) != 1:
            detail = ", ".join(f"{n} has {v.shape[0]}" for n, v in zip(self.view_names,
                                                                       self.views))
            raise DSSLError(f"views must be paired row by row but {detail} rows")

    def __len__(self) -> int:
        return int(self.views[0].shape[0])

    @property
    def n_modalities(self) -> int:
        return len(self.views)

    @property
    def x1(self) -> np.ndarray:
        return self.views[0]

    @property
    def x2(self) -> np.ndarray:
        return self.views[1]

    def subset(self, index: np.ndarray) -> MultimodalData:
        """Rows ``index`` of every view, label and ID."""
        return MultimodalData(
            [v[index] for v in self.views],
            {k: v[index] for k, v in self.labels.items()},
            None if self.ids is None else self.ids[index],
            list(self.view_names),
            [list(f) for f in self.feature_names],
            dict(self.vocabularies),
        )

    def select(self, views: Sequence[int | str]) -> MultimodalData:
        """Keep only some views, by index or name, in the given order."""
        index = []
        for v in views:
            if isinstance(v, str):
                if v not in self.view_names:
                    raise DSSLError(f"no view named {v!r}; the views are {self.view_names}")
                index.append(self.view_names.index(v))
            else:
                if not 0 <= int(v) < len(self.views):
                    raise DSSLError(f"view index {v} out of range for {len(self.views)} views")
                index.append(int(v))
        names = [self.feature_names[i] for i in index] if self.feature_names else []
        kept = [self.view_names[i] for i in index]
        return MultimodalData([self.views[i] for i in index], dict(self.labels), self.ids,
                              kept, names,
                              {k: v for k, v in self.vocabularies.items() if k in kept})

    def split(self, test_fraction: float = 0.2, seed: int = 0
              ) -> tuple[MultimodalData, MultimodalData]:
        """Seeded random train/test split (the same permutation as ``PairedData.split``)."""
        train, test = split_indices(len(self), test_fraction, seed)
        return self.subset(train), self.subset(test)

    def stratified_split(self, label: str, test_size: int | float, seed: int = 0
                         ) -> tuple[MultimodalData, MultimodalData]:
        """Train/test split keeping the class proportions of ``labels[label]``
        (``test_size`` rows, or a fraction of the rows)."""
        from sklearn.model_selection import train_test_split

        if label not in self.labels:
            raise DSSLError(f"no label {label!r}; the labels are {sorted(self.labels)}")
        train, test = train_test_split(np.arange(len(self)), test_size=test_size,
                                       random_state=seed, stratify=self.labels[label])
        return self.subset(np.sort(train)), self.subset(np.sort(test))


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _split_spec(spec: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """``file.npz:key`` / ``file.h5ad:obsm/X_pca`` / ``cells.h5mu:rna`` -> (path, key)."""
    text = str(spec)
    for suffix in (".npz:", ".h5ad:", ".h5mu:"):
        if suffix in text:
            path, key = text.split(suffix, 1)
            return Path(path + suffix[:-1]), key
    return Path(text), None


def _parse_labels(values: np.ndarray, source: str, column: str) -> np.ndarray:
    """Labels as int64 when every value is an integer, else as strings; no missing values."""
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values)
        if bad.any():
            raise DSSLError(f"{source}: label column {column!r} has a missing or non-finite "
                            f"value at row {int(np.flatnonzero(bad)[0])}; drop or fill it")
        if np.all(values == np.round(values)):
            return values.astype(np.int64)
        return values
    text = values.astype(str)
    missing = np.isin(np.char.lower(np.char.strip(text)), list(_MISSING))
    if missing.any():
        raise DSSLError(f"{source}: label column {column!r} has a missing value at row "
                        f"{int(np.flatnonzero(missing)[0])}; drop or fill it")
    try:
        as_float = text.astype(np.float64)
    except ValueError:
        return text
    return _parse_labels(as_float, source, column)


def _check_ids(ids: np.ndarray, source: str, column: str) -> np.ndarray:
    ids = np.asarray(ids).astype(str)
    blank = np.char.strip(ids) == ""
    if blank.any():
        raise DSSLError(f"{source}: ID column {column!r} is empty at row "
                        f"{int(np.flatnonzero(blank)[0])}; every row needs an ID")
    values, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = int(np.argmax(counts > 1))
        rows = np.flatnonzero(ids == values[dup])[:2]
        raise DSSLError(f"{source}: ID {str(values[dup])!r} appears {counts[dup]} times in column "
                        f"{column!r} (rows {rows[0]} and {rows[1]}); IDs must be unique")
    return ids


def _check_features(features: np.ndarray, names: Sequence[str], source: str, *,
                    row_offset: int = 0, check_constant: bool = False,
                    keep_integers: bool = False) -> np.ndarray:
    """Finite, non-empty float32 (n, ...) (int64 for integer arrays with ``keep_integers``);
    errors name the file, column (or position) and row (``row_offset`` turns a 0-based data
    row into a file line number for text files). ``check_constant`` also refuses constant
    feature columns (off by default: they are standardised with scale 1)."""
    if features.ndim < 2 or features.shape[0] == 0:
        raise DSSLError(f"{source} has no data rows; it needs at least one sample per row")
    if features.ndim == 2 and features.shape[1] == 0:
        raise DSSLError(f"{source} has no feature columns left (after removing the ID and label "
                        "columns)")
    if 0 in features.shape[1:]:
        raise DSSLError(f"{source} has shape {features.shape}: its rows hold no values")
    if keep_integers and features.dtype.kind in "iu":  # token ids stay integers
        if features.dtype == np.uint64 and int(features.max()) > np.iinfo(np.int64).max:
            raise DSSLError(f"{source} holds integers up to {int(features.max())}, beyond "
                            "int64; store smaller ids")
        features = np.ascontiguousarray(features, dtype=np.int64)
    else:
        features = np.ascontiguousarray(features, dtype=np.float32)
        _check_finite(features, names, source, row_offset)
    if check_constant and features.shape[0] > 1:
        flat = features.reshape(features.shape[0], -1)
        constant = np.flatnonzero(np.ptp(flat, axis=0) == 0)
        if constant.size:
            shown = ", ".join(repr(_column_name(names, features.shape, c))
                              for c in constant[:5])
            more = f" and {constant.size - 5} more" if constant.size > 5 else ""
            raise DSSLError(
                f"{source}: column {shown}{more} is constant (value {flat[0, constant[0]]}); "
                "drop it, or read without check_constant (standardisation gives a constant "
                "column scale 1)"
            )
    return features


def _check_finite(features: np.ndarray, names: Sequence[str], source: str, row_offset: int
                  ) -> None:
    """Refuse NaN/inf, naming the column (tables) or the position in the row (N-D arrays)."""
    finite = np.isfinite(features)
    if finite.all():
        return
    first = [int(v) for v in np.argwhere(~finite)[0]]
    row, count = first[0], int((~finite).sum())
    if features.ndim == 2:
        where = f"line {row + row_offset}" if row_offset else f"row {row}"
        raise DSSLError(
            f"{source}: column {names[first[1]]!r} has a missing, NaN or infinite value at "
            f"{where} ({count} such entries in the file); impute or drop them first")
    raise DSSLError(
        f"{source} has a NaN or infinite value at row {row}, position {tuple(first[1:])} "
        f"({count} such entries in the file); impute or drop them first")


def _column_name(names: Sequence[str], shape: tuple[int, ...], flat: int) -> str:
    """Column ``flat`` of the flattened rows: its name (2-D) or its position (N-D)."""
    if len(shape) == 2:
        return str(names[flat])
    return str(tuple(int(v) for v in np.unravel_index(flat, shape[1:])))


def _resolve_columns(header: Sequence[str], wanted: Sequence[str], source: str, kind: str,
                     *, missing_ok: bool = False) -> list[int]:
    index = []
    for name in wanted:
        if name in header:
            index.append(list(header).index(name))
        elif not missing_ok:
            shown = ", ".join(repr(h) for h in list(header)[:20])
            raise DSSLError(f"{source} has no {kind} column {name!r}; its columns are {shown}")
    return index


# ---------------------------------------------------------------------------------------------
# per-format readers: each returns (header, columns as arrays, row_offset)
# ---------------------------------------------------------------------------------------------
def _read_text(path: Path) -> tuple[list[str] | None, list[np.ndarray], int]:
    delimiter = _TEXT_SUFFIXES[path.suffix.lower()]
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            rows = [r for r in csv.reader(fh, delimiter=delimiter) if r]
    except UnicodeDecodeError as exc:
        raise DSSLError(f"{path} is not a UTF-8 text file ({exc})") from exc
    except csv.Error as exc:
        raise DSSLError(f"{path} is not a valid delimited text file ({exc})") from exc
    if not rows:
        raise DSSLError(f"{path} is empty; it needs one row per sample")
    first = [c.strip() for c in rows[0]]
    try:
        [float(c) for c in first]
        header = None
    except ValueError:
        header = first
    data = rows[1:] if header is not None else rows
    width = len(rows[0])
    for k, row in enumerate(data):
        if len(row) != width:
            line = k + (2 if header is not None else 1)
            raise DSSLError(f"{path}: line {line} has {len(row)} fields, the first line has "
                            f"{width}; every row needs the same columns")
    if not data:
        raise DSSLError(f"{path} has a header but no data rows")
    cells = np.array(data, dtype=str).reshape(len(data), width)
    offset = 2 if header is not None else 1
    return header, [np.char.strip(cells[:, j]) for j in range(width)], offset


def _text_column_to_float(column: np.ndarray, source: str, name: str, offset: int
                          ) -> np.ndarray:
    lowered = np.char.lower(column)
    missing = np.isin(lowered, list(_MISSING))
    filled = np.where(missing, "nan", column)
    try:
        return filled.astype(np.float64)
    except ValueError:
        for k, value in enumerate(filled):  # error path only: find the first bad cell
            try:
                float(value)
            except ValueError:
                raise DSSLError(
                    f"{source}: column {name!r} is not numeric (value {str(value)!r} at line "
                    f"{k + offset}); drop it, or name it with id_column/label_columns "
                    "(CLI: --id-column/--label-columns)"
                ) from None
        raise


def _read_parquet(path: Path) -> tuple[list[str], list[np.ndarray], int]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DSSLError(f"reading {path} needs pyarrow: pip install 'disentangled-ssl[data]'"
                        ) from exc
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises its own error types on corrupt files
        raise DSSLError(f"{path} is not a readable parquet file ({exc})") from exc
    columns = []
    for col in table.columns:
        array = col.to_numpy(zero_copy_only=False)
        if col.null_count and array.dtype.kind in "iub":
            array = array.astype(np.float64)  # nulls become NaN and are reported as missing
        columns.append(array)
    return [str(n) for n in table.column_names], columns, 0


def _parquet_column_to_float(column: np.ndarray, source: str, name: str) -> np.ndarray:
    if column.dtype.kind in "iufb":
        return column.astype(np.float64)
    bad = next((v for v in column if not isinstance(v, (int, float, np.number))), None)
    raise DSSLError(f"{source}: column {name!r} is not numeric (dtype {column.dtype}, value "
                    f"{bad!r}); drop it, or name it with id_column/label_columns")


def _read_h5ad(path: Path, key: str | None, id_column: str | None,
               label_columns: Sequence[str], missing_ok: bool) -> Table:
    try:
        import anndata
    except ImportError as exc:
        raise DSSLError(f"reading {path} needs anndata: pip install 'disentangled-ssl[data]'"
                        ) from exc
    source = f"{path}:{key}" if key else str(path)
    try:
        adata = anndata.read_h5ad(path)
    except Exception as exc:  # h5py/anndata raise many types on corrupt files
        raise DSSLError(f"{path} is not a readable AnnData .h5ad file ({exc})") from exc
    return _anndata_table(adata, path, key, source, id_column, label_columns, missing_ok)


def h5mu_modalities(path: Path) -> list[str]:
    """The modality names of a MuData ``.h5mu`` file (its ``/mod`` groups)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "mod" not in f:
                raise DSSLError(f"{path} is not a MuData .h5mu file (no /mod group)")
            return [str(k) for k in f["mod"]]
    except OSError as exc:
        raise DSSLError(f"{path} is not a readable MuData .h5mu file ({exc})") from exc


def _read_h5mu(path: Path, key: str | None, id_column: str | None,
               label_columns: Sequence[str], missing_ok: bool) -> Table:
    """One modality of a MuData file: ``cells.h5mu:rna`` (its X), ``cells.h5mu:rna/layers/NAME``
    or ``cells.h5mu:rna/obsm/NAME``; IDs are its ``obs_names`` (or an obs column); labels are
    obs columns of the modality, else of the file's global obs."""
    try:
        import anndata  # noqa: F401
        import h5py
    except ImportError as exc:
        raise DSSLError(f"reading {path} needs anndata: pip install 'disentangled-ssl[data]'"
                        ) from exc
    names = h5mu_modalities(path)
    if not key:
        raise DSSLError(f"{path} is a MuData file: name the modality as {path}:NAME (its "
                        f"modalities: {', '.join(names)})")
    modality, _, rest = key.partition("/")
    if modality not in names:
        raise DSSLError(f"{path} has no modality {modality!r}; its modalities are "
                        f"{', '.join(names)}")
    try:
        with h5py.File(path, "r") as f:
            adata = read_h5_elem(f["mod"][modality])
            shared_obs = read_h5_elem(f["obs"]) if "obs" in f else None
    except Exception as exc:  # h5py/anndata raise many types on corrupt files
        raise DSSLError(f"{path}:{modality} is not a readable AnnData modality ({exc})") from exc
    if shared_obs is not None:  # global obs columns the modality lacks, on its rows
        extra = [c for c in shared_obs.columns if c not in adata.obs.columns]
        if extra:
            adata.obs = adata.obs.join(shared_obs[extra].reindex(adata.obs_names))
    return _anndata_table(adata, path, rest or None, f"{path}:{key}",
                          id_column if id_column is not None else "obs_names", label_columns,
                          missing_ok)


def _anndata_table(adata: Any, path: Path, key: str | None, source: str, id_column: str | None,
                   label_columns: Sequence[str], missing_ok: bool) -> Table:
    """The :class:`Table` of an AnnData: X, a layer or an obsm matrix; obs IDs and labels."""
    if key is None or key == "X":
        matrix, names = adata.X, [str(v) for v in adata.var_names]
    else:
        group, _, name = key.partition("/")
        store = {"layers": adata.layers, "obsm": adata.obsm}.get(group)
        if store is None or name not in store:
            raise DSSLError(f"{path} has no matrix {key!r}; use X, layers/NAME "
                            f"({list(adata.layers)}) or obsm/NAME ({list(adata.obsm)})")
        matrix = store[name]
        names = ([str(v) for v in adata.var_names] if group == "layers"
                 else [str(i) for i in range(np.shape(matrix)[1])])
    if matrix is None:
        raise DSSLError(f"{path} has no X matrix; name a layer as {path}:layers/NAME")
    if hasattr(matrix, "toarray"):
        matrix = matrix.toarray()
    matrix = np.asarray(matrix)
    if matrix.dtype.kind not in "iufb":
        raise DSSLError(f"{source}: matrix has non-numeric dtype {matrix.dtype}")
    obs = adata.obs
    ids = None
    if id_column is not None:
        if id_column in ("obs_names", "index"):
            ids = np.asarray(adata.obs_names).astype(str)
        elif id_column in obs.columns:
            ids = np.asarray(obs[id_column]).astype(str)
        else:
            raise DSSLError(f"{path} has no obs column {id_column!r} (use 'obs_names' for the "
                            f"index); its obs columns are {list(obs.columns)}")
        ids = _check_ids(ids, str(path), id_column)
    labels = {}
    for name in label_columns:
        if name in obs.columns:
            labels[name] = _parse_labels(np.asarray(obs[name]), str(path), name)
        elif not missing_ok:
            raise DSSLError(f"{path} has no obs column {name!r} for a label; its obs columns "
                            f"are {list(obs.columns)}")
    return Table(matrix, names, ids, labels, source)


def _read_npz(path: Path, key: str | None, id_column: str | None,
              label_columns: Sequence[str], missing_ok: bool
              ) -> tuple[np.ndarray, str | None, np.ndarray | None, dict[str, np.ndarray]]:
    archive = open_npz(path)  # refuses a non-zip file (e.g. an .npy named .npz)
    with archive:
        keys = list(archive.keys())
        if not keys:
            raise DSSLError(f"{path} is empty (no arrays)")
        aux = {k for k in [id_column, *label_columns] if k}
        if key is None:
            candidates = [k for k in keys if k not in aux]
            if len(candidates) != 1:
                raise DSSLError(f"{path} holds arrays {keys}; name the features as {path}:KEY")
            key = candidates[0]
        if key not in keys:
            raise DSSLError(f"{path} has no array {key!r}; it holds {keys}")
        try:
            features = archive[key]
            ids = None
            if id_column is not None:
                if id_column not in keys:
                    raise DSSLError(f"{path} has no ID array {id_column!r}; it holds {keys}")
                ids = archive[id_column]
            labels = {name: archive[name] for name in label_columns if name in keys}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise DSSLError(f"{path} is truncated or corrupt ({exc}); object arrays are "
                            "refused because they would need unpickling") from exc
    missing = [n for n in label_columns if n not in labels]
    if missing and not missing_ok:
        raise DSSLError(f"{path} has no label array {missing[0]!r}; it holds {keys}")
    return features, key, ids, labels


# ---------------------------------------------------------------------------------------------
# public readers
# ---------------------------------------------------------------------------------------------
def read_table(
    spec: str | os.PathLike[str],
    *,
    id_column: str | None = None,
    label_columns: Sequence[str] = (),
    check_constant: bool = False,
    missing_labels_ok: bool = False,
) -> Table:
    """Read one modality from a file and validate it.

    Args:
        spec: ``file.npy``; ``file.npz`` or ``file.npz:KEY`` (IDs and labels are other 1-D
            arrays of the archive); ``file.csv`` / ``file.tsv`` (a first row that is not all
            numbers is the header); ``file.parquet``; ``file.h5ad`` (``X``), or
            ``file.h5ad:layers/NAME`` / ``file.h5ad:obsm/NAME`` (IDs and labels are ``obs``
            columns; ``id_column="obs_names"`` uses the index).
        id_column: column holding a unique sample ID (excluded from the features).
        label_columns: columns holding labels for evaluation (excluded from the features).
        check_constant: refuse constant feature columns (off by default: standardisation
            gives a constant column scale 1).
        missing_labels_ok: skip label columns the file lacks (they may live in another file).

    Returns:
        A :class:`Table` with (n, d) float32 features; from ``.npy``/``.npz``, the array's own
        shape (rank >= 2), int64 for integer arrays and float32 otherwise.

    Raises:
        DSSLError: naming the file, column and row of the first problem found.
    """
    path, key = _split_spec(spec)
    label_columns = list(label_columns)
    if not path.is_file():
        raise DSSLError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise DSSLError(f"{path} is empty (0 bytes)")
    suffix = path.suffix.lower()
    source = str(path)
    if suffix in (".h5ad", ".h5mu"):
        read = _read_h5ad if suffix == ".h5ad" else _read_h5mu
        table = read(path, key, id_column, label_columns, missing_labels_ok)
        table.features = _check_features(table.features, table.feature_names, table.source,
                                         check_constant=check_constant)
        return table
    if suffix in (".npy", ".npz"):
        if suffix == ".npy":
            # Label columns may live in another file of read_multimodal (missing_labels_ok).
            if id_column is not None or (label_columns and not missing_labels_ok):
                raise DSSLError(f"{path} is a .npy file holding one array: it cannot hold an ID "
                                "or label column; use .npz (extra 1-D arrays), CSV or parquet")
            features = load_npy(path)  # refuses npz/text/truncated/pickle files by name
            ids, labels = None, {}
        else:
            features, key, ids, labels = _read_npz(path, key, id_column, label_columns,
                                                   missing_labels_ok)
            source = f"{path}:{key}"
        if features.dtype.kind not in "iufb":
            raise DSSLError(f"{source} has non-numeric dtype {features.dtype}; store numbers")
        if features.ndim < 2:
            raise DSSLError(f"{source} is 1-D (shape {features.shape}); store a (rows, "
                            "features) matrix, e.g. x.reshape(-1, 1)")
        # Any rank: (rows, features), (rows, time, features), (rows, C, H, W), ...
        names = [str(i) for i in range(features.shape[1])] if features.ndim == 2 else []
        if ids is not None:
            if ids.shape != (features.shape[0],):
                raise DSSLError(f"{path}: ID array {id_column!r} has shape {ids.shape}, "
                                f"expected ({features.shape[0]},)")
            ids = _check_ids(ids, source, str(id_column))
        for name, values in labels.items():
            if values.shape != (features.shape[0],):
                raise DSSLError(f"{path}: label array {name!r} has shape {values.shape}, "
                                f"expected ({features.shape[0]},)")
        labels = {k: _parse_labels(v, source, k) for k, v in labels.items()}
        features = _check_features(features, names, source, check_constant=check_constant,
                                   keep_integers=True)
        return Table(features, names, ids, labels, source)
    if suffix in _TEXT_SUFFIXES or suffix == ".parquet":
        if suffix == ".parquet":
            header, columns, offset = _read_parquet(path)
        else:
            header, columns, offset = _read_text(path)
        width = len(columns)
        if header is None:
            if id_column is not None or label_columns:
                raise DSSLError(f"{path} has no header row, so columns cannot be named; add a "
                                "header line with column names")
            header = [str(i) for i in range(width)]
        seen: set[str] = set()
        for name in header:
            if name in seen:
                raise DSSLError(f"{path}: column name {name!r} appears twice in the header")
            seen.add(name)
        id_index = _resolve_columns(header, [id_column] if id_column else [], source, "ID")
        label_index = _resolve_columns(header, label_columns, source, "label",
                                       missing_ok=missing_labels_ok)
        ids = _check_ids(columns[id_index[0]], source, str(id_column)) if id_index else None
        labels = {header[j]: _parse_labels(columns[j], source, header[j]) for j in label_index}
        skip = set(id_index) | set(label_index)
        # A label column found in another file must not be a feature here either.
        skip |= {j for j, h in enumerate(header) if h in label_columns}
        feature_index = [j for j in range(width) if j not in skip]
        names = [header[j] for j in feature_index]
        if suffix == ".parquet":
            cols = [_parquet_column_to_float(columns[j], source, header[j])
                    for j in feature_index]
        else:
            cols = [_text_column_to_float(columns[j], source, header[j], offset)
                    for j in feature_index]
        n = len(columns[0]) if columns else 0
        features = np.stack(cols, axis=1) if cols else np.empty((n, 0))
        features = _check_features(features, names, source, row_offset=offset,
                                   check_constant=check_constant)
        return Table(features, names, ids, labels, source)
    raise DSSLError(f"unsupported file type {suffix!r} for {path}; use .npy, .npz, .csv, .tsv, "
                    ".parquet, .h5ad or .h5mu (cells.h5mu:MODALITY)")


def check_batch_size(n_rows: int, batch_size: int, sources: Sequence[str]) -> None:
    """Refuse training data with fewer rows than one batch (contrastive steps need a full
    batch), naming the files."""
    if n_rows < batch_size:
        suggestion = 2 ** max(1, int(np.log2(max(n_rows, 2))))
        raise DSSLError(f"{', '.join(sources)}: {n_rows} paired rows, fewer than "
                        f"batch_size={batch_size}; use batch_size={suggestion} or more rows")


def read_multimodal(
    specs: Sequence[str | os.PathLike[str]],
    *,
    id_column: str | Sequence[str | None] | None = None,
    label_columns: Sequence[str] = (),
    join: str = "exact",
    batch_size: int | None = None,
    check_constant: bool = False,
) -> MultimodalData:
    """Read M >= 2 aligned tables (one per modality) and pair their rows.

    Args:
        specs: one file per modality (see :func:`read_table` for the formats), e.g. the
            modalities of one MuData file: ``["cells.h5mu:rna", "cells.h5mu:prot"]``.
        id_column: ID column name shared by all files, or one name per file. With IDs, rows are
            joined on them and put in the first file's order; without, files are paired row
            by row and must have the same number of rows. MuData modalities are joined on
            ``obs_names`` unless told otherwise.
        label_columns: label columns, each found in at least one file (if in several, their
            values must agree after the join).
        join: "exact" (every ID must be in every file) or "inner" (keep the IDs common to all
            files).
        batch_size: if given, refuse fewer paired rows than this.
        check_constant: refuse constant feature columns (off by default: standardisation
            gives a constant column scale 1).

    Returns:
        :class:`MultimodalData` with ``views`` (n, d_i) float32 (``.npy``/``.npz`` arrays
        keep their shape, and int64 when integer), ``labels``, ``ids``.

    Raises:
        DSSLError: naming the file, column, row or ID of the first problem.
    """
    if len(specs) < 2:
        raise DSSLError(f"need at least two files (one per modality), got {len(specs)}")
    if join not in ("exact", "inner"):
        raise DSSLError(f"join must be 'exact' or 'inner', got {join!r}")
    if id_column is None and all(_split_spec(s)[0].suffix.lower() == ".h5mu" for s in specs):
        id_column = "obs_names"  # MuData modalities are joined on their cells
    id_columns = (list(id_column) if isinstance(id_column, (list, tuple))
                  else [id_column] * len(specs))
    if len(id_columns) != len(specs):
        raise DSSLError(f"got {len(id_columns)} ID columns for {len(specs)} files")
    if any(c is None for c in id_columns) and any(c is not None for c in id_columns):
        raise DSSLError("give an ID column for every file or for none")
    tables = [read_table(s, id_column=c, label_columns=label_columns,
                         check_constant=check_constant, missing_labels_ok=True)
              for s, c in zip(specs, id_columns)]
    sources = [t.source for t in tables]
    for name in label_columns:
        if not any(name in t.labels for t in tables):
            raise DSSLError(f"label column {name!r} is in none of {', '.join(sources)}")
    if id_columns[0] is None:
        rows = [len(t) for t in tables]
        if len(set(rows)) != 1:
            detail = ", ".join(f"{s} has {r}" for s, r in zip(sources, rows))
            raise DSSLError(f"files must be paired row by row but {detail} rows; pass an ID "
                            "column (CLI: --id-column) to join them")
        order = [np.arange(rows[0])] * len(tables)
        ids = None
    else:
        id_lists = [t.ids for t in tables]
        assert all(i is not None for i in id_lists)
        common = id_lists[0]
        for t in tables[1:]:
            common = common[np.isin(common, t.ids)]
        if join == "exact":
            for t in tables:
                for other in tables:
                    extra = t.ids[~np.isin(t.ids, other.ids)]
                    if extra.size:
                        raise DSSLError(
                            f"ID {str(extra[0])!r} is in {t.source} but not in {other.source} "
                            f"({extra.size} such IDs); fix the files or pass join='inner' "
                            "(CLI: --join inner) to keep only IDs present everywhere")
        if common.size == 0:
            raise DSSLError(f"no ID is shared by all of {', '.join(sources)}")
        ids = common
        order = []
        for t in tables:
            position = {v: k for k, v in enumerate(t.ids.tolist())}
            order.append(np.fromiter((position[v] for v in ids.tolist()), dtype=np.int64,
                                     count=ids.size))
    labels: dict[str, np.ndarray] = {}
    label_source: dict[str, str] = {}
    for t, index in zip(tables, order):
        for name, values in t.labels.items():
            aligned = values[index]
            if name in labels:
                differ = labels[name].astype(str) != aligned.astype(str)
                if differ.any():
                    k = int(np.flatnonzero(differ)[0])
                    where = f"ID {str(ids[k])!r}" if ids is not None else f"row {k}"
                    raise DSSLError(f"label {name!r} disagrees between {label_source[name]} "
                                    f"and {t.source} at {where}")
            else:
                labels[name], label_source[name] = aligned, t.source
    views = [t.features[index] for t, index in zip(tables, order)]
    if batch_size is not None:
        check_batch_size(len(views[0]), batch_size, sources)
    return MultimodalData(views, labels, ids, _view_names(specs),
                          [t.feature_names for t in tables])


def _view_name(spec: str | os.PathLike[str]) -> str:
    """A file's view name: its stem, or for ``cells.h5mu:rna`` the modality (``rna``)."""
    path, key = _split_spec(spec)
    if path.suffix.lower() == ".h5mu" and key:
        return key.partition("/")[0]
    return path.stem


def _view_names(specs: Sequence[str | os.PathLike[str]]) -> list[str]:
    """:func:`_view_name` of every view; where two views would share a name (two matrices
    of one file: ``cite.h5ad`` and ``cite.h5ad:obsm/protein``), each of those is named by its
    whole selector instead (``cite``, ``cite_obsm_protein``), so that outputs keyed by view
    name (``obsm["X_dssl_specific_<view>"]``) never overwrite each other."""
    first = [_view_name(s) for s in specs]
    names = list(first)
    for k, name in enumerate(first):
        if first.count(name) > 1:
            path, key = _split_spec(specs[k])
            names[k] = "_".join(filter(None, [path.stem, *re.split(r"[/:]", key or "")]))
    if len(set(names)) < len(names):
        names = [f"{n}_{k + 1}" for k, n in enumerate(names)]
    return names


# ---------------------------------------------------------------------------------------------
# out-of-core
# ---------------------------------------------------------------------------------------------
class NpyRows:
    """An array-like over a ``.npy`` file that reads only the rows asked for: ``rows[index]``
    (an int, slice or integer array) copies those rows into a new array and keeps nothing.

    By default rows are read with ``os.preadv`` (consecutive rows in one call), so the file is
    never mapped into the process: resident memory holds the rows read, never the file. A
    memory map (``mmap=True``) is faster when the file sits in the page cache, but the pages it
    touches count in the process's resident set while mapped, and kernels that map the page
    cache in large folios put close to a megabyte there per row touched (measured here: 1024
    random rows of a 1 GB file mapped 853 MB) — fine when the data fits in memory, not for data
    larger than it.

    Attributes:
        path, shape, dtype: the file, its array's shape and dtype (read from the header).
    """

    def __init__(self, path: str | os.PathLike[str], mmap: bool = False) -> None:
        self.path = Path(path)
        probe = np.load(self.path, mmap_mode="r", allow_pickle=False)
        self.shape, self.dtype = tuple(probe.shape), probe.dtype
        self._offset, self._order = int(probe.offset), "F" if np.isfortran(probe) else "C"
        del probe
        # Fortran-ordered files have no contiguous rows: read those through a map.
        self.mmap = bool(mmap) or (self._order == "F" and len(self.shape) > 1)
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def __len__(self) -> int:
        return int(self.shape[0])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _mapped(self, index: object) -> np.ndarray:
        mapped = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self._offset,
                           shape=self.shape, order=self._order)
        try:
            return np.array(mapped[index])
        finally:
            del mapped

    def __getitem__(self, index: object) -> np.ndarray:
        if self.mmap:
            return self._mapped(index)
        n = len(self)
        if isinstance(index, slice):
            rows = np.arange(*index.indices(n), dtype=np.int64)
        elif isinstance(index, (int, np.integer)):
            return self[np.array([int(index)])][0]
        else:
            rows = np.asarray(index)
            if rows.dtype == bool or rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
                return self._mapped(index)  # masks, tuples: rare, not the loader's path
            rows = rows.astype(np.int64)
        rows = np.where(rows < 0, rows + n, rows)
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise IndexError(f"row index out of range for {self.path} with {n} rows")
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        out = np.empty((rows.size, *self.shape[1:]), dtype=self.dtype)
        if rows.size:
            buffer = memoryview(out.reshape(rows.size, -1).view(np.uint8)).cast("B")
            starts = np.flatnonzero(np.diff(ordered, prepend=ordered[0] - 2) != 1)
            ends = np.append(starts[1:], rows.size)
            size = self._row_bytes
            fd = os.open(self.path, os.O_RDONLY)
            try:
                for a, b in zip(starts.tolist(), ends.tolist()):  # one call per run of rows
                    view = buffer[a * size:b * size]
                    at = self._offset + int(ordered[a]) * size
                    while len(view):
                        got = os.preadv(fd, [view], at)
                        if got <= 0:
                            raise OSError(f"{self.path} ended early (truncated file?)")
                        view, at = view[got:], at + got
            finally:
                os.close(fd)
        result = np.empty_like(out)
        result[order] = out
        return result

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        return np.asarray(self[:], dtype=dtype)


class MultimodalDataset(torch.utils.data.Dataset):
    """Paired rows read lazily from array-likes (``np.memmap``, h5py/zarr datasets, …).

    ``dataset[i]`` is a tuple of M tensors (one row per modality, after ``transform``): int64
    for integer views (token ids), float32 for the others, each row keeping its shape;
    ``__getitems__`` fetches a whole batch with one fancy-index per view, so a
    ``DataLoader(dataset, batch_size=B)`` reads B rows per view at once.

    Args:
        views: per modality an array-like of shape (n, ...) indexable by an integer array.
        transforms: optional per-modality callables applied to each fetched batch tensor
            (e.g. image augmentation or decoding).
        names: per-view names used in error messages (file names).

    Example:
        >>> ds = MultimodalDataset.from_npy(["x1.npy", "x2.npy"])  # doctest: +SKIP
        >>> ds.validate(batch_size=256)                            # doctest: +SKIP
        >>> emb = transform_dataset(model, ds)                     # doctest: +SKIP
    """

    def __init__(self, views: Sequence[object], transforms: Sequence[Callable | None] | None = None,
                 names: Sequence[str] | None = None) -> None:
        if len(views) < 2:
            raise DSSLError(f"need at least two views, got {len(views)}")
        self.views = list(views)
        self.names = list(names) if names is not None else [f"x{i + 1}"
                                                            for i in range(len(views))]
        self.transforms = list(transforms) if transforms is not None else [None] * len(views)
        if len(self.transforms) != len(self.views):
            raise DSSLError(f"{len(self.transforms)} transforms for {len(self.views)} views")
        # .shape, not np.shape: np.shape would read a lazy view (NpyRows) whole.
        rows = [int(v.shape[0]) if hasattr(v, "shape") else len(v) for v in self.views]
        if len(set(rows)) != 1:
            detail = ", ".join(f"{n} has {r}" for n, r in zip(self.names, rows))
            raise DSSLError(f"views must be paired row by row but {detail} rows")
        for v, n in zip(self.views, self.names):
            dtype = np.dtype(getattr(v, "dtype", np.float32))
            if dtype.kind not in "iufb":
                raise DSSLError(f"{n} has non-numeric dtype {dtype}")
        self._n = rows[0]

    @classmethod
    def from_npy(cls, paths: Sequence[str | os.PathLike[str]],
                 transforms: Sequence[Callable | None] | None = None, *,
                 mmap: bool = False) -> MultimodalDataset:
        """One ``.npy`` file per modality, read lazily (:class:`NpyRows`: each batch reads its
        rows, so resident memory holds the batch, never the file; nothing is read until
        indexed). ``mmap=True`` reads through memory maps instead: faster when the files fit
        in the page cache, but their touched pages then count in the resident set."""
        views = []
        for p in paths:
            path = Path(p)
            if not path.is_file():
                raise DSSLError(f"file not found: {path}")
            try:
                views.append(NpyRows(path, mmap=mmap))
            except (ValueError, OSError, EOFError) as exc:
                raise DSSLError(f"{path} is not a readable .npy file of numbers ({exc})"
                                ) from exc
        return cls(views, transforms, [str(p) for p in paths])

    def __len__(self) -> int:
        return self._n

    def get_batch(self, index: np.ndarray) -> tuple[torch.Tensor, ...]:
        """Rows ``index`` of every view, one fancy index per view (the estimator's loader
        calls this once per batch)."""
        out = []
        for v, t in zip(self.views, self.transforms):
            x = torch.from_numpy(_as_view_dtype(v[index], copy=False))
            out.append(t(x) if t is not None else x)
        return tuple(out)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return tuple(x[0] for x in self.get_batch(np.array([i])))

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, ...]]:
        batch = self.get_batch(np.asarray(indices, dtype=np.int64))
        # The default collate re-stacks these rows; one fancy index per view did the I/O.
        return list(zip(*batch))

    def chunks(self, chunk_size: int = 65536) -> Iterator[tuple[int, list[np.ndarray]]]:
        """Yield (first row, [view chunk as numpy: int64 integer views, float32 others]) in
        row order."""
        for start in range(0, self._n, chunk_size):
            stop = min(start + chunk_size, self._n)
            yield start, [_as_view_dtype(v[start:stop]) for v in self.views]

    def validate(self, batch_size: int | None = None, chunk_size: int = 65536,
                 check_constant: bool = False) -> None:
        """Check every view chunk by chunk (memory bounded by ``chunk_size`` rows): no NaN or
        infinite value, at least ``batch_size`` rows, and with ``check_constant`` no constant
        column (off by default: standardisation gives a constant column scale 1). Errors name
        the file, column (the flattened index of a row of rank > 1) and row."""
        if self._n == 0:
            raise DSSLError(f"{', '.join(self.names)}: no rows")
        if batch_size is not None:
            check_batch_size(self._n, batch_size, self.names)
        lows: list[np.ndarray | None] = [None] * len(self.views)
        highs: list[np.ndarray | None] = [None] * len(self.views)
        for start, arrays in self.chunks(chunk_size):
            for i, a in enumerate(arrays):
                flat = a.reshape(a.shape[0], -1)
                finite = np.isfinite(flat)
                if not finite.all():
                    row, col = (int(v) for v in np.argwhere(~finite)[0])
                    raise DSSLError(f"{self.names[i]}: column {col} has a NaN or infinite value "
                                    f"at row {start + row}; impute or drop it first")
                if check_constant:
                    lo, hi = flat.min(0), flat.max(0)
                    lows[i] = lo if lows[i] is None else np.minimum(lows[i], lo)
                    highs[i] = hi if highs[i] is None else np.maximum(highs[i], hi)
        if check_constant and self._n > 1:
            for i, (lo, hi) in enumerate(zip(lows, highs)):
                constant = np.flatnonzero(lo == hi)
                if constant.size:
                    raise DSSLError(f"{self.names[i]}: column {int(constant[0])} is constant "
                                    f"({constant.size} constant columns); drop them")

    def to_arrays(self, index: np.ndarray | None = None) -> list[np.ndarray]:
        """Materialise rows ``index`` (all rows if None) as arrays (int64 integer views,
        float32 others), e.g. a random subset that fits in memory for
        :meth:`DisentangledSSL.fit`."""
        if index is None:
            return [_as_view_dtype(v) for v in self.views]
        index = np.sort(np.asarray(index, dtype=np.int64))
        return [_as_view_dtype(v[index]) for v in self.views]


def _as_view_dtype(rows: object, copy: bool = True) -> np.ndarray:
    """Rows of a view in memory as int64 (integer views: token ids) or float32 (everything
    else); a writable copy unless ``copy=False`` (rows already fetched by a fancy index)."""
    kind = np.dtype(getattr(rows, "dtype", np.float32)).kind
    dtype = np.int64 if kind in "iu" else np.float32
    if not copy:
        return np.ascontiguousarray(rows, dtype=dtype)
    return np.array(rows, dtype=dtype, order="C")


def transform_dataset(estimator: object, dataset: MultimodalDataset, chunk_size: int = 65536,
                      ) -> object:
    """Embed a :class:`MultimodalDataset` in order, ``chunk_size`` rows at a time, with a fitted
    estimator: the same :class:`~disentangled_ssl.estimator.Embeddings` as
    ``estimator.transform(dataset, batch_size=chunk_size)`` (which it calls)."""
    return estimator.transform(dataset, batch_size=chunk_size)  # type: ignore[attr-defined]
