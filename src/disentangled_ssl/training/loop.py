"""The one training loop: every method is a list of stages, and this loop runs any stage.

A :class:`Stage` names the modules it trains, the modules it freezes and its objective (an
``nn.Module`` whose ``forward(*batch)`` returns a dict of named loss terms including ``"loss"``).
The loop owns batching, Adam, the cosine learning-rate schedule, dial schedules, the per-epoch
history of every loss term, the divergence guard, progress and checkpoints.
"""

from __future__ import annotations

import contextlib
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from disentangled_ssl._errors import DSSLError, PerformanceWarning, TrainingDivergedError
from disentangled_ssl.data.loaders import Batches, TensorBatches
from disentangled_ssl.methods.base import Schedule, Stage

__all__ = ["LoopState", "Schedule", "Stage", "TrainConfig", "as_batches", "evaluate_stage",
           "resolve_device", "rng_fork", "train_stage"]

@dataclass
class TrainConfig:
    """Optimisation settings shared by every stage.

    Attributes:
        batch_size: rows per step; the last incomplete batch of an epoch is dropped.
        lr: Adam learning rate (cosine-annealed to 0 over the stage's epochs).
        weight_decay: Adam weight decay.
        seed: seeds the shuffling and every random draw of the stage.
        progress: show a progress bar.
        fused_optimizer: use torch's fused Adam kernel (one call updates every tensor; same
            update rule, ~3x less optimiser time on CPU) where the parameters' device supports
            it; False uses the default per-tensor implementation.
        bf16: run the objective's forward under ``torch.autocast`` with bfloat16 (mixed
            precision for GPUs with bf16 tensor cores; parameters, gradients and the optimiser
            stay float32). Off by default; on CPUs without bf16 matrix units it is slower.
        early_stopping_patience: with validation batches, stop when the validation loss has
            not improved for this many epochs and restore the trainable modules of the best
            epoch (None: train every epoch, still reporting the validation terms).
    """

    batch_size: int = 256
    lr: float = 1e-4
    weight_decay: float = 0.0
    seed: int = 0
    progress: bool = True
    fused_optimizer: bool = True
    bf16: bool = False
    early_stopping_patience: int | None = None


@dataclass
class LoopState:
    """Everything needed to continue a stage exactly where it stopped.

    ``global_step`` counts the optimiser steps so far (dial schedules read it); ``best_epoch``,
    ``best_loss`` and ``best_state`` (the trainable modules' weights at the best validation
    epoch) carry early stopping across a resume.
    """

    epoch: int
    optimizer: dict
    scheduler: dict
    torch_rng: Tensor
    shuffle_rng: Tensor
    history: list[dict[str, float]]
    global_step: int = 0
    best_epoch: int = -1
    best_loss: float = float("inf")
    best_state: dict[str, Tensor] = field(default_factory=dict)


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" picks CUDA when available, else CPU; other strings go to ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise DSSLError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda[:N]'") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DSSLError(f"device {device!r} requested but CUDA is not available; use 'cpu'")
    return resolved


