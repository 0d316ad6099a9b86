"""Reading and writing arrays: .npy, .npz (``file.npz:key``) and CSV/TSV with an optional
header row. Files are never unpickled (``allow_pickle=False``)."""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from disentangled_ssl._errors import DSSLError
from disentangled_ssl._io import write_bytes_atomic
from disentangled_ssl.data.synthetic import PairedData

_LATENT_KEYS = ("z1", "zs", "z2")


def _split_spec(spec: str | os.PathLike[str]) -> tuple[Path, str | None]:
    text = str(spec)
    if ".npz:" in text:
        path, key = text.rsplit(":", 1)
        return Path(path), key
    return Path(text), None


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"  # an archive with no members


def _pickle_refused(where: str) -> DSSLError:
    return DSSLError(
        f"{where} holds Python objects (pickled data); it is refused because unpickling can run "
        "arbitrary code: save a numeric array instead (e.g. np.save(f, x.astype(np.float32)))"
    )


def _is_pickle_error(exc: Exception) -> bool:
    text = str(exc)
    return "allow_pickle" in text or "Object arrays cannot be loaded" in text


def _magic(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(6)


def open_npz(path: Path) -> np.lib.npyio.NpzFile:
    """Open an .npz archive without unpickling; a non-zip file is a :class:`DSSLError`."""
    if _magic(path)[:4] not in (_ZIP_MAGIC, _EMPTY_ZIP_MAGIC):
        raise DSSLError(
            f"{path} is not a readable .npz file (not a zip archive: truncated, or another "
            "format); write it with numpy.savez"
        )
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DSSLError(f"{path} is not a readable .npz file ({exc})") from exc


def _npz_member(archive: np.lib.npyio.NpzFile, key: str, where: str) -> np.ndarray:
    try:
        return archive[key]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        if _is_pickle_error(exc):
            raise _pickle_refused(where) from exc
        raise DSSLError(f"{where} is truncated or corrupt ({exc})") from exc


def load_npy(path: Path) -> np.ndarray:
    """Load an .npy file without unpickling: a zip (.npz), text, truncated or pickle-bearing
    file is a :class:`DSSLError` saying which."""
    magic = _magic(path)
    if magic[:4] == _ZIP_MAGIC:
        raise DSSLError(
            f"{path} is an .npz archive, not an .npy file; name it .npz and pass "
            f"{path.with_suffix('.npz')}:KEY"
        )
    if magic != _NPY_MAGIC:
        raise DSSLError(
            f"{path} is not an .npy file (no NumPy header); write it with numpy.save, or use "
            ".csv for text"
        )
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        if _is_pickle_error(exc):
            raise _pickle_refused(str(path)) from exc
        raise DSSLError(f"{path} is truncated or corrupt ({exc})") from exc


def read_array(spec: str | os.PathLike[str]) -> np.ndarray:
    """Read one feature matrix from ``file.npy``, ``file.npz:key`` or ``file.csv``/``.tsv``.

    CSV/TSV: comma/tab separated numbers; a first row that is not numeric is taken as a header.
    """
    path, key = _split_spec(spec)
    if not path.is_file():
        raise DSSLError(f"file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return load_npy(path)
    if suffix == ".npz":
        with open_npz(path) as archive:
            keys = list(archive.keys())
            if key is None:
                if len(keys) != 1:
                    raise DSSLError(f"{path} holds arrays {keys}; name one as {path}:KEY")
                key = keys[0]
            if key not in keys:
                raise DSSLError(f"{path} has no array {key!r}; it holds {keys}")
            return _npz_member(archive, key, f"{path}:{key}")
    if suffix in (".csv", ".tsv", ".txt"):
        delimiter = "\t" if suffix == ".tsv" else ","
        try:
            with open(path, encoding="utf-8") as fh:
                first = fh.readline()
        except UnicodeDecodeError as exc:
            raise DSSLError(f"{path} is not a UTF-8 text file") from exc
        cells = [c.strip() for c in first.strip().split(delimiter)]
        try:
            [float(c) for c in cells]
            skip = 0
        except ValueError:
            skip = 1
        try:
            with warnings.catch_warnings():  # "input contained no data": reported below
                warnings.simplefilter("ignore", UserWarning)
                array = np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2,
                                   dtype=np.float64)
        except ValueError as exc:
            raise DSSLError(f"{path} has non-numeric or ragged values ({exc})") from exc
        if array.size == 0:
            raise DSSLError(f"{path} has no data rows; it needs one row per sample")
        return array
    raise DSSLError(
        f"unsupported file type {suffix!r} for {path}; use .npy, .npz (file.npz:key) or .csv"
    )


def save_npz(path: str | os.PathLike[str], arrays: dict[str, np.ndarray],
             overwrite: bool = False) -> Path:
    """Atomically write arrays to ``path`` (.npz); refuses an existing file unless
    ``overwrite``."""
    target = Path(path)
    if target.suffix != ".npz":
        raise DSSLError(f"output file {target} must end in .npz")
    if target.exists() and not overwrite:
        raise DSSLError(f"{target} already exists; pass --overwrite to replace it")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return write_bytes_atomic(target, buffer.getvalue())


def save_paired(path: str | os.PathLike[str], data: PairedData, overwrite: bool = False) -> Path:
    """Write paired data as .npz with keys ``x1``, ``x2``, one per label and latent."""
    arrays = {"x1": data.x1, "x2": data.x2, **data.labels, **data.latents}
    return save_npz(path, arrays, overwrite=overwrite)


def read_paired(path: str | os.PathLike[str]) -> PairedData:
    """Read a .npz written by :func:`save_paired` (or any .npz with ``x1``, ``x2`` and optional
    1-D label arrays)."""
    p = Path(path)
    if not p.is_file():
        raise DSSLError(f"file not found: {p}")
    if p.suffix.lower() != ".npz":
        raise DSSLError(f"{p} must be an .npz with arrays x1 and x2 (or use --x1/--x2)")
    with open_npz(p) as archive:
        keys = list(archive.keys())
        missing = [k for k in ("x1", "x2") if k not in keys]
        if missing:
            raise DSSLError(f"{p} lacks array(s) {missing}; it holds {keys}")
        arrays = {k: _npz_member(archive, k, f"{p}:{k}") for k in keys}
    labels = {k: v for k, v in arrays.items()
              if k not in ("x1", "x2", *_LATENT_KEYS) and v.ndim == 1}
    latents = {k: arrays[k] for k in _LATENT_KEYS if k in arrays}
    return PairedData(arrays["x1"], arrays["x2"], labels, latents)
