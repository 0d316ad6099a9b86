"""Checkpoints of a fit in progress and resuming from them (the estimator's side; the file
format and the loop state are :mod:`disentangled_ssl.training.checkpoint`).

With ``checkpoint_dir`` set, every epoch of every stage ends with an atomic checkpoint (the
weights, Adam, the LR schedule, RNG states, history, the run's settings and a fingerprint of
its data); ``fit(..., resume=True)`` continues the interrupted stage after its last epoch and
runs the remaining stages, ending bit-identical (on CPU) to an uninterrupted run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from disentangled_ssl._errors import DSSLError, TrainingDivergedError
from disentangled_ssl.estimator.inputs import loader_fingerprint
from disentangled_ssl.nn.custom import json_safe_params
from disentangled_ssl.nn.modalities import modality_from_dict
from disentangled_ssl.training.checkpoint import (
    Checkpoint,
    check_resumable,
    checkpoint_path,
    data_fingerprint,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from disentangled_ssl.training.loop import LoopState, resolve_device, train_stage

if TYPE_CHECKING:
    from collections.abc import Callable

    from disentangled_ssl.estimator.estimator import DisentangledSSL, PreparedStage

#: Parameters that may differ between a run and its resumption (the decoders are trained
#: after the checkpointed stages and never checkpointed).
RESUME_MAY_DIFFER = ("device", "verbose", "checkpoint_dir", "decoder_epochs", "decoder_lr")


def run_params(est: DisentangledSSL) -> dict[str, object]:
    """The settings a resumed run must share with the run that wrote the checkpoint."""
    return {k: v for k, v in json_safe_params(est.get_params()).items()
            if k not in RESUME_MAY_DIFFER}


def checkpoint_writer(est: DisentangledSSL, name: str, data_hash: str
                      ) -> Callable[[LoopState], None] | None:
    """A callback writing the loop state after every epoch, or None without a folder."""
    if est.checkpoint_dir is None:
        return None
    path = checkpoint_path(est.checkpoint_dir)
    meta = {
        "params": run_params(est), "seed": est.seed_,
        "n_features_in": list(est.n_features_in_), "data": data_hash,
        "modalities": [k.to_dict() for k in est._kinds()],
        "history": {k: v for k, v in est.history_.items() if k != name},
    }

    def write(state: LoopState) -> None:
        extra = ({"cuda_rng": torch.cuda.get_rng_state(est._device)}
                 if est._device.type == "cuda" else {})
        save_checkpoint(path, Checkpoint(name, state, est.model_.state_dict(), meta, extra))

    return write


def _chain(*callbacks: Callable[[LoopState], None] | None
           ) -> Callable[[LoopState], None] | None:
    present = [c for c in callbacks if c is not None]
    if not present:
        return None

    def call(state: LoopState) -> None:
        for c in present:
            c(state)

    return call


def train_with_checkpoints(est: DisentangledSSL, prepared: PreparedStage,
                           resume: LoopState | None = None,
                           logger: Callable[[LoopState], None] | None = None) -> None:
    """Train a prepared stage through the one loop into ``est.history_`` (``logger`` is
    called after the checkpoint of every epoch); on divergence, name the last good
    checkpoint (kept, verified) in the error."""
    stage, data, config, validation = prepared
    writer = checkpoint_writer(est, stage.name, est._data_hash)
    try:
        est.history_[stage.name] = train_stage(stage, data, config, resume=resume,
                                               on_epoch_end=_chain(writer, logger),
                                               validation=validation)
    except TrainingDivergedError as exc:
        if est.checkpoint_dir is None or not checkpoint_path(est.checkpoint_dir).is_file():
            raise
        path = checkpoint_path(est.checkpoint_dir)
        last = load_checkpoint(path)  # verified: the kept file is loadable
        raise TrainingDivergedError(
            f"{exc}. The last good checkpoint (stage {last.stage!r}, epoch "
            f"{last.epoch + 1}) is kept in {path}; "
            f"DisentangledSSL.from_checkpoint({os.fspath(est.checkpoint_dir)!r}) loads it"
        ) from exc


def refuse_existing_checkpoint(est: DisentangledSSL) -> None:
    """A fresh fit never overwrites the checkpoint of an earlier run."""
    if est.checkpoint_dir is None:
        return
    path = checkpoint_path(est.checkpoint_dir)
    if path.exists():
        raise DSSLError(
            f"{path} holds the checkpoint of an earlier run; pass resume=True (CLI: "
            "--resume) to continue it, or delete it (CLI: --overwrite) to start again"
        )


def checkpoint_to_resume(est: DisentangledSSL, resume: bool) -> Checkpoint | None:
    """The checkpoint ``fit(..., resume=True)`` continues, or None (start from scratch)."""
    if not resume:
        return None
    est.validate_params()
    if est.checkpoint_dir is None:
        raise DSSLError(
            "resume=True needs checkpoint_dir, the folder of the run to continue "
            "(CLI: --checkpoint-dir DIR --resume)"
        )
    remove_stale_temporaries(est.checkpoint_dir)
    path = checkpoint_path(est.checkpoint_dir)
    return load_checkpoint(path) if path.is_file() else None


def restore_from(est: DisentangledSSL, checkpoint: Checkpoint, path: Path) -> None:
    """Seed, feature counts, finished histories and weights from a checkpoint."""
    try:
        est.seed_ = int(checkpoint.meta["seed"])
        est.n_features_in_ = [int(d) for d in checkpoint.meta["n_features_in"]]
        if "modalities" in checkpoint.meta:
            est.modalities_ = [modality_from_dict(k) for k in checkpoint.meta["modalities"]]
        else:  # written before modality kinds: vectors
            est.__dict__.pop("modalities_", None)
        est.history_ = {str(k): list(v) for k, v in checkpoint.meta["history"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DSSLError(f"{path} is incomplete or invalid ({exc!r})") from exc
    est._device = resolve_device(est.device)
    est.model_ = est._model_from_state(checkpoint.model, path)


def _comparable_params(est: DisentangledSSL, checkpoint: Checkpoint) -> dict[str, object]:
    """The run's parameters, less those a checkpoint of an earlier library version lacks
    while they keep their default here (added later; that run had their default)."""
    import inspect

    saved = checkpoint.meta.get("params")
    params = run_params(est)
    if not isinstance(saved, dict):
        return params
    defaults = {k: p.default for k, p in inspect.signature(type(est)).parameters.items()}
    return {k: v for k, v in params.items() if k in saved or v != defaults.get(k, object())}


def resume_fit(est: DisentangledSSL, checkpoint: Checkpoint, views: tuple[object, ...],
               validation: object = None) -> DisentangledSSL:
    """Continue the checkpointed stage after its last epoch, then run the later stages."""
    path = checkpoint_path(est.checkpoint_dir)  # type: ignore[arg-type]
    est._device = resolve_device(est.device)
    restore_from(est, checkpoint, path)
    names = est._spec().stage_names
    if checkpoint.stage not in names:
        raise DSSLError(f"{path} is at stage {checkpoint.stage!r}, which this run lacks")
    seed = est.seed_ + names.index(checkpoint.stage)
    train, held = est._split(est._read(views, seed), validation, seed)
    if train.tensors is not None:
        train.tensors = est._checked(train, est._kinds(), fitting=True)
        fingerprint = data_fingerprint([t.numpy() for t in train.tensors])
    else:  # as the first stage computed it: from the loader built with the run's seed
        first, _ = est._split(est._read(views, est.seed_), validation, est.seed_)
        fingerprint = loader_fingerprint(first, first.first_batch()[0])
    check_resumable(checkpoint, path, params=_comparable_params(est, checkpoint),
                    fingerprint=fingerprint)
    est._data_hash = fingerprint
    if "cuda_rng" in checkpoint.extra and est._device.type == "cuda":
        torch.cuda.set_rng_state(checkpoint.extra["cuda_rng"], est._device)
    if checkpoint.epoch + 1 < est._epochs(checkpoint.stage):
        est._train(est._prepared(checkpoint.stage, train, held), resume=checkpoint.loop)
    else:
        est.history_[checkpoint.stage] = list(checkpoint.loop.history)
    for name in names[names.index(checkpoint.stage) + 1:]:
        if est._epochs(name) > 0:
            est._train(est.prepare_stage(name, views, validation=validation))
    return est
