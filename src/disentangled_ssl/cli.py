"""``dssl``: a thin command line over the Python API.

Every error on bad input ends with a one-line ``dssl: error: ...`` message and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from disentangled_ssl._errors import DSSLError, PerformanceWarning, TrainingDivergedError
from disentangled_ssl._version import __version__

EXIT_USAGE = 2

#: Modules adding subcommands: each defines ``register(subparsers)`` which adds its parsers
#: and sets ``func`` (a callable taking the parsed args and returning an exit code).
EXTRA_COMMANDS: list[str] = [
    "disentangled_ssl.cli_compare", "disentangled_ssl.cli_sweep",
    "disentangled_ssl.cli_benchmark",
]


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from exc


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="paired .npz with arrays x1, x2 (and labels), e.g. from "
                   "`dssl generate`")
    p.add_argument("--x1", help="modality-1 features: file.npy, file.npz:KEY or file.csv")
    p.add_argument("--x2", help="modality-2 features (same row order as --x1, or joined on "
                   "--id-column); also .tsv, .parquet, .h5ad")
    p.add_argument("--id-column", help="with --x1/--x2: sample-ID column (CSV/parquet header, "
                   "h5ad obs column or 'obs_names', .npz array) to join the files on")
    p.add_argument("--label-columns", type=lambda t: [c.strip() for c in t.split(",") if c.strip()],
                   default=[], help="with --x1/--x2: comma-separated label columns (kept for "
                   "evaluation, not used as features)")
    p.add_argument("--join", choices=["exact", "inner"], default="exact",
                   help="with --id-column: 'exact' refuses IDs missing from a file, 'inner' keeps "
                   "the IDs common to all files")


def _read_inputs(args: argparse.Namespace, training: bool = False):
    from disentangled_ssl.data.io import read_paired
    from disentangled_ssl.data.readers import read_multimodal

    if args.data and (args.x1 or args.x2):
        raise DSSLError("give either --data or --x1/--x2, not both")
    if args.data:
        return read_paired(args.data)
    if not (args.x1 and args.x2):
        raise DSSLError("give the paired input as --data FILE.npz or as --x1 FILE --x2 FILE")
    return read_multimodal([args.x1, args.x2], id_column=args.id_column,
                           label_columns=args.label_columns, join=args.join,
                           check_constant=training)


def _cmd_generate(args: argparse.Namespace) -> int:
    from disentangled_ssl.data.io import save_paired
    from disentangled_ssl.data.synthetic import make_synthetic

    data = make_synthetic(n_samples=args.n_samples, shared_dim=args.shared_dim,
                          private_dim1=args.private_dim, private_dim2=args.private_dim,
                          x_dim1=args.x_dim, x_dim2=args.x_dim, seed=args.seed)
    path = save_paired(args.out, data, overwrite=args.overwrite)
    print(f"wrote {path}: x1 {data.x1.shape}, x2 {data.x2.shape}, labels {sorted(data.labels)}")
    return 0


def _check_writable(out: Path) -> None:
    """Fail before training, not after it, when ``out`` could never be written."""
    ancestor = out.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise DSSLError(f"cannot write {out}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise DSSLError(f"cannot write {out}: no write permission in {ancestor}")


def _cmd_fit(args: argparse.Namespace) -> int:
    from disentangled_ssl.estimator import DisentangledSSL

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise DSSLError(f"{out} already exists; pass --overwrite to replace it")
    _check_writable(out)
    if args.checkpoint_dir:
        _check_writable(Path(args.checkpoint_dir) / "checkpoint.safetensors")
    data = _read_inputs(args, training=True)
    est = DisentangledSSL(
        beta=args.beta, lam=args.lam, shared_dim=args.shared_dim, specific_dim=args.specific_dim,
        hidden_dim=args.hidden_dim, shared_epochs=args.shared_epochs,
        specific_epochs=args.specific_epochs, batch_size=args.batch_size, lr=args.lr,
        kappa=args.kappa, random_state=args.seed, device=args.device, verbose=not args.quiet,
        checkpoint_dir=args.checkpoint_dir, standardize=args.standardize, bf16=args.bf16,
        method=args.method, alpha=args.alpha, epochs=args.epochs,
    )
    if args.checkpoint_dir and args.overwrite and not args.resume:
        from disentangled_ssl.training.checkpoint import checkpoint_path

        # Start over only once the input is known to be good.
        est._check_params()
        est._check_inputs((data.x1, data.x2), fitting=True)
        checkpoint_path(args.checkpoint_dir).unlink(missing_ok=True)
    est.fit(data.x1, data.x2, resume=args.resume)
    est.save(out, overwrite=args.overwrite)
    last = {stage: {k: round(v, 4) for k, v in h[-1].items()} for stage, h in est.history_.items()}
    print(f"wrote {out} (final epoch: {json.dumps(last)})")
    return 0


def _cmd_transform(args: argparse.Namespace) -> int:
    from disentangled_ssl.data.io import save_npz
    from disentangled_ssl.estimator import DisentangledSSL

    if Path(args.out).exists() and not args.overwrite:
        raise DSSLError(f"{args.out} already exists; pass --overwrite to replace it")
    est = DisentangledSSL.load(args.model, device=args.device)
    data = _read_inputs(args)
    emb = est.transform(data.x1, data.x2).as_dict()
    if hasattr(data, "views"):  # --x1/--x2 tables: keep the IDs and label columns with the rows
        if data.ids is not None:
            emb["id"] = data.ids
        emb.update({k: v for k, v in data.labels.items() if k not in emb})
    save_npz(args.out, emb, overwrite=args.overwrite)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v.shape}" for k, v in emb.items()))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from disentangled_ssl.estimator import DisentangledSSL
    from disentangled_ssl.evaluation import linear_probe, retrieval_metrics

    est = DisentangledSSL.load(args.model, device=args.device)
    data = _read_inputs(args)
    if args.out and Path(args.out).exists() and not args.overwrite:
        raise DSSLError(f"{args.out} already exists; pass --overwrite to replace it")
    train, test = data.split(args.test_fraction, seed=args.split_seed)
    tr, te = est.transform(train.x1, train.x2), est.transform(test.x1, test.x2)
    result: dict = {"n_train": len(train), "n_test": len(test)}
    if data.labels:
        reps = {"shared": (tr.shared, te.shared)}
        reps.update({k: (v, te.as_dict()[k]) for k, v in tr.as_dict().items()})
        result["probe"] = {
            rep: linear_probe(a, train.labels, b, test.labels) for rep, (a, b) in reps.items()
        }
        labels = sorted(data.labels)
        print(f"{'representation':<16}" + "".join(f"{lab:>8}" for lab in labels))
        for rep, accs in result["probe"].items():
            print(f"{rep:<16}" + "".join(f"{accs[lab]:>8.3f}" for lab in labels))
    else:
        print("no labels in the data: skipping linear probes")
    result["retrieval"] = retrieval_metrics(te.shared1, te.shared2)
    result["retrieval_chance"] = {"top1": 1 / len(test), "mrr": float(
        np.mean(1.0 / np.arange(1, len(test) + 1)))}
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in result["retrieval"].items())
    print(f"retrieval shared1 -> shared2 (test): {metrics} (chance top1 {1 / len(test):.4f})")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from disentangled_ssl.experiments.synthetic import SyntheticConfig, run_synthetic

    config = SyntheticConfig(
        n_samples=args.n_samples, shared_epochs=args.shared_epochs,
        specific_epochs=args.specific_epochs, betas=args.betas, step2_betas=args.step2_betas,
        lambdas=args.lambdas, seeds=args.seeds, batch_size=args.batch_size, lr=args.lr,
        kappa=args.kappa, device=args.device, batched=args.batched, workers=args.workers,
    )
    run_synthetic(config, args.out, overwrite=args.overwrite, progress=not args.quiet)
    out = Path(args.out)
    print((out / "summary.md").read_text())
    print(f"wrote {out / 'results.csv'}, {out / 'summary.md'}, {out / 'figure3a.png'}"
          + (f", {out / 'figure3b.png'}" if (out / "figure3b.png").exists() else ""))
    return 0


def _add_training(p: argparse.ArgumentParser, *, epochs: tuple[int, int]) -> None:
    p.add_argument("--shared-epochs", type=int, default=epochs[0], help="step-1 epochs")
    p.add_argument("--specific-epochs", type=int, default=epochs[1], help="step-2 epochs")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--kappa", type=float, default=1000.0, help="vMF concentration")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def build_parser() -> argparse.ArgumentParser:
    from disentangled_ssl.experiments.paper import PAPER_BETAS, PAPER_LAMBDAS, PAPER_STEP2_BETAS

    parser = argparse.ArgumentParser(
        prog="dssl", description="DisentangledSSL: shared and modality-specific representations "
        "of paired multimodal data (Wang et al., ICLR 2025).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write the paper's synthetic paired data to a .npz")
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--n-samples", type=int, default=20000)
    p.add_argument("--shared-dim", type=int, default=50)
    p.add_argument("--private-dim", type=int, default=50)
    p.add_argument("--x-dim", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("fit", help="fit DisentangledSSL on paired arrays and save the model")
    _add_inputs(p)
    p.add_argument("--out", required=True, help="output model folder")
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--lam", type=float, default=1.0)
    p.add_argument("--shared-dim", type=int, default=100)
    p.add_argument("--specific-dim", type=int, default=100)
    p.add_argument("--hidden-dim", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-dir", metavar="DIR",
                   help="write an atomic checkpoint here after every epoch (an existing "
                   "one needs --resume, or --overwrite to start over)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run checkpointed in --checkpoint-dir (starts afresh if "
                   "there is none yet); same settings and data required")
    p.add_argument("--standardize", action="store_true",
                   help="standardise features with the training rows' mean/std (saved with "
                   "the model and reused by transform)")
    p.add_argument("--bf16", action="store_true",
                   help="mixed precision (bfloat16 forward passes; for GPUs with bf16 tensor "
                   "cores or CPUs with bf16 instructions)")
    p.add_argument("--method", default="disentangled_ssl",
                   help="disentangled_ssl (default) or a baseline: clip, simclr, joint, focal, "
                   "dmvae, factorcl (docs/baselines.md)")
    p.add_argument("--alpha", type=float, default=None,
                   help="baselines' dial a (joint/focal specific weight, dmvae KL weight; "
                   "default: the method's)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs of a one-stage method (default: --shared-epochs)")
    _add_training(p, epochs=(50, 30))
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("transform", help="embed paired arrays with a saved model")
    p.add_argument("--model", required=True, help="model folder written by `dssl fit`")
    _add_inputs(p)
    p.add_argument("--out", required=True, help="output .npz (shared1, shared2, specific1, ...)")
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_transform)

    p = sub.add_parser("evaluate", help="linear probes and cross-modal retrieval of a model")
    p.add_argument("--model", required=True)
    _add_inputs(p)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--out", help="write the metrics as JSON here")
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("reproduce", help="reproduce a paper experiment")
    rsub = p.add_subparsers(dest="experiment", required=True)
    r = rsub.add_parser("synthetic", help="the paper's Figure 3 (β grid, then β×λ)")
    r.add_argument("--out", default="results/synthetic", help="output folder")
    r.add_argument("--n-samples", type=int, default=20000, help="paper: 90000")
    r.add_argument("--betas", type=_floats, default=list(PAPER_BETAS),
                   help="step-1 β grid, comma-separated")
    r.add_argument("--step2-betas", type=_floats, default=list(PAPER_STEP2_BETAS),
                   help="β values whose step-1 models get the λ grid")
    r.add_argument("--lambdas", type=_floats, default=list(PAPER_LAMBDAS))
    r.add_argument("--seeds", type=_ints, default=[0])
    r.add_argument("--batched", action="store_true",
                   help="train each β grid and λ grid as one batched ensemble (same models to "
                        "float tolerance, faster; docs/scaling.md)")
    r.add_argument("--workers", type=_positive_int, default=1,
                   help="processes training independent parts of the grid at once, each with "
                        "cpu_count/workers torch threads (2 on a 2-core CPU is fastest; "
                        "same results)")
    _add_training(r, epochs=(5, 5))
    r.set_defaults(func=_cmd_reproduce)
    for module_name in EXTRA_COMMANDS:
        importlib.import_module(module_name).register(sub)
    return parser


def _warning_printer() -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints each distinct library warning once, as one
    ``dssl: warning: ...`` line (no source location)."""
    seen: set[str] = set()

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        text = str(message)
        if text not in seen:
            seen.add(text)
            print(f"dssl: warning: {text}", file=sys.stderr if file is None else file)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dssl``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", PerformanceWarning)  # deduplicated per run
            warnings.showwarning = _warning_printer()
            return int(args.func(args))
    # OSError: unwritable or clashing output paths, full disks (FileNotFoundError and
    # PermissionError included).
    except (DSSLError, TrainingDivergedError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"dssl: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dssl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
