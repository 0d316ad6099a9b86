"""``dssl benchmark real``: probes and retrieval on the offline real datasets (see
:mod:`disentangled_ssl.experiments.real`). Registered through ``cli.EXTRA_COMMANDS``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from disentangled_ssl.experiments.real import RealBenchmarkConfig


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
    group = _benchmark_subparsers(subparsers)
    register_published(group)
    r = group.add_parser(
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


def _config_from(args: argparse.Namespace) -> RealBenchmarkConfig:
    from disentangled_ssl.experiments.real import RealBenchmarkConfig

    return RealBenchmarkConfig(
        seeds=args.seeds, beta=args.beta, lam=args.lam, shared_dim=args.shared_dim,
        specific_dim=args.specific_dim, hidden_dim=args.hidden_dim,
        shared_epochs=args.shared_epochs, specific_epochs=args.specific_epochs,
        batch_size=args.batch_size, lr=args.lr, noise_std=args.noise_std,
        drop_fraction=args.drop_fraction, device=args.device)


def _write_json(out: str, result: dict, overwrite: bool) -> None:
    import json

    from disentangled_ssl._errors import DSSLError

    target = Path(out)
    if target.exists() and not overwrite:
        raise DSSLError(f"{target} already exists; pass --overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"wrote {target}")


def _cmd_multibench(args: argparse.Namespace) -> int:
    from disentangled_ssl.experiments.real import run_multibench

    result = run_multibench(args.file, args.dataset, _config_from(args),
                            modalities=tuple(args.modalities), label_policy=args.label_policy)
    _write_json(args.out, result, args.overwrite)
    return 0


def _cmd_infocore(args: argparse.Namespace) -> int:
    from disentangled_ssl._errors import DSSLError
    from disentangled_ssl.data.published import read_infocore_cp, read_infocore_ge
    from disentangled_ssl.experiments.real import run_infocore

    if args.kind == "ge":
        if not (args.controls and args.id_smiles):
            raise DSSLError("--kind ge needs --controls (ctl_dict1_mean.pkl) and --id-smiles")
        data = read_infocore_ge(args.inst_info, args.controls, args.id_smiles, args.mol_repr,
                                keys=args.keys)
    else:
        data = read_infocore_cp(args.inst_info, args.mol_repr)
    _write_json(args.out, run_infocore(data, _config_from(args)), args.overwrite)
    return 0


def _add_training_options(p: argparse.ArgumentParser) -> None:
    from disentangled_ssl.experiments.real import RealBenchmarkConfig

    d = RealBenchmarkConfig()
    p.add_argument("--seeds", type=_ints, default=list(d.seeds))
    for name in ("beta", "lam", "lr", "noise_std", "drop_fraction"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name))
    for name in ("shared_dim", "specific_dim", "hidden_dim", "shared_epochs", "specific_epochs",
                 "batch_size"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true")


def register_published(group: argparse._SubParsersAction) -> None:
    """``dssl benchmark multibench`` and ``dssl benchmark infocore`` (files you have)."""
    m = group.add_parser(
        "multibench", help="MultiBench affect pickle (MOSI/MOSEI/sarcasm/humor), following "
        "FactorCL's linear-probe protocol")
    m.add_argument("--file", required=True, help="e.g. mosi_data.pkl, sarcasm.pkl")
    m.add_argument("--dataset", required=True, choices=["mosi", "mosei", "sarcasm", "humor"])
    m.add_argument("--modalities", type=_names, default=["vision", "text"])
    m.add_argument("--label-policy", choices=["factorcl", "multibench"], default="factorcl")
    m.add_argument("--out", required=True, help="output JSON")
    _add_training_options(m)
    m.set_defaults(func=_cmd_multibench)
    i = group.add_parser(
        "infocore", help="molecule-phenotype retrieval on InfoCORE's L1000 (ge) or Cell "
        "Painting (cp) files, following InfoCORE's protocol")
    i.add_argument("--kind", required=True, choices=["ge", "cp"])
    i.add_argument("--inst-info", required=True,
                   help="inst_info_drug.pkl (ge) or inst_info_drug_cp.pkl (cp)")
    i.add_argument("--mol-repr", required=True, help="mol2vec_mol_repr_dict(_cp).pkl")
    i.add_argument("--controls", help="ge: ctl_dict1_mean.pkl")
    i.add_argument("--id-smiles", help="ge: id_smiles")
    i.add_argument("--keys", help="ge: sel_keys_dosesubset.npy (optional)")
    i.add_argument("--out", required=True, help="output JSON")
    _add_training_options(i)
    i.set_defaults(func=_cmd_infocore)
