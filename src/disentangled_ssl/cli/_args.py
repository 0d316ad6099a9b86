"""Argument types and argument groups shared by every ``dssl`` subcommand.

Each helper exists once here; subcommand modules import them instead of keeping copies:

- :func:`names`, :func:`ints`, :func:`floats`: comma-separated lists (``--seeds 0,1,2``);
- :func:`positive_int`: an integer ``>= 1`` (``--workers``);
- :func:`add_inputs` / :func:`read_inputs`: the paired input (``--data`` or ``--x1/--x2`` with
  ``--id-column``, ``--label-columns``, ``--join``);
- :func:`add_out` / :func:`check_out`: ``--out`` with ``--overwrite``, refusing an existing
  output without ``--overwrite`` and an output that could never be written, before any work.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from disentangled_ssl._errors import DSSLError

T = TypeVar("T")


def _split(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [v.strip() for v in text.split(",") if v.strip()]


def _list_of(convert: Callable[[str], T], what: str) -> Callable[[str], list[T]]:
    """An argparse ``type`` parsing a comma-separated list with ``convert``."""

    def parse(text: str) -> list[T]:
        try:
            return [convert(v) for v in _split(text)]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}"
                                             ) from exc

    parse.__name__ = f"{what.replace(' ', '_')}_list"
    return parse


#: ``--methods clip,joint`` -> ``["clip", "joint"]`` (blanks dropped).
names: Callable[[str], list[str]] = _split
#: ``--seeds 0,1,2`` -> ``[0, 1, 2]``.
ints = _list_of(int, "integers")
#: ``--betas 0.1,1`` -> ``[0.1, 1.0]``.
floats = _list_of(float, "numbers")


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer ``>= 1``."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_inputs(p: argparse.ArgumentParser) -> None:
    """Add the paired-input arguments read by :func:`read_inputs`."""
    p.add_argument("--data", help="paired .npz with arrays x1, x2 (and labels), e.g. from "
                   "`dssl generate`")
    p.add_argument("--x1", help="modality-1 features: file.npy, file.npz:KEY or file.csv; "
                   ".npy/.npz arrays of any rank (rows, ...) keep their shape, integer ones "
                   "their dtype (token ids)")
    p.add_argument("--x2", help="modality-2 features (same row order as --x1, or joined on "
                   "--id-column); also .tsv, .parquet, .h5ad")
    p.add_argument("--id-column", help="with --x1/--x2: sample-ID column (CSV/parquet header, "
                   "h5ad obs column or 'obs_names', .npz array) to join the files on")
    p.add_argument("--label-columns", type=names, default=[], help="with --x1/--x2: "
                   "comma-separated label columns (kept for evaluation, not used as features)")
    p.add_argument("--join", choices=["exact", "inner"], default="exact",
                   help="with --id-column: 'exact' refuses IDs missing from a file, 'inner' keeps "
                   "the IDs common to all files")


def read_inputs(args: argparse.Namespace) -> Any:
    """The paired data named by :func:`add_inputs`' arguments (``PairedData`` for ``--data``,
    ``MultimodalData`` for ``--x1/--x2``), as the files hold it: ``.npy``/``.npz`` arrays keep
    their shape (sequences, images) and integer dtype (int64 token ids), tables are (n, d)
    float32; the estimator checks each modality by its kind. Constant columns are accepted
    (standardisation gives them scale 1)."""
    from disentangled_ssl.data.io import read_paired
    from disentangled_ssl.data.readers import read_multimodal

    if args.data and (args.x1 or args.x2):
        raise DSSLError("give either --data or --x1/--x2, not both")
    if args.data:
        return read_paired(args.data)
    if not (args.x1 and args.x2):
        raise DSSLError("give the paired input as --data FILE.npz or as --x1 FILE --x2 FILE")
    return read_multimodal([args.x1, args.x2], id_column=args.id_column,
                           label_columns=args.label_columns, join=args.join)


def add_out(p: argparse.ArgumentParser, help: str, *, required: bool = True,
            default: str | None = None) -> None:
    """Add ``--out`` (the output path) and ``--overwrite``; check them with :func:`check_out`."""
    p.add_argument("--out", required=required, default=default, help=help)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def check_writable(out: str | os.PathLike[str]) -> None:
    """Fail before the work, not after it, when ``out`` could never be written."""
    ancestor = Path(out).parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise DSSLError(f"cannot write {out}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise DSSLError(f"cannot write {out}: no write permission in {ancestor}")


def check_out(out: str | os.PathLike[str] | None, overwrite: bool) -> None:
    """Refuse an existing ``out`` without ``overwrite`` and an unwritable one (``None``: no
    output requested, nothing to check)."""
    if out is None:
        return
    if Path(out).exists() and not overwrite:
        raise DSSLError(f"{out} already exists; pass --overwrite to replace it")
    check_writable(out)
