"""``dssl benchmark real``: probes and retrieval on the offline real datasets (see
:mod:`disentangled_ssl.experiments.real`). Registered through ``cli.EXTRA_COMMANDS``."""

from __future__ import annotations

import argparse
from pathlib import Path


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in _names(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}"
                                         ) from exc


def _cmd_real(args: argparse.Namespace) -> int:
    from disentangled_ssl.experiments.real import RealBenchmarkConfig, run_real_benchmark

    config = RealBenchmarkConfig(
        datasets=args.datasets, seeds=args.seeds, test_size=args.test_size, beta=args.beta,
        lam=args.lam, shared_dim=args.shared_dim, specific_dim=args.specific_dim,
        hidden_dim=args.hidden_dim, shared_epochs=args.shared_epochs,
        specific_epochs=args.specific_epochs, batch_size=args.batch_size, lr=args.lr,
        noise_std=args.noise_std, drop_fraction=args.drop_fraction, device=args.device,
    )
    out = Path(args.out)
    run_real_benchmark(config, out, overwrite=args.overwrite,
                       log=(lambda _m: None) if args.quiet else print)
    print((out / "summary.md").read_text())
    print(f"wrote {out / 'results.csv'}, {out / 'summary.md'}, {out / 'config.json'}")
    return 0


def _benchmark_subparsers(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The ``benchmark`` group's sub-commands, created here unless another module made it."""
    existing = subparsers.choices.get("benchmark")
    if existing is not None:
        for action in existing._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action
    p = subparsers.add_parser("benchmark", help="benchmarks (real: offline real datasets)")
    return p.add_subparsers(dest="benchmark", required=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dssl benchmark real``."""
    from disentangled_ssl.data.datasets import DATASETS
    from disentangled_ssl.experiments.real import RealBenchmarkConfig

    defaults = RealBenchmarkConfig()
    r = _benchmark_subparsers(subparsers).add_parser(
        "real", help="probe accuracy and cross-modal retrieval on the offline real datasets",
        description="For each dataset and seed: stratified split, DisentangledSSL and CLIP "
        "fitted on the training rows (standardised features), then class-probe accuracy of "
        "shared, specific, both, CLIP and raw features, and retrieval (top-1/5/10, MRR) of "
        "shared, CLIP, raw features in a CCA space and a random ranking. Writes results.csv, "
        f"summary.md (mean ± std) and config.json. Datasets: {', '.join(DATASETS)}.")
    r.add_argument("--out", default="results/real", help="output folder")
    r.add_argument("--datasets", type=_names, default=list(defaults.datasets),
                   help="comma-separated dataset names")
    r.add_argument("--seeds", type=_ints, default=list(defaults.seeds))
    r.add_argument("--test-size", type=int, default=defaults.test_size, help="test rows")
    r.add_argument("--beta", type=float, default=defaults.beta)
    r.add_argument("--lam", type=float, default=defaults.lam)
    r.add_argument("--shared-dim", type=int, default=defaults.shared_dim)
    r.add_argument("--specific-dim", type=int, default=defaults.specific_dim)
    r.add_argument("--hidden-dim", type=int, default=defaults.hidden_dim)
    r.add_argument("--shared-epochs", type=int, default=defaults.shared_epochs,
                   help="DisentangledSSL step-1 epochs (also CLIP's epochs)")
    r.add_argument("--specific-epochs", type=int, default=defaults.specific_epochs)
    r.add_argument("--batch-size", type=int, default=defaults.batch_size)
    r.add_argument("--lr", type=float, default=defaults.lr)
    r.add_argument("--noise-std", type=float, default=defaults.noise_std,
                   help="augmentation: Gaussian noise on standardised features")
    r.add_argument("--drop-fraction", type=float, default=defaults.drop_fraction,
                   help="augmentation: fraction of features zeroed")
    r.add_argument("--device", default="auto")
    r.add_argument("--quiet", action="store_true")
    r.add_argument("--overwrite", action="store_true")
    r.set_defaults(func=_cmd_real)
