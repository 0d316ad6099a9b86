"""AnnData/MuData files through h5py and anndata's element reader/writer (the one place that
finds them across anndata versions), and embeddings written back where single-cell tools
expect them: ``obsm`` of a copy of the user's AnnData ``.h5ad`` or MuData ``.h5mu`` file (as
scvi-tools and muon do), never a side file to align by hand and never the input modified in
place.

The copy is made byte for byte, then only ``/obsm/<key>`` datasets are added through h5py and
anndata's element writer, so everything else in the file (layers, uns, other modalities) is
exactly as it was; the finished copy is renamed into place atomically. Rows follow the file's
``obs_names``: a cell that was not embedded (e.g. missing from one modality of a MuData file)
gets a row of NaN. Needs ``anndata`` (``pip install 'disentangled-ssl[data]'``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from disentangled_ssl._errors import DSSLError
from disentangled_ssl._io import fsync_dir

__all__ = ["OBSM_SUFFIXES", "read_h5_elem", "write_obsm_copy"]

OBSM_SUFFIXES = (".h5ad", ".h5mu")


def _elem_io(name: str) -> Callable[..., Any]:
    """anndata's ``read_elem`` / ``write_elem`` (``anndata.io`` since 0.11, before that
    ``anndata.experimental``)."""
    import anndata

    function = getattr(getattr(anndata, "io", None), name, None)
    if function is None:
        import anndata.experimental

        function = getattr(anndata.experimental, name)
    return function


def read_h5_elem(group: Any) -> Any:
    """One element (an AnnData, a DataFrame, an array) stored in an open h5py group."""
    return _elem_io("read_elem")(group)


def _write_elem(group: Any, key: str, value: object) -> None:
    _elem_io("write_elem")(group, key, value)


def write_obsm_copy(source: str | os.PathLike[str], out: str | os.PathLike[str],
                    ids: Sequence[str], arrays: Mapping[str, np.ndarray], *,
                    overwrite: bool = False) -> Path:
    """Copy ``source`` (.h5ad or .h5mu) to ``out`` with ``arrays`` added to its ``obsm``.

    Args:
        source: the input file (never modified).
        out: the copy to write (same suffix as ``source``).
        ids: the ``obs_names`` of the embedded rows, in the order of the arrays' rows.
        arrays: obsm key -> (len(ids), d) array.
        overwrite: replace an existing ``out``.

    Raises:
        DSSLError: ``out`` is the input, exists without ``overwrite``, has another suffix; an
            ID that is not in the file; an obsm key the file already has.
    """
    try:
        import anndata  # noqa: F401
        import h5py
    except ImportError as exc:
        raise DSSLError("writing embeddings into .h5ad/.h5mu needs anndata: pip install "
                        "'disentangled-ssl[data]'") from exc
    src, dst = Path(source), Path(out)
    if dst.suffix.lower() not in OBSM_SUFFIXES or dst.suffix.lower() != src.suffix.lower():
        raise DSSLError(f"{dst}: embeddings go into a copy of the input {src.name}, so --out "
                        f"must end in {src.suffix} too")
    if dst.exists() and src.resolve() == dst.resolve():
        raise DSSLError(f"{dst} is the input file; the embeddings are written to a copy, "
                        "never into the input: choose another --out")
    if dst.exists() and not overwrite:
        raise DSSLError(f"{dst} already exists; pass overwrite=True (CLI: --overwrite)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        shutil.copyfile(src, tmp)
        with h5py.File(tmp, "r+") as f:
            obs_names = np.asarray(read_h5_elem(f["obs"]).index).astype(str)
            where = {name: k for k, name in enumerate(obs_names)}
            rows = np.array([where.get(str(i), -1) for i in ids])
            if (rows < 0).any():
                bad = str(np.asarray(ids)[rows < 0][0])
                raise DSSLError(f"ID {bad!r} of the embeddings is not an obs name of {src}")
            if "obsm" not in f:
                _write_elem(f, "obsm", {})
            for key, value in arrays.items():
                if key in f["obsm"]:
                    raise DSSLError(f"{src} already has obsm[{key!r}]; drop it or write to "
                                    "another file")
                value = np.asarray(value, dtype=np.float32)
                full = np.full((len(obs_names), value.shape[1]), np.nan, dtype=np.float32)
                full[rows] = value
                _write_elem(f["obsm"], key, full)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dst)
        fsync_dir(dst.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return dst
