"""``dssl reproduce synthetic``: the paper's Figure 3 (a preset of the grid engine, see
:mod:`disentangled_ssl.experiments.synthetic`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from disentangled_ssl.cli._args import add_out, floats, ints, positive_int


def _cmd_synthetic(args: argparse.Namespace) -> int:
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


def register(subparsers: Any) -> None:
    """Add ``dssl reproduce synthetic``."""
    from disentangled_ssl.experiments.paper import PAPER_BETAS, PAPER_LAMBDAS, PAPER_STEP2_BETAS

    p = subparsers.add_parser("reproduce", help="reproduce a paper experiment")
    group = p.add_subparsers(dest="experiment", required=True)
    r = group.add_parser("synthetic", help="the paper's Figure 3 (β grid, then β×λ)")
    add_out(r, "output folder", required=False, default="results/synthetic")
    r.add_argument("--n-samples", type=int, default=20000, help="paper: 90000")
    r.add_argument("--betas", type=floats, default=list(PAPER_BETAS),
                   help="step-1 β grid, comma-separated")
    r.add_argument("--step2-betas", type=floats, default=list(PAPER_STEP2_BETAS),
                   help="β values whose step-1 models get the λ grid")
    r.add_argument("--lambdas", type=floats, default=list(PAPER_LAMBDAS))
    r.add_argument("--seeds", type=ints, default=[0])
    r.add_argument("--batched", action="store_true",
                   help="train each β grid and λ grid as one batched ensemble (same models to "
                        "float tolerance, faster; docs/scaling.md)")
    r.add_argument("--workers", type=positive_int, default=1,
                   help="processes training independent parts of the grid at once, each with "
                        "cpu_count/workers torch threads (2 on a 2-core CPU is fastest; "
                        "same results)")
    r.add_argument("--shared-epochs", type=int, default=5, help="step-1 epochs")
    r.add_argument("--specific-epochs", type=int, default=5, help="step-2 epochs")
    r.add_argument("--batch-size", type=int, default=256)
    r.add_argument("--lr", type=float, default=1e-4)
    r.add_argument("--kappa", type=float, default=1000.0, help="vMF concentration")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=_cmd_synthetic)
