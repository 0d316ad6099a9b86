"""``dssl generate``, ``dssl fit``, ``dssl transform`` and ``dssl evaluate``.

``dssl fit`` exposes every :class:`~disentangled_ssl.estimator.DisentangledSSL` parameter as a
flag, generated from the estimator's signature and docstring (:mod:`._params`), except
:data:`EXCLUDED_PARAMS`; ``--config run.toml`` (or ``.json``) sets the same parameters from a
file, flags on the command line override it. ``--distributed`` trains data-parallel over the
processes torchrun starts::

    torchrun --nproc_per_node=2 -m disentangled_ssl.cli fit --distributed --data d.npz --out m
"""

from __future__ import annotations

import argparse
import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.cli._args import add_inputs, add_out, check_out, check_writable, read_inputs
from disentangled_ssl.cli._params import (
    Param,
    add_param_flags,
    estimator_params,
    given_params,
    read_config,
)

#: Estimator parameters that are not flags (nor config keys), with the reason.
_MODULES_ONLY = "a list of torch.nn.Module objects; pass it from Python (docs/real-data.md)"
EXCLUDED_PARAMS: dict[str, str] = {
    "shared_encoders": _MODULES_ONLY,
    "specific_encoders": _MODULES_ONLY,
    "augmentations": _MODULES_ONLY,
    "modalities": "its own flag, --modalities KIND[,KIND...], and config key (a list of "
                  "kind names); kind objects with options: from Python",
}
#: Extra flags, kept from earlier versions of the command line: parameter -> flags.
PARAM_ALIASES: dict[str, tuple[str, ...]] = {"random_state": ("--seed",)}
#: Where ``dssl fit`` departs from the estimator's defaults: seeded, so a rerun is identical.
CLI_DEFAULTS: dict[str, Any] = {"random_state": 0}

_FIT_EPILOG = """\
A config file (--config run.toml or run.json) holds the same parameters as the flags above,
with underscores (e.g. shared_epochs = 50); flags given on the command line override it.
Not settable here:
{excluded}

Data-parallel training over several GPUs or processes (global --batch-size split over them;
no checkpoints; rank 0 writes the model):
  torchrun --nproc_per_node=4 -m disentangled_ssl.cli fit --distributed --data data.npz \\
      --out model --batch-size 1024 --bf16
"""


@cache
def fit_params() -> list[Param]:
    """The estimator parameters ``dssl fit`` exposes, in signature order."""
    from disentangled_ssl.estimator import DisentangledSSL

    return estimator_params(DisentangledSSL, EXCLUDED_PARAMS)


def resolve_params(args: argparse.Namespace) -> dict[str, Any]:
    """The estimator's parameters: its defaults, then :data:`CLI_DEFAULTS`, then the config
    file, then the flags given on the command line (each overriding the one before)."""
    params = fit_params()
    config = (read_config(args.config, params, excluded=EXCLUDED_PARAMS,
                          aliases=PARAM_ALIASES, special={"modalities": config_modalities})
              if args.config else {})
    resolved = {**CLI_DEFAULTS, **config, **given_params(args, params)}
    if getattr(args, "modalities", None):
        resolved["modalities"] = parse_modalities(args.modalities)
    return resolved


def config_modalities(value: Any) -> str | tuple[str, ...]:
    """``modalities`` in a config file: a kind name, a comma-separated list, or a list of
    names (``modalities = ["image", "tokens"]``)."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        value = ",".join(value)
    if not isinstance(value, str):
        raise DSSLError(f"config key 'modalities' must be a kind name or a list of them, got "
                        f"{value!r}")
    return parse_modalities(value, where="config key 'modalities'")


def parse_modalities(text: str, where: str = "--modalities") -> str | tuple[str, ...]:
    """``--modalities image,tokens`` -> ("image", "tokens"); one name applies to all."""
    from disentangled_ssl.nn.modalities import KINDS

    names = tuple(t.strip() for t in text.split(",") if t.strip())
    for name in names:
        if name != "auto" and name not in KINDS:
            raise DSSLError(f"{where}: unknown kind {name!r}; the kinds are auto, "
                            f"{', '.join(KINDS)}")
    if not names:
        raise DSSLError(f"{where} needs at least one kind, e.g. image,tokens")
    return names[0] if len(names) == 1 else names


def _cmd_generate(args: argparse.Namespace) -> int:
    from disentangled_ssl.data.io import save_paired
    from disentangled_ssl.data.synthetic import make_synthetic

    data = make_synthetic(n_samples=args.n_samples, shared_dim=args.shared_dim,
                          private_dim1=args.private_dim, private_dim2=args.private_dim,
                          x_dim1=args.x_dim, x_dim2=args.x_dim, seed=args.seed,
                          entanglement=args.entanglement)
    path = save_paired(args.out, data, overwrite=args.overwrite)
    print(f"wrote {path}: x1 {data.x1.shape}, x2 {data.x2.shape}, labels {sorted(data.labels)}")
    return 0


def _check_fit_flags(args: argparse.Namespace) -> None:
    """Refuse flag combinations that cannot work, before reading any data."""
    if args.backend and not args.distributed:
        raise DSSLError("--backend is for --distributed training only")
    if args.distributed and args.resume:
        raise DSSLError("--resume cannot be combined with --distributed: data-parallel runs "
                        "write no checkpoints")


def _report(est: Any, out: Path, suffix: str = "") -> None:
    """Print where the model went and the final epoch's loss terms of every stage."""
    last = {stage: {k: round(v, 4) for k, v in h[-1].items()} for stage, h in est.history_.items()}
    print(f"wrote {out}{suffix} (final epoch: {json.dumps(last)})")


