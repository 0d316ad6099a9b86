"""Data-parallel training over several processes (GPUs or CPU nodes), launched with torchrun.

Every process holds the whole training set and runs the one loop with the same seed, so all
processes walk through the same shuffled *global* batches; process r trains on rows
``[r·B, (r+1)·B)`` of each global batch of ``W·B`` rows (W processes, ``batch_size = W·B``).
The trainable encoders are wrapped in :class:`torch.nn.parallel.DistributedDataParallel`
(gradients averaged over processes, weights broadcast from rank 0 at the start), and the losses
are built in their global-batch form (``gather=True``): InfoNCE scores each process's rows
against the other batch's rows of *all* processes through a differentiable ``all_gather``, and
step 2's orthogonality term sums the cross-correlation over all processes with a differentiable
``all_reduce``. With both, one optimisation step equals the step of a single process on the
global batch (to float tolerance; ``tests/test_distributed.py`` checks the gradients with two
CPU processes and the gloo backend). Each process draws its own augmentations and vMF noise
(rank r > 0 re-seeds its stream from the stage seed), so with augmentation on, the random draws
differ from a single-process run's.

The estimator-level entry is :func:`disentangled_ssl.estimator.fit_distributed` (this module
never imports the estimator); launch it from the command line (see ``docs/scaling.md``) or
from Python, inside a script torchrun starts::

    from disentangled_ssl.estimator import DisentangledSSL, fit_distributed
    from disentangled_ssl.training.distributed import init_distributed
    ctx = init_distributed()
    est = DisentangledSSL(beta=1.0, batch_size=1024, random_state=0)
    fit_distributed(est, [x1, x2], context=ctx)
    if ctx.is_main:
        est.save("model")
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.training.loop import Stage, resolve_device

__all__ = [
    "DataParallelObjective",
    "DistributedContext",
    "distributed_stage",
    "init_distributed",
]

# Rank r > 0 re-seeds its augmentation / vMF stream with seed + r * _RANK_SEED_STRIDE.
_RANK_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that writes results)."""
        return self.rank == 0


def init_distributed(backend: str | None = None, device: str = "auto") -> DistributedContext:
    """Join the process group that torchrun describes in the environment.

    Args:
        backend: "nccl" (GPUs), "gloo" (CPUs) or None to pick nccl when this process uses CUDA.
        device: "auto" takes GPU ``LOCAL_RANK`` when CUDA is available, else the CPU.

    Returns:
        The process's :class:`DistributedContext`. Without torchrun (``WORLD_SIZE`` unset or 1)
        and no process group, a single-process context: training then runs as usual.

    Raises:
        DSSLError: torchrun variables that are inconsistent (e.g. ``RANK`` >= ``WORLD_SIZE``).
    """
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
    else:
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", "0"))
        except ValueError as exc:
            raise DSSLError(f"torchrun environment variable is not an integer: {exc}") from exc
        if not 0 <= rank < world:
            raise DSSLError(f"RANK={rank} is not in [0, WORLD_SIZE={world}); launch with torchrun")
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if device == "auto":
        resolved = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    else:
        resolved = resolve_device(device)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if world > 1 and not dist.is_initialized():
        if not dist.is_available():
            raise DSSLError("torch.distributed is not available in this torch build")
        dist.init_process_group(backend or ("nccl" if resolved.type == "cuda" else "gloo"))
    return DistributedContext(rank, world, local, resolved)


class _Replicated(nn.Module):
    """The stage's trainable modules as one module whose forward runs the stage's objective
    (so DistributedDataParallel sees the forward pass and averages their gradients)."""

    def __init__(self, trainable: Sequence[nn.Module], objective: nn.Module) -> None:
        super().__init__()
        self.trainable = nn.ModuleList(trainable)
        object.__setattr__(self, "_objective", objective)  # not a submodule

    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        return self._objective(*xs)


class DataParallelObjective(nn.Module):
    """A stage objective run data-parallel: takes the global batch, trains on this rank's rows.

    Args:
        objective: the stage's objective, built with ``gather=True`` losses (the estimator's
            ``prepare_stage(..., gather=True)``) so that they take the global batch.
        trainable: the stage's trainable modules (wrapped in DistributedDataParallel; rank 0's
            weights are broadcast to all ranks here).
        context: this process's :class:`DistributedContext`.
    """

    def __init__(self, objective: nn.Module, trainable: Sequence[nn.Module],
                 context: DistributedContext) -> None:
        super().__init__()
        self.objective = objective
        self.context = context
        device_ids = [context.device.index] if context.device.type == "cuda" else None
        self.replicated = (
            DistributedDataParallel(_Replicated(trainable, objective), device_ids=device_ids)
            if context.world_size > 1 else _Replicated(trainable, objective)
        )
        self._seeded = False

    @property
    def loss(self) -> nn.Module | None:
        """The wrapped objective's loss module (the loop sets dial schedules on it)."""
        return getattr(self.objective, "loss", None)

    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        """xs: one (W·B, d_i) global batch per modality -> this rank's loss terms."""
        world, rank = self.context.world_size, self.context.rank
        total = xs[0].shape[0]
        if total % world:
            raise DSSLError(
                f"the global batch of {total} rows does not split over {world} processes; "
                f"use a batch_size divisible by {world}"
            )
        if not self._seeded:
            # The loop seeded every rank alike; give each rank its own noise stream.
            if rank > 0:
                torch.manual_seed(torch.initial_seed() + rank * _RANK_SEED_STRIDE)
            self._seeded = True
        local = total // world
        return self.replicated(*(x[rank * local:(rank + 1) * local] for x in xs))


def distributed_stage(stage: Stage, context: DistributedContext) -> Stage:
    """The data-parallel version of ``stage`` (the same modules, frozen set and dials); run it
    with :func:`~disentangled_ssl.training.loop.train_stage` with ``batch_size`` set to the
    global batch."""
    objective = DataParallelObjective(stage.objective, stage.trainable, context)
    return dataclasses.replace(stage, objective=objective)
