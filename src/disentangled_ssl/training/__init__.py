"""The one training loop that runs every method's stages, its checkpoints, batched ensembles
and data-parallel wrapper. Nothing here imports the estimator."""

from disentangled_ssl.training.loop import (
    LoopState,
    Stage,
    TrainConfig,
    resolve_device,
    rng_fork,
    train_stage,
)

__all__ = ["LoopState", "Stage", "TrainConfig", "resolve_device", "rng_fork", "train_stage"]
