"""``dssl sweep`` and ``dssl select``: trade-off sweeps over the dials and choosing a setting.

``dssl sweep`` runs (or resumes) a grid over β, λ, other estimator dials and seeds, locally in
parallel (``--engine local``, default) or as one worker of an Optuna study in an RDB storage
(``--engine optuna``; start the same command on more machines to add workers). It writes
``results.csv``, ``summary.md`` and Figure 3-style PNGs into ``--out``.
``dssl select`` reads a sweep's results and reports the setting that meets a target best.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.cli._args import add_out, check_out, names

EXIT_NOT_MET = 1


def parse_assignments(items: Iterable[str], *, multi: bool) -> dict[str, Any]:
    """``["kappa=100,1000"]`` -> ``{"kappa": ["100", "1000"]}`` (``multi``) or
    ``["hidden_dim=256"]`` -> ``{"hidden_dim": "256"}``."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise DSSLError(f"expected NAME=VALUE{'S' if multi else ''}, got {item!r}")
        out[name.strip().replace("-", "_")] = names(value) if multi else value.strip()
    return out


def _spec(args: argparse.Namespace) -> Any:
    from disentangled_ssl.experiments import DataSpec, SweepSpec

    data = DataSpec(path=args.data, n_samples=args.n_samples, data_seed=args.data_seed,
                    test_fraction=args.test_fraction, split_seed=args.split_seed)
    params: dict[str, Any] = {"shared_epochs": args.shared_epochs,
                              "specific_epochs": args.specific_epochs,
                              "batch_size": args.batch_size, "lr": args.lr}
    params.update(parse_assignments(args.set or [], multi=False))
    dials = parse_assignments(args.dial or [], multi=True)
    for name in dials:
        params.pop(name, None)
    return SweepSpec(betas=names(args.betas), lambdas=names(args.lambdas),
                     seeds=names(args.seeds), dials=dials, params=params, data=data)


def _workers(args: argparse.Namespace) -> int:
    """``--workers``, else one process per core on CPU and one per GPU device otherwise."""
    if args.workers is not None:
        return args.workers
    from disentangled_ssl.training.loop import resolve_device

    return max(1, os.cpu_count() or 1) if resolve_device(args.device).type == "cpu" else 1


def _cmd_sweep(args: argparse.Namespace) -> int:
    from disentangled_ssl.experiments import run_sweep

    spec = _spec(args)
    if args.engine == "optuna":
        import logging

        logging.getLogger("optuna").setLevel(logging.WARNING)  # no per-trial INFO lines
    result = run_sweep(
        spec, args.out, engine=args.engine, workers=_workers(args),
        threads_per_worker=args.threads_per_worker, device=args.device,
        keep_models=not args.no_keep_models, storage=args.storage, study_name=args.study,
        progress=not args.quiet, run=not args.report_only,
        on_progress=None if args.quiet else (lambda m: print(m, flush=True)))
    out = Path(args.out)
    if (out / "summary.md").is_file() and not args.quiet:
        print((out / "summary.md").read_text())
    print(f"{result.n_done}/{result.n_trials} trials done ({result.n_computed} computed now, "
          f"{result.seconds:.0f} s); wrote " + ", ".join(str(f) for f in result.files))
    result.raise_failures(out)
    if not result.complete and not args.report_only:
        raise DSSLError(f"{result.n_trials - result.n_done} trials are missing; run the same "
                        "command again to resume")
    return 0


def _target(args: argparse.Namespace) -> Any:
    from disentangled_ssl.experiments.select import (
        Constraint,
        Objective,
        Target,
        keep_target,
        label_free_keep_target,
        leakage_target,
    )

    private = tuple(names(args.private_labels))
    chosen = [n for n, v in (("--max-leakage", args.max_leakage), ("--keep", args.keep),
                             ("--where", args.where)) if v is not None]
    if len(chosen) != 1:
        raise DSSLError("give exactly one target: --max-leakage X, --keep FRACTION or "
                        f"--where CONSTRAINT (got {chosen or 'none'})")
    if args.max_leakage is not None:
        if args.label_free:
            raise DSSLError("--label-free works with --keep (leakage needs labels)")
        return leakage_target(args.max_leakage, args.representation, args.shared_label, private)
    if args.keep is not None:
        if args.label_free:
            return label_free_keep_target(args.keep)
        return keep_target(args.keep, args.shared_label, private)
    if bool(args.maximize) == bool(args.minimize):
        raise DSSLError("--where needs one objective: --maximize METRIC or --minimize METRIC")
    objective = Objective.parse(args.maximize or args.minimize, maximize=bool(args.maximize))
    return Target(tuple(Constraint.parse(w) for w in args.where), objective)


def _print_selection(selection: Any) -> None:
    print(selection.markdown())
    print("evidence (every seed of the " + ("chosen" if selection.met else "closest")
          + " setting):")
    for r in selection.evidence:
        label = r["label"] or r["metric"]
        print(f"  seed {r['seed']}: {r['stage']:<8} {r['representation']}.{label} = "
              f"{r['value']:.4f}  (trial {r['key']})")


