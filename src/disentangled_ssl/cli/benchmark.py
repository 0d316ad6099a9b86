"""``dssl benchmark real|multibench|infocore``: probes and retrieval on real data (see
:mod:`disentangled_ssl.experiments.real`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.cli._args import add_out, check_out, floats, ints, names
from disentangled_ssl.data.datasets import DATASETS, KIND_DATASETS
from disentangled_ssl.experiments.real import RealBenchmarkConfig

#: Training options every benchmark takes, with their types (defaults: RealBenchmarkConfig).
_FLOAT_OPTIONS = ("beta", "lam", "lr", "noise_std", "drop_fraction")
_INT_OPTIONS = ("shared_dim", "specific_dim", "hidden_dim", "shared_epochs", "specific_epochs",
                "batch_size")
_HELP = {"shared_epochs": "DisentangledSSL step-1 epochs (also CLIP's epochs)",
         "noise_std": "augmentation: Gaussian noise on standardised features",
         "drop_fraction": "augmentation: fraction of features zeroed"}


def _config(args: argparse.Namespace, **extra: Any) -> RealBenchmarkConfig:
    options = {name: getattr(args, name) for name in (*_FLOAT_OPTIONS, *_INT_OPTIONS)}
    return RealBenchmarkConfig(seeds=args.seeds, device=args.device, **options, **extra)


def _add_training_options(p: argparse.ArgumentParser) -> None:
    defaults = RealBenchmarkConfig()
    p.add_argument("--seeds", type=ints, default=list(defaults.seeds))
    for name in (*_FLOAT_OPTIONS, *_INT_OPTIONS):
        p.add_argument("--" + name.replace("_", "-"), default=getattr(defaults, name),
                       type=float if name in _FLOAT_OPTIONS else int, help=_HELP.get(name))
    p.add_argument("--device", default="auto")


#: Options of the image / token datasets of ``dssl benchmark real`` (RealBenchmarkConfig).
_KIND_OPTIONS = {"kind_epochs": (int, "step-1 and CLIP epochs of the image/token encoders"),
                 "kind_specific_epochs": (int, "step-2 epochs of the image/token encoders"),
                 "kind_lr": (float, "learning rate of the image/token encoders"),
                 "cnn_width": (int, "channels of the image CNN's first stage"),
                 "image_pool": (int, "the image CNN's pooling cells per side (1: global)"),
                 "token_dim": (int, "width of the caption Transformer"),
                 "token_layers": (int, "layers of the caption Transformer (0: a bag of words)")}


def _cmd_real(args: argparse.Namespace) -> int:
    from disentangled_ssl.experiments.real import run_real_benchmark

    config = _config(args, datasets=args.datasets, test_size=args.test_size,
                     **{name: getattr(args, name) for name in _KIND_OPTIONS})
    out = Path(args.out)
    run_real_benchmark(config, out, overwrite=args.overwrite,
                       log=(lambda _m: None) if args.quiet else print)
    print((out / "summary.md").read_text())
    figures = sorted(p.name for p in out.glob("*.png"))
    print(f"wrote {out / 'results.csv'}, {out / 'summary.md'}, {out / 'config.json'}"
          + (f" and {', '.join(figures)}" if figures else ""))
    return 0


def _write_json(out: str, result: dict) -> None:
    from disentangled_ssl._io import write_json_atomic
    from disentangled_ssl.experiments.figures import save_png
    from disentangled_ssl.experiments.real import loss_curves_figure, result_loss_curves

    write_json_atomic(out, result, indent=2)
    print(json.dumps(result, indent=2))
    print(f"wrote {out}")
    curves = result_loss_curves(result)
    if curves:
        path = Path(out)
        png = path.with_name(path.stem + "_loss_curves.png")
        save_png(loss_curves_figure(curves, f"{path.name}: training loss per epoch "
                                            "(one line per seed)"), png)
        print(f"wrote {png}")


def _cmd_multibench(args: argparse.Namespace) -> int:
    from disentangled_ssl.experiments.real import (
        multibench_rows,
        multibench_table,
        run_multibench,
    )

    check_out(args.out, args.overwrite)
    result = run_multibench(args.file, args.dataset, _config(args),
                            modalities=tuple(args.modalities), label_policy=args.label_policy,
                            pooling=args.pooling, max_seq_len=args.max_seq_len,
                            betas=args.betas, lams=args.lams, lrs=args.lrs, log=print)
    _write_json(args.out, result)
    majority = float(result["majority"])  # type: ignore[arg-type]
    _write_tables(args.out, multibench_rows(result),
                  ["dataset", "seed", "representation", "metric", "value"],
                  lambda rows: multibench_table(rows, majority))
    return 0


def _cmd_infocore(args: argparse.Namespace) -> int:
    from disentangled_ssl.data.published import read_infocore_cp, read_infocore_ge
    from disentangled_ssl.experiments.real import infocore_rows, infocore_table, run_infocore

    check_out(args.out, args.overwrite)
    if args.kind == "ge":
        if not (args.controls and args.id_smiles):
            raise DSSLError("--kind ge needs --controls (ctl_dict1_mean.pkl) and --id-smiles")
        data = read_infocore_ge(args.inst_info, args.controls, args.id_smiles, args.mol_repr,
                                keys=args.keys)
    else:
        data = read_infocore_cp(args.inst_info, args.mol_repr)
    result = run_infocore(data, _config(args), lrs=args.lrs)
    _write_json(args.out, result)
    _write_tables(args.out, infocore_rows(result), ["seed", "representation", "metric", "value"],
                  infocore_table)
    return 0


def _write_tables(out: str, rows: list, columns: list[str], table: Any) -> None:
    """The tidy CSV and the markdown table beside the JSON (``out`` with .csv / .md)."""
    from disentangled_ssl._io import write_text_atomic
    from disentangled_ssl.experiments.results import write_csv

    path = Path(out)
    write_csv(path.with_suffix(".csv"), rows, columns)
    text = table(rows)
    write_text_atomic(path.with_suffix(".md"), text)
    print(text)
    print(f"wrote {path.with_suffix('.csv')} (tidy) and {path.with_suffix('.md')}")


def _register_real(group: Any) -> None:
    r = group.add_parser(
        "real", help="probe accuracy and cross-modal retrieval on the offline real datasets",
        description="For each dataset and seed: stratified split, DisentangledSSL and CLIP "
        "fitted on the training rows (standardised features), then class-probe accuracy of "
        "shared, specific, both, CLIP and raw features, and retrieval (top-1/5/10, MRR) of "
        "shared, CLIP, raw features in a CCA space and a random ranking, both ways. Writes "
        "results.csv, summary.md (mean ± std) and config.json. Default datasets: "
        f"{', '.join(DATASETS)}; also {', '.join(KIND_DATASETS)} (a CNN on the images, a "
        "Transformer on the caption tokens, beside the same methods on pixels and bags of "
        "words; about 10 minutes per seed on 2 CPU cores; adds a subgroup probe, "
        "<name>_retrieval.png and <name>_loss_curves.png).")
    add_out(r, "output folder", required=False, default="results/real")
    r.add_argument("--datasets", type=names, default=list(RealBenchmarkConfig().datasets),
                   help="comma-separated dataset names")
    r.add_argument("--test-size", type=int, default=RealBenchmarkConfig().test_size,
                   help="test rows")
    _add_training_options(r)
    for name, (kind, text) in _KIND_OPTIONS.items():
        r.add_argument("--" + name.replace("_", "-"), type=kind,
                       default=getattr(RealBenchmarkConfig(), name), help=text)
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=_cmd_real)


def _register_published(group: Any) -> None:
    m = group.add_parser(
        "multibench", help="MultiBench affect pickle (MOSI/MOSEI/sarcasm/humor), following "
        "FactorCL's linear-probe protocol",
        description="DisentangledSSL's beta and lam are chosen on the valid split from "
        "--betas and --lams (--beta is not used; --lam is JointOpt's and FOCAL's lam), and "
        "every method's learning rate from --lrs, by the valid probe; "
        "--noise-std and --drop-fraction apply to --pooling mean only (sequences use "
        "FactorCL's augmentations). See docs/real-tasks/multibench.md.")
    m.add_argument("--file", required=True, help="e.g. mosi_data.pkl, sarcasm.pkl")
    m.add_argument("--dataset", required=True, choices=["mosi", "mosei", "sarcasm", "humor"])
    m.add_argument("--modalities", type=names, default=["vision", "text"])
    m.add_argument("--label-policy", choices=["factorcl", "multibench"], default="factorcl")
    m.add_argument("--max-seq-len", type=int, default=50,
                   help="time steps kept per sequence (MultiBench's max_pad; default 50)")
    m.add_argument("--pooling", choices=["sequence", "mean"], default="sequence",
                   help="sequence (default): padded sequences through the sequence modality "
                   "kind (FactorCL's Transformer widths); mean: mean-pooled vectors through "
                   "the MLP (an ablation)")
    m.add_argument("--betas", type=floats, default=[0.1, 1.0],
                   help="DisentangledSSL beta grid, chosen on valid (default 0.1,1)")
    m.add_argument("--lams", type=floats, default=[0.1, 1.0],
                   help="DisentangledSSL lam grid, chosen on valid (default 0.1,1)")
    m.add_argument("--lrs", type=floats, default=[1e-4, 1e-3],
                   help="learning-rate grid, chosen on valid for every method (default "
                   "1e-4,1e-3; --lr is then not used)")
    add_out(m, "output JSON")
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
    i.add_argument("--lrs", type=floats, default=[1e-4, 1e-3],
                   help="learning-rate grid, chosen for every method by the whole-pool MRR on "
                   "a drug-disjoint validation part of the training drugs (default 1e-4,1e-3; "
                   "--lr is then not used; one value: no choice)")
    add_out(i, "output JSON")
    _add_training_options(i)
    i.set_defaults(func=_cmd_infocore)


def register(subparsers: Any) -> None:
    """Add ``dssl benchmark real``, ``dssl benchmark multibench`` and ``dssl benchmark
    infocore``."""
    p = subparsers.add_parser("benchmark", help="benchmarks on real data (real: the offline "
                              "datasets; multibench, infocore: the paper's files you have)")
    group = p.add_subparsers(dest="benchmark", required=True)
    _register_real(group)
    _register_published(group)
