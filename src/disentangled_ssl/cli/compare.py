"""``dssl compare``: every method through the same loop, data split and probes (a preset of the
grid engine, see :mod:`disentangled_ssl.experiments.compare`).

Example::

    dssl compare --methods disentangled_ssl,joint,focal,dmvae --seeds 0,1,2 \\
        --sweep joint:lam=0.1,1,10 --set disentangled_ssl:beta=0.1 --out results/compare

With ``--lr 1e-4,1e-3`` each method's learning rate is first chosen on a validation split of
the training rows (see :func:`disentangled_ssl.experiments.compare.select_lr`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.cli._args import add_out, floats, ints, names, positive_int
from disentangled_ssl.methods import method_names


def _method_assignment(text: str, flag: str) -> tuple[str, str, list[float]]:
    """``METHOD:NAME=v1,v2`` -> (method, name, values)."""
    method, sep, rest = text.partition(":")
    name, eq, values = rest.partition("=")
    if not (sep and eq and method.strip() and name.strip() and values.strip()):
        raise DSSLError(f"{flag} expects METHOD:NAME=VALUE[,VALUE...], e.g. "
                        f"{flag} joint:lam=0.1,1,10; got {text!r}")
    try:
        numbers = [float(v) for v in names(values)]
    except ValueError as exc:
        raise DSSLError(f"{flag} {text!r}: values must be numbers") from exc
    return method.strip(), name.strip(), numbers


def _sweeps(texts: list[str] | None, flag: str) -> dict[str, tuple[str, list[float]]]:
    sweeps: dict[str, tuple[str, list[float]]] = {}
    for text in texts or []:
        method, dial, values = _method_assignment(text, flag)
        if method in sweeps:
            raise DSSLError(f"{flag} given twice for {method!r}; one swept dial per method")
        sweeps[method] = (dial, values)
    return sweeps


def _sweeps_and_fixed(args: argparse.Namespace
                      ) -> tuple[dict[str, tuple[str, list[float]]], dict[str, dict[str, float]]]:
    """``--sweep`` and ``--set`` as CompareConfig's ``sweeps`` and ``fixed``."""
    sweeps = _sweeps(args.sweep, "--sweep")
    fixed: dict[str, dict[str, float]] = {}
    for text in args.set or []:
        method, name, values = _method_assignment(text, "--set")
        if len(values) != 1:
            raise DSSLError(f"--set {text!r} needs exactly one value (use --sweep for several)")
        fixed.setdefault(method, {})[name] = values[0]
    return sweeps, fixed


def _cmd_compare(args: argparse.Namespace) -> int:
    from disentangled_ssl.data.io import read_paired
    from disentangled_ssl.experiments.compare import CompareConfig, run_compare
    from disentangled_ssl.experiments.engine import output_folder

    sweeps, fixed = _sweeps_and_fixed(args)
    if args.resume and args.overwrite:
        raise DSSLError("--resume keeps the earlier trials and --overwrite deletes them; "
                        "choose one")
    out = Path(args.out) if args.resume else output_folder(args.out, args.overwrite)
    data = read_paired(args.data) if args.data else None
    config = CompareConfig(
        methods=tuple(args.methods), sweeps=sweeps, fixed=fixed, seeds=tuple(args.seeds),
        n_samples=args.n_samples, data_seed=args.data_seed, test_fraction=args.test_fraction,
        epochs=args.epochs, shared_epochs=args.shared_epochs,
        specific_epochs=args.specific_epochs, batch_size=args.batch_size,
        lr=args.lr[0] if len(args.lr) == 1 else CompareConfig.lr,
        lr_candidates=tuple(args.lr) if len(args.lr) > 1 else (),
        selection_fraction=args.select_fraction, selection_epochs=args.select_epochs,
        selection_sweeps=_sweeps(args.select_sweep, "--select-sweep"),
        validation_fraction=args.validation_fraction,
        untrained_reference=not args.no_untrained,
        device=args.device, own_label=args.own_label, leak_label=args.leak_label,
        representations=tuple(args.representations),
    )
    run_compare(config, out, data=data, overwrite=args.overwrite, progress=not args.quiet,
                resume=args.resume)
    print((out / "summary.md").read_text())
    written = ["results.csv", "summary.md", "figure3b.png", "loss_curves.csv",
               "loss_curves.png", "untrained.csv", "selection.csv"]
    print("wrote " + ", ".join(str(out / n) for n in written if (out / n).is_file()))
    return 0


