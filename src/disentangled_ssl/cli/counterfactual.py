"""``dssl counterfactual``: decode the specific content of one set of samples with the shared
content of another, with a saved model that has decoders (``dssl fit --decoder-epochs N``).

Inputs and output are ``.npz`` files with arrays ``x1`` and ``x2`` (as ``dssl generate``
writes them): row k of the output is modality i of ``--specific-from`` row k given the shared
code of ``--shared-from`` row k. The output is written atomically and an existing one is
refused without ``--overwrite``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.cli._args import add_out, check_out


def _cmd_counterfactual(args: argparse.Namespace) -> int:
    from disentangled_ssl.data.io import read_paired, save_npz
    from disentangled_ssl.estimator import DisentangledSSL

    check_out(args.out, args.overwrite)
    if Path(args.out).suffix != ".npz":
        raise DSSLError(f"output file {args.out} must end in .npz")
    est = DisentangledSSL.load(args.model, device=args.device)
    if getattr(est, "decoders_", None) is None:
        raise DSSLError(f"{args.model} has no decoders (it was fitted with decoder_epochs=0); "
                        "refit it with `dssl fit --decoder-epochs N`, or train them in Python "
                        "with est.fit_decoders([X1, X2]) and save it")
    specific, shared = read_paired(args.specific_from), read_paired(args.shared_from)
    x1, x2 = est.counterfactual([specific.x1, specific.x2], [shared.x1, shared.x2])
    save_npz(args.out, {"x1": x1, "x2": x2}, overwrite=args.overwrite)
    print(f"wrote {args.out}: x1 {x1.shape}, x2 {x2.shape}")
    return 0


def register(sub: Any) -> None:
    """Add ``counterfactual`` to the ``dssl`` subparsers."""
    p = sub.add_parser(
        "counterfactual",
        help="decode one set of samples' specific content with another's shared content",
        description="Row k of the output is modality i of --specific-from row k with the "
        "shared content of --shared-from row k: decoder_i(shared_i(b_k), specific_i(a_k)). "
        "The model needs decoders (dssl fit --decoder-epochs N); see docs/counterfactuals.md.")
    p.add_argument("--model", required=True, help="model folder written by `dssl fit "
                   "--decoder-epochs N`")
    p.add_argument("--specific-from", required=True, metavar="A.npz",
                   help=".npz with arrays x1, x2: the samples whose specific content is kept")
    p.add_argument("--shared-from", required=True, metavar="B.npz",
                   help=".npz with arrays x1, x2 (as many rows as --specific-from): the samples "
                   "whose shared content is used")
    add_out(p, "output .npz with arrays x1, x2 (the counterfactuals)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_counterfactual)