def _fit_local(args: argparse.Namespace, params: dict[str, Any], data: Any) -> None:
    """Fit in this process (with checkpoints and resume when asked) and save the model."""
    from disentangled_ssl.estimator import DisentangledSSL

    est = DisentangledSSL(**params)
    checkpoint_dir = params.get("checkpoint_dir")
    if checkpoint_dir and args.overwrite and not args.resume:
        from disentangled_ssl.training.checkpoint import checkpoint_path

        # Start over only once the settings and the input are known to be good.
        est.validate_params()
        est.validate_views([data.x1, data.x2], fitting=True)
        checkpoint_path(checkpoint_dir).unlink(missing_ok=True)
    est.fit(data.x1, data.x2, resume=args.resume)
    est.save(args.out, overwrite=args.overwrite)
    _report(est, Path(args.out))


def _fit_distributed(args: argparse.Namespace, params: dict[str, Any], data: Any) -> None:
    """Fit data-parallel over the processes torchrun started; rank 0 saves the model."""
    import torch.distributed as dist

    from disentangled_ssl.estimator import DisentangledSSL, fit_distributed
    from disentangled_ssl.training.distributed import init_distributed

    try:
        ctx = init_distributed(args.backend, device=params.get("device", "auto"))
        verbose = params.get("verbose", True) and ctx.is_main
        est = DisentangledSSL(**{**params, "verbose": verbose})
        fit_distributed(est, data.x1, data.x2, context=ctx)
        if ctx.is_main:
            est.save(args.out, overwrite=args.overwrite)
            _report(est, Path(args.out), f" ({ctx.world_size} processes)")
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def _cmd_fit(args: argparse.Namespace) -> int:
    _check_fit_flags(args)
    params = resolve_params(args)
    check_out(args.out, args.overwrite)
    if params.get("checkpoint_dir"):
        check_writable(Path(params["checkpoint_dir"]) / "checkpoint.safetensors")
    data = read_inputs(args)
    (_fit_distributed if args.distributed else _fit_local)(args, params, data)
    return 0


def _cmd_transform(args: argparse.Namespace) -> int:
    from disentangled_ssl.data.io import save_npz
    from disentangled_ssl.estimator import DisentangledSSL

    check_out(args.out, args.overwrite)
    est = DisentangledSSL.load(args.model, device=args.device)
    data = read_inputs(args)
    if Path(args.out).suffix.lower() in (".h5ad", ".h5mu"):
        return _transform_into_obsm(args, est, data)
    emb = est.transform(data.x1, data.x2).as_dict()
    if hasattr(data, "views"):  # --x1/--x2 tables: keep the IDs and label columns with the rows
        if data.ids is not None:
            emb["id"] = data.ids
        emb.update({k: v for k, v in data.labels.items() if k not in emb})
    save_npz(args.out, emb, overwrite=args.overwrite)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v.shape}" for k, v in emb.items()))
    return 0


def _transform_into_obsm(args: argparse.Namespace, est: Any, data: Any) -> int:
    """``dssl transform --out cells.h5mu`` (or ``.h5ad``): the embeddings as ``obsm`` entries
    of a copy of the input file (``X_dssl_shared``, ``X_dssl_shared_<modality>``,
    ``X_dssl_specific_<modality>``), rows matched on ``obs_names``."""
    from disentangled_ssl.data.anndata_io import write_obsm_copy
    from disentangled_ssl.data.readers import _split_spec

    source, _ = _split_spec(args.x1) if args.x1 else (Path(args.data or ""), None)
    if source.suffix.lower() != Path(args.out).suffix.lower():
        raise DSSLError(f"--out {args.out} writes into a copy of the input; the input --x1 "
                        f"must be a {Path(args.out).suffix} file too (got {source})")
    if getattr(data, "ids", None) is None:
        raise DSSLError("writing into obsm needs the cells' IDs: pass --id-column obs_names")
    emb = est.transform(*data.views)
    arrays = {"X_dssl_shared": emb.shared}
    for i, name in enumerate(data.view_names):
        arrays[f"X_dssl_shared_{name}"] = emb.shared_list[i]
        if emb.specific_list:
            arrays[f"X_dssl_specific_{name}"] = emb.specific_list[i]
    path = write_obsm_copy(source, args.out, data.ids, arrays, overwrite=args.overwrite)
    print(f"wrote {path}: obsm " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))
    return 0