def register(subparsers: Any) -> None:
    """Add ``dssl compare``."""
    p = subparsers.add_parser(
        "compare", help="compare methods over their dials and seeds (CSV + Figure-3(b) PNG)",
        description="Train the chosen methods over their dials and seeds on one dataset "
        "(the paper's synthetic data by default) through the same loop, probe every "
        "representation the same way, and write results.csv, summary.md (with a convergence "
        "check of every run's loss), figure3b.png, loss_curves.csv/.png (every run's loss per "
        "epoch) and untrained.csv (the probes of each method's untrained network). "
        f"Methods: {', '.join(method_names())}.")
    p.add_argument("--methods", type=names, default=["disentangled_ssl", "joint", "focal", "dmvae"],
                   help="comma-separated method names (default: disentangled_ssl,joint,focal,"
                   "dmvae)")
    p.add_argument("--sweep", action="append", metavar="METHOD:DIAL=V1,V2",
                   help="dial values to sweep for a method (repeatable; defaults: lam 0.1,1,10 "
                   "for disentangled_ssl/joint/focal, alpha 1e-6,1e-5,1e-4 for dmvae)")
    p.add_argument("--set", action="append", metavar="METHOD:PARAM=V",
                   help="fix a parameter of a method (repeatable; defaults: disentangled_ssl "
                   "beta=0.1, joint/focal alpha=1)")
    p.add_argument("--data", help="paired .npz with x1, x2 and label arrays (default: the "
                   "paper's synthetic generator)")
    p.add_argument("--n-samples", type=int, default=20000, help="synthetic rows (paper: 90000)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic data")
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--seeds", type=ints, default=[0, 1, 2], help="training seeds")
    p.add_argument("--epochs", type=int, default=5, help="epochs of one-stage methods")
    p.add_argument("--shared-epochs", type=int, default=5, help="DisentangledSSL step-1 epochs")
    p.add_argument("--specific-epochs", type=int, default=5,
                   help="DisentangledSSL step-2 epochs")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=floats, default=[1e-4], metavar="LR[,LR...]",
                   help="learning rate (default 1e-4). Several (e.g. 1e-4,1e-3): each "
                   "method's is chosen among them before the comparison, on validation data: "
                   "each of its dial values (or its --select-sweep values) trains with seed 0 "
                   "on the training rows minus a validation split (--select-fraction), and "
                   "the learning rate with the highest validation linear-probe accuracy on "
                   "--own-label of the method's modality-1 code (specific1; shared1 for "
                   "shared-only methods), averaged over those dial values, wins (a tie: the "
                   "lower final training loss); the test rows are never used to choose. --set "
                   "METHOD:lr=V fixes a method's learning rate instead")
    p.add_argument("--select-fraction", type=float, default=0.2,
                   help="share of the training rows held out to choose the learning rate "
                   "(default 0.2)")
    p.add_argument("--select-epochs", type=positive_int, default=None,
                   help="epochs (every stage) of the learning-rate selection runs (default: "
                   "the comparison's)")
    p.add_argument("--select-sweep", action="append", metavar="METHOD:DIAL=V1,V2",
                   help="dial values of a method trained in the learning-rate selection "
                   "instead of its --sweep values (the same dial; repeatable)")
    p.add_argument("--validation-fraction", type=float, default=0.0,
                   help="hold out this share of the training rows in every run and record "
                   "its loss terms per epoch (dashed in loss_curves.png; those rows are not "
                   "trained on; default 0)")
    p.add_argument("--no-untrained", action="store_true",
                   help="skip the probes of each method's untrained (initialised) network")
    p.add_argument("--representations", type=names,
                   default=["shared", "specific1", "specific2"],
                   help="representations to probe (shared, shared1, shared2, specific1, "
                   "specific2; specificK means sharedK for shared-only methods)")
    p.add_argument("--own-label", default="y1", help="label of the x axis (modality-1 label)")
    p.add_argument("--leak-label", default="yc", help="label of the y axis (shared label)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    add_out(p, "output folder", required=False, default="results/compare")
    p.add_argument("--resume", action="store_true",
                   help="keep the trials recorded in --out by an earlier run of the same "
                   "command, train only the missing ones and write the report again")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_compare)
