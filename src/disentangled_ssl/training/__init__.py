"""The one training loop that runs every method's stages."""

from disentangled_ssl.training.loop import (
    LoopState,
    Stage,
    TrainConfig,
    resolve_device,
    train_stage,
)

__all__ = ["LoopState", "Stage", "TrainConfig", "resolve_device", "train_stage"]