def bf16_emulated(device: torch.device) -> str | None:
    """Why bfloat16 autocast on ``device`` would be emulated (several times slower than float32),
    or None when the device has bf16 arithmetic or we cannot tell.

    CUDA: ``torch.cuda.is_bf16_supported(including_emulation=False)``. x86 CPUs: AVX512-BF16 or
    AMX (e.g. AMD Zen 4, Intel Sapphire Rapids); without them torch converts every bf16 product
    in software (measured 5-7x slower than float32 on an AVX2 EPYC). Other CPUs: no check.
    """
    if device.type == "cuda":
        if not torch.cuda.is_bf16_supported(including_emulation=False):
            return f"GPU {torch.cuda.get_device_name(device)!r} has no native bfloat16 support"
        return None
    if device.type == "cpu" and platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        probes = [getattr(torch.cpu, name, None) for name in
                  ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        if all(callable(p) for p in probes) and not any(p() for p in probes):
            return "this CPU has no bfloat16 instructions (AVX512-BF16 or AMX)"
    return None


def _parameters(modules: Sequence[nn.Module]) -> list[nn.Parameter]:
    seen: set[int] = set()
    params = []
    for module in modules:
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


def _make_adam(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Adam:
    """Adam over ``params``: fused when asked for and supported (floating parameters, all on
    one CPU or CUDA device), else torch's default implementation."""
    kwargs = {"lr": config.lr, "weight_decay": config.weight_decay}
    devices = {p.device for p in params}
    if (config.fused_optimizer and len(devices) == 1
            and next(iter(devices)).type in ("cpu", "cuda")
            and all(p.is_floating_point() for p in params)):
        return torch.optim.Adam(params, fused=True, **kwargs)
    return torch.optim.Adam(params, **kwargs)


def rng_fork(device: torch.device) -> contextlib.AbstractContextManager:
    """A context in which torch's global RNG (CPU, and ``device`` when it is a GPU) may be
    reseeded and drawn from; on exit the caller's state is restored exactly."""
    devices = [device] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


def _trainable_state(stage: Stage) -> dict[str, Tensor]:
    """A CPU copy of the trainable modules' weights, keyed ``<module index>.<name>``."""
    return {f"{k}.{name}": t.detach().to("cpu", copy=True)
            for k, module in enumerate(stage.trainable)
            for name, t in module.state_dict().items()}


def _load_trainable_state(stage: Stage, state: dict[str, Tensor]) -> None:
    for k, module in enumerate(stage.trainable):
        prefix = f"{k}."
        module.load_state_dict({name[len(prefix):]: t for name, t in state.items()
                                if name.startswith(prefix)})


def as_batches(data: Sequence[Tensor] | Batches, batch_size: int) -> Batches:
    """Resident tensors become :class:`TensorBatches`; a batch source is used as given."""
    if isinstance(data, (list, tuple)):
        return TensorBatches(data, batch_size)
    return data  # type: ignore[return-value]


def train_stage(
    stage: Stage,
    data: Sequence[Tensor] | Batches,
    config: TrainConfig,
    validation: Batches | Sequence[Tensor] | None = None,
    *,
    resume: LoopState | None = None,
    on_epoch_end: Callable[[LoopState], None] | None = None,
) -> list[dict[str, float]]:
    """Run one stage over paired batches and return its per-epoch history.

    Args:
        stage: what to train and how.
        data: one (n, ...) tensor per modality, already on the training device (row k of each
            is the same sample; shuffled per epoch, the last incomplete batch dropped), or a
            batch source (:class:`~disentangled_ssl.data.loaders.LoaderBatches`) fed by a
            ``torch.utils.data`` pipeline.
        config: batch size, learning rate, seed, progress, early stopping.
        resume: state saved by ``on_epoch_end`` of an earlier run of this same stage; training
            continues from the epoch after it and ends bit-identical (on CPU) to an
            uninterrupted run (for a data loader: when the loader yields the same batches for
            the same epoch, as the estimator's loaders over map-style datasets do).
        on_epoch_end: called with the loop state after every epoch (checkpointing).
        validation: held-out batches: after every epoch the objective's loss terms on them
            (no gradients, modules in eval mode, the same augmentation draws every epoch) are
            recorded as ``val_<term>``; with ``config.early_stopping_patience`` they decide
            when to stop.

    Returns:
        One dict per epoch: the mean of every loss term, ``lr``, ``seconds``, the dial values
        and the validation terms.

    Raises:
        TrainingDivergedError: a loss term became NaN/inf; names the epoch, step and term.

    The stage draws its randomness from torch's global RNG, seeded with ``config.seed``
    inside :func:`rng_fork`: the caller's RNG state is the same before and after.
    """
    batches = as_batches(data, config.batch_size)
    held_out = as_batches(validation, config.batch_size) if validation is not None else None
    with rng_fork(batches.device):
        return _train_stage(stage, batches, config, resume=resume, on_epoch_end=on_epoch_end,
                            validation=held_out)


@torch.no_grad()
def evaluate_stage(stage: Stage, batches: Batches, seed: int, bf16: bool = False
                   ) -> dict[str, float]:
    """The mean of every loss term of ``stage.objective`` over ``batches`` with every module in
    eval mode and no gradients; the augmentations draw from ``seed`` (the same draws at every
    call) inside an RNG fork, so training's random stream is untouched."""
    modules = [*stage.trainable, *stage.frozen]
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    totals: dict[str, float] = {}
    count = 0
    precision: contextlib.AbstractContextManager = (
        torch.autocast(batches.device.type, dtype=torch.bfloat16) if bf16
        else contextlib.nullcontext())
    try:
        with rng_fork(batches.device):
            torch.manual_seed(seed)
            shuffle = torch.Generator().manual_seed(seed)
            for batch in batches.epoch(0, shuffle):
                with precision:
                    terms = stage.objective(*batch)
                for k, v in terms.items():
                    totals[k] = totals.get(k, 0.0) + float(v)
                count += 1
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)
    if count == 0:
        raise DSSLError("the validation data yielded no batch; give it at least batch_size rows")
    return {k: v / count for k, v in totals.items()}


def _warn_bf16(device: torch.device) -> None:
    reason = bf16_emulated(device)
    if reason is not None:
        warnings.warn(
            f"bf16=True but {reason}: bfloat16 is emulated there and training runs several "
            "times slower than float32; leave bf16 off on this device",
            PerformanceWarning, stacklevel=4,
        )


def _train_stage(
    stage: Stage,
    batches: Batches,
    config: TrainConfig,
    *,
    resume: LoopState | None,
    on_epoch_end: Callable[[LoopState], None] | None,
    validation: Batches | None,
) -> list[dict[str, float]]:
    device = batches.device
    if config.bf16:
        _warn_bf16(device)
    patience = config.early_stopping_patience
    if patience is not None and validation is None:
        raise DSSLError("early_stopping_patience needs validation data (validation_fraction > 0 "
                        "or fit(..., validation=...))")
    params = _parameters(stage.trainable)
    if not params:
        raise DSSLError(f"stage {stage.name!r} has no trainable parameters")
    optimizer = _make_adam(params, config)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(stage.epochs, 1))
    shuffle_rng = torch.Generator()
    history: list[dict[str, float]] = []
    start, global_step = 0, 0
    best_epoch, best_loss, best_state = -1, float("inf"), {}
    if resume is None:
        torch.manual_seed(config.seed)
        shuffle_rng.manual_seed(config.seed)
    else:
        optimizer.load_state_dict(resume.optimizer)
        scheduler.load_state_dict(resume.scheduler)
        torch.set_rng_state(resume.torch_rng)
        shuffle_rng.set_state(resume.shuffle_rng)
        history = list(resume.history)
        start, global_step = resume.epoch + 1, int(resume.global_step)
        best_epoch, best_loss = int(resume.best_epoch), float(resume.best_loss)
        best_state = dict(resume.best_state)
        # Old checkpoints carry no step count: every epoch of a fixed-size source has the same.
        if global_step == 0 and start > 0 and batches.steps:
            global_step = start * int(batches.steps)

    grad_state = [(p, p.requires_grad) for m in stage.frozen for p in m.parameters()]
    for p, _ in grad_state:
        p.requires_grad_(False)
    for module in stage.frozen:
        module.eval()
    for module in stage.trainable:
        module.train()
    loss_module = getattr(stage.objective, "loss", None)
    # Re-entered every step (sequentially, never nested): built once.
    precision: contextlib.AbstractContextManager = (
        torch.autocast(device.type, dtype=torch.bfloat16) if config.bf16
        else contextlib.nullcontext()
    )
    known_steps = batches.steps
    if (resume is not None and patience is not None
            and resume.epoch - best_epoch >= patience):
        start = stage.epochs  # the checkpointed run had already stopped early

    bar = tqdm(
        range(start, stage.epochs), desc=stage.name, disable=not config.progress, unit="epoch",
        initial=start, total=stage.epochs, leave=False, dynamic_ncols=True,
    )
    try:
        for epoch in bar:
            tic = time.perf_counter()
            names: list[str] = []
            rows: list[Tensor] = []
            totals: Tensor | None = None
            dial_values: dict[str, float] = {}
            step = -1
            for step, batch in enumerate(batches.epoch(epoch, shuffle_rng)):
                for dial, schedule in stage.dials.items():
                    dial_values[dial] = float(schedule(global_step))
                    setattr(loss_module, dial, dial_values[dial])
                with precision:
                    terms = stage.objective(*batch)
                optimizer.zero_grad(set_to_none=True)
                terms["loss"].backward()
                optimizer.step()
                global_step += 1
                if not names:
                    names = list(terms)
                    if known_steps:
                        totals = torch.empty(known_steps, len(names), device=device)
                # One row per step, no host sync: checked for finiteness once per epoch.
                row = torch.stack([terms[k].detach() for k in names])
                if totals is not None and step < totals.shape[0]:
                    totals[step] = row
                else:
                    rows.append(row)
            if step < 0:
                raise DSSLError(f"stage {stage.name!r}: the training data yielded no batch in "
                                f"epoch {epoch + 1}; give it at least batch_size rows")
            parts = ([totals[:step + 1]] if totals is not None else []) + (
                [torch.stack(rows)] if rows else [])
            values = torch.cat(parts).float().cpu()
            finite = torch.isfinite(values)
            if not bool(finite.all()):
                bad_step, bad_term = (~finite).nonzero()[0].tolist()
                raise TrainingDivergedError(
                    f"stage {stage.name!r} diverged: loss term {names[bad_term]!r} became "
                    f"{values[bad_step, bad_term].item()} at epoch {epoch + 1}, step {bad_step + 1}"
                    "; lower the learning rate or the dial (beta/lam), or check the input scale"
                )
            record = dict(zip(names, values.mean(0).tolist()))
            record["lr"] = optimizer.param_groups[0]["lr"]
            record.update(dial_values)
            scheduler.step()
            stop = False
            if validation is not None:
                held = evaluate_stage(stage, validation, config.seed + 7919, config.bf16)
                record.update({f"val_{k}": v for k, v in held.items()})
                if held["loss"] < best_loss:
                    best_epoch, best_loss = epoch, float(held["loss"])
                    if patience is not None:
                        best_state = _trainable_state(stage)
                stop = patience is not None and epoch - best_epoch >= patience
            record["seconds"] = time.perf_counter() - tic
            history.append(record)
            bar.set_postfix({k: f"{record[k]:.4g}" for k in names})
            if on_epoch_end is not None:
                on_epoch_end(
                    LoopState(
                        epoch=epoch,
                        optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(),
                        torch_rng=torch.get_rng_state(),
                        shuffle_rng=shuffle_rng.get_state(),
                        history=list(history),
                        global_step=global_step,
                        best_epoch=best_epoch,
                        best_loss=best_loss,
                        best_state=best_state,
                    )
                )
            if stop:
                break
    finally:
        bar.close()
        for p, flag in grad_state:
            p.requires_grad_(flag)
    if patience is not None and best_state:
        _load_trainable_state(stage, best_state)
        history[-1]["best_epoch"] = best_epoch + 1  # 1-based, as in progress and messages
    for module in stage.trainable:
        module.eval()
    return history
