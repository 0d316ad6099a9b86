"""The one training loop: every method is a list of stages, and this loop runs any stage.

A :class:`Stage` names the modules it trains, the modules it freezes and its objective (an
``nn.Module`` whose ``forward(*batch)`` returns a dict of named loss terms including ``"loss"``).
The loop owns batching, Adam, the cosine learning-rate schedule, dial schedules, the per-epoch
history of every loss term, the divergence guard, progress and checkpoints.
"""

from __future__ import annotations

import contextlib
import math
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from disentangled_ssl._errors import DSSLError, PerformanceWarning, TrainingDivergedError
from disentangled_ssl.methods.base import Schedule, Stage

__all__ = ["LoopState", "Schedule", "Stage", "TrainConfig", "resolve_device", "rng_fork",
           "train_stage"]

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
    """

    batch_size: int = 256
    lr: float = 1e-4
    weight_decay: float = 0.0
    seed: int = 0
    progress: bool = True
    fused_optimizer: bool = True
    bf16: bool = False


@dataclass
class LoopState:
    """Everything needed to continue a stage exactly where it stopped."""

    epoch: int
    optimizer: dict
    scheduler: dict
    torch_rng: Tensor
    shuffle_rng: Tensor
    history: list[dict[str, float]]


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


def train_stage(
    stage: Stage,
    data: Sequence[Tensor],
    config: TrainConfig,
    *,
    resume: LoopState | None = None,
    on_epoch_end: Callable[[LoopState], None] | None = None,
) -> list[dict[str, float]]:
    """Run one stage over paired tensors and return its per-epoch history.

    Args:
        stage: what to train and how.
        data: one (n, d_i) tensor per modality, already on the training device; row k of each
            is the same sample.
        config: batch size, learning rate, seed, progress.
        resume: state saved by ``on_epoch_end`` of an earlier run of this same stage; training
            continues from the epoch after it and ends bit-identical (on CPU) to an
            uninterrupted run.
        on_epoch_end: called with the loop state after every epoch (checkpointing).

    Returns:
        One dict per epoch: the mean of every loss term, ``lr``, ``seconds`` and the dial
        values.

    Raises:
        TrainingDivergedError: a loss term became NaN/inf; names the epoch, step and term.

    The stage draws its randomness from torch's global RNG, seeded with ``config.seed``
    inside :func:`rng_fork`: the caller's RNG state is the same before and after.
    """
    with rng_fork(data[0].device):
        return _train_stage(stage, data, config, resume=resume, on_epoch_end=on_epoch_end)


def _train_stage(
    stage: Stage,
    data: Sequence[Tensor],
    config: TrainConfig,
    *,
    resume: LoopState | None,
    on_epoch_end: Callable[[LoopState], None] | None,
) -> list[dict[str, float]]:
    n = int(data[0].shape[0])
    steps = n // config.batch_size
    if steps == 0:
        raise DSSLError(
            f"{n} training rows is fewer than batch_size={config.batch_size}; "
            f"use batch_size <= {n} (e.g. batch_size={max(1, 2 ** int(math.log2(max(n, 1))))})"
        )
    device = data[0].device
    if config.bf16:
        reason = bf16_emulated(device)
        if reason is not None:
            warnings.warn(
                f"bf16=True but {reason}: bfloat16 is emulated there and training runs several "
                "times slower than float32; leave bf16 off on this device",
                PerformanceWarning, stacklevel=3,
            )
    params = _parameters(stage.trainable)
    if not params:
        raise DSSLError(f"stage {stage.name!r} has no trainable parameters")
    optimizer = _make_adam(params, config)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(stage.epochs, 1))
    shuffle_rng = torch.Generator()
    history: list[dict[str, float]] = []
    start = 0
    if resume is None:
        torch.manual_seed(config.seed)
        shuffle_rng.manual_seed(config.seed)
    else:
        optimizer.load_state_dict(resume.optimizer)
        scheduler.load_state_dict(resume.scheduler)
        torch.set_rng_state(resume.torch_rng)
        shuffle_rng.set_state(resume.shuffle_rng)
        history = list(resume.history)
        start = resume.epoch + 1

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

    bar = tqdm(
        range(start, stage.epochs), desc=stage.name, disable=not config.progress, unit="epoch",
        initial=start, total=stage.epochs, leave=False, dynamic_ncols=True,
    )
    try:
        for epoch in bar:
            tic = time.perf_counter()
            order = torch.randperm(n, generator=shuffle_rng).to(device)
            names: list[str] = []
            totals: Tensor | None = None
            dial_values: dict[str, float] = {}
            for step in range(steps):
                global_step = epoch * steps + step
                for dial, schedule in stage.dials.items():
                    dial_values[dial] = float(schedule(global_step))
                    setattr(loss_module, dial, dial_values[dial])
                index = order[step * config.batch_size : (step + 1) * config.batch_size]
                with precision:
                    terms = stage.objective(*(x.index_select(0, index) for x in data))
                optimizer.zero_grad(set_to_none=True)
                terms["loss"].backward()
                optimizer.step()
                if totals is None:
                    names = list(terms)
                    totals = torch.empty(steps, len(names), device=device)
                # One row per step, no host sync: checked for finiteness once per epoch.
                totals[step] = torch.stack([terms[k].detach() for k in names])
            assert totals is not None
            values = totals.cpu()
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
                    )
                )
    finally:
        bar.close()
        for p, flag in grad_state:
            p.requires_grad_(flag)
    for module in stage.trainable:
        module.eval()
    return history