def _cmd_select(args: argparse.Namespace) -> int:
    from disentangled_ssl._io import write_json_atomic
    from disentangled_ssl.experiments import agreement, read_csv, select

    if bool(args.sweep) == bool(args.results):
        raise DSSLError("give the sweep folder (--sweep DIR) or its CSV (--results FILE)")
    check_out(args.out, args.overwrite)
    path = Path(args.results) if args.results else Path(args.sweep) / "results.csv"
    rows = read_csv(path)
    if not rows:
        raise DSSLError(f"{path} holds no results yet")
    selection = select(rows, _target(args))
    _print_selection(selection)
    payload = selection.as_dict()
    if args.agreement:
        private = tuple(names(args.private_labels))
        payload["agreement"] = agreement(rows, args.keep or 0.95, args.shared_label, private)
        print("label-free vs labelled choice of β: " + json.dumps(payload["agreement"]))
    if args.out:
        write_json_atomic(args.out, payload)
        print(f"wrote {args.out}")
    return 0 if selection.met else EXIT_NOT_MET


def _register_sweep(sub: Any) -> None:
    p = sub.add_parser(
        "sweep", help="run or resume a β × λ × dials × seeds sweep (local or Optuna)",
        description="Run (or resume: finished trials are skipped) a grid over the dials. "
        "Step 1 is trained once per (β, other step-1 dials, seed) and reused for every λ. "
        "See docs/sweeps.md for cluster use.")
    p.add_argument("--out", required=True, help="sweep folder (re-use it to resume)")
    p.add_argument("--data", help="paired .npz (x1, x2, optional labels); default: the paper's "
                   "synthetic generator")
    p.add_argument("--n-samples", type=int, default=20000, help="synthetic rows")
    p.add_argument("--data-seed", type=int, default=0, help="synthetic data seed")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="held-out rows for probes and label-free terms")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--betas", default="0.1,1,10,100", help="comma-separated β values")
    p.add_argument("--lambdas", default="0.1,1", help="comma-separated λ values ('' = step 1 "
                   "only)")
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    p.add_argument("--dial", action="append", metavar="NAME=V1,V2",
                   help="sweep another estimator parameter too (repeatable), e.g. "
                   "kappa=100,1000 or method=disentangled_ssl,joint")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="fix an estimator parameter (repeatable), e.g. hidden_dim=256")
    p.add_argument("--shared-epochs", type=int, default=5)
    p.add_argument("--specific-epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--engine", choices=("local", "optuna"), default="local",
                   help="local: process pool on this machine; optuna: join an Optuna study "
                   "(pip install 'disentangled-ssl[optuna]')")
    p.add_argument("--workers", type=int, help="worker processes on this machine (default: "
                   "the number of CPU cores on CPU, 1 on a GPU)")
    p.add_argument("--threads-per-worker", type=int, default=1,
                   help="torch threads per worker (results are identical across engines for "
                   "the same value)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--storage", help="Optuna RDB URL, e.g. postgresql://user@host/db "
                   "(default: sqlite:///OUT/optuna.db)")
    p.add_argument("--study", help="Optuna study name (default: dssl-<sweep id>)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing; rewrite the report from the finished trials")
    p.add_argument("--no-keep-models", action="store_true",
                   help="delete each saved step-1 model once its unit is complete")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_sweep)


def _register_select(sub: Any) -> None:
    s = sub.add_parser(
        "select", help="choose the β/λ of a sweep that meets a target best",
        description="Targets: --max-leakage X (probe accuracy of the leaked label at most X; "
        "--representation shared|specific1|specific2), --keep FRACTION (keep at least this "
        "fraction of the best shared-label accuracy, then drop the most private information; "
        "with --label-free: of the held-out InfoNCE bound), or --where CONSTRAINT ... with "
        "--maximize/--minimize METRIC. Exit code 1 when no setting meets the target.")
    s.add_argument("--sweep", help="sweep folder (reads its results.csv)")
    s.add_argument("--results", help="a sweep's results.csv")
    s.add_argument("--max-leakage", type=float)
    s.add_argument("--representation", default="shared",
                   help="shared, specific1 or specific2 (for --max-leakage)")
    s.add_argument("--keep", type=float)
    s.add_argument("--label-free", action="store_true",
                   help="with --keep: use held-out InfoNCE/alignment instead of labels")
    s.add_argument("--where", action="append", metavar="CONSTRAINT",
                   help="e.g. 'specific1.yc<=0.55' or 'shared.yc>=0.95*best' (repeatable)")
    s.add_argument("--maximize", metavar="METRIC", help="e.g. specific1.y1")
    s.add_argument("--minimize", metavar="METRIC", help="e.g. shared.y1+shared.y2")
    s.add_argument("--shared-label", default="yc")
    s.add_argument("--private-labels", default="y1,y2",
                   help="private labels of modality 1, 2, … in order")
    s.add_argument("--agreement", action="store_true",
                   help="also report how the label-free choice agrees with the labelled one")
    add_out(s, "write the selection and its evidence as JSON", required=False)
    s.set_defaults(func=_cmd_select)


def register(sub: Any) -> None:
    """Add ``dssl sweep`` and ``dssl select``."""
    _register_sweep(sub)
    _register_select(sub)