def _probe_table(result: dict, train: Any, test: Any, tr: Any, te: Any) -> None:
    """Linear probes of every representation on every label, stored in ``result`` and
    printed as a table."""
    from disentangled_ssl.evaluation import linear_probe

    reps = {"shared": (tr.shared, te.shared)}
    reps.update({k: (v, te.as_dict()[k]) for k, v in tr.as_dict().items()})
    result["probe"] = {
        rep: linear_probe(a, train.labels, b, test.labels) for rep, (a, b) in reps.items()
    }
    labels = sorted(train.labels)
    print(f"{'representation':<16}" + "".join(f"{lab:>8}" for lab in labels))
    for rep, accs in result["probe"].items():
        print(f"{rep:<16}" + "".join(f"{accs[lab]:>8.3f}" for lab in labels))


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from disentangled_ssl.estimator import DisentangledSSL
    from disentangled_ssl.evaluation import retrieval_metrics

    est = DisentangledSSL.load(args.model, device=args.device)
    data = read_inputs(args)
    check_out(args.out, args.overwrite)
    train, test = data.split(args.test_fraction, seed=args.split_seed)
    tr, te = est.transform(train.x1, train.x2), est.transform(test.x1, test.x2)
    result: dict = {"n_train": len(train), "n_test": len(test)}
    if data.labels:
        _probe_table(result, train, test, tr, te)
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


def _register_generate(sub: Any) -> None:
    p = sub.add_parser("generate", help="write the paper's synthetic paired data to a .npz")
    add_out(p, "output .npz")
    p.add_argument("--n-samples", type=int, default=20000)
    p.add_argument("--shared-dim", type=int, default=50)
    p.add_argument("--private-dim", type=int, default=50)
    p.add_argument("--x-dim", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--entanglement", type=float, default=0.0,
                   help="the MNI dial, in [0, 1): 0 (default, the paper's data) keeps the shared "
                   "latent recoverable exactly from either modality; above 0 each modality "
                   "loses that fraction of its dimensions, so it is not (see "
                   "docs/counterfactuals.md)")
    p.set_defaults(func=_cmd_generate)


def _register_fit(sub: Any) -> None:
    excluded = "\n".join(f"  {k}: {why}" for k, why in EXCLUDED_PARAMS.items())
    p = sub.add_parser("fit", help="fit DisentangledSSL (or a baseline) on paired arrays and "
                       "save the model", epilog=_FIT_EPILOG.format(excluded=excluded),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_inputs(p)
    add_out(p, "output model folder")
    p.add_argument("--config", metavar="FILE", help="estimator parameters from a .toml or "
                   ".json file (keys as the parameter names); flags override it")
    p.add_argument("--resume", action="store_true",
                   help="continue the run checkpointed in --checkpoint-dir (starts afresh if "
                   "there is none yet); same settings and data required")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the processes torchrun starts (see below)")
    p.add_argument("--backend", choices=["nccl", "gloo"], default=None,
                   help="with --distributed: the torch.distributed backend (default: nccl on "
                   "GPUs, gloo on CPUs)")
    group = p.add_argument_group("estimator parameters (DisentangledSSL)")
    group.add_argument("--modalities", metavar="KIND[,KIND...]", default=None,
                       help="the kind of each modality: auto (default: by array rank), "
                       "vector, sequence, image or tokens; one kind for all, or one per "
                       "modality, comma-separated (e.g. image,tokens)")
    add_param_flags(group, fit_params(), aliases=PARAM_ALIASES, defaults=CLI_DEFAULTS)
    group.add_argument("--quiet", dest="verbose", action="store_false",
                       default=argparse.SUPPRESS, help="no progress bars (= --no-verbose)")
    p.set_defaults(func=_cmd_fit)


def _register_transform(sub: Any) -> None:
    p = sub.add_parser("transform", help="embed paired arrays with a saved model")
    p.add_argument("--model", required=True, help="model folder written by `dssl fit`")
    add_inputs(p)
    add_out(p, "output .npz (shared1, shared2, specific1, ...), or .h5mu/.h5ad: a copy of the "
            "--x1 file with the embeddings in obsm (X_dssl_shared, X_dssl_specific_<modality>)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_transform)


def _register_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="linear probes and cross-modal retrieval of a model")
    p.add_argument("--model", required=True)
    add_inputs(p)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--split-seed", type=int, default=0)
    add_out(p, "write the metrics as JSON here", required=False)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_evaluate)


def register(sub: Any) -> None:
    """Add ``generate``, ``fit``, ``transform`` and ``evaluate`` to the ``dssl`` subparsers."""
    for add in (_register_generate, _register_fit, _register_transform, _register_evaluate):
        add(sub)
