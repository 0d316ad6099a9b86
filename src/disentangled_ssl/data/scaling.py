"""Feature standardisation fitted on the training rows only and saved with the model.

With ``DisentangledSSL(standardize=True)`` the per-feature mean and standard deviation of each
modality's training rows become buffers of the model (``input_mean_i``, ``input_scale_i``), so
they are written to ``model.safetensors`` and checkpoints with the weights and reused as-is by
``transform`` on any later data (no refitting on test rows).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn


def _names(i: int) -> tuple[str, str]:
    return f"input_mean_{i}", f"input_scale_{i}"


def attach_scaler(model: nn.Module, n_features: Sequence[int]) -> None:
    """Register identity scaler buffers (mean 0, scale 1) of ``n_features[i]`` per modality."""
    for i, d in enumerate(n_features):
        mean, scale = _names(i)
        model.register_buffer(mean, torch.zeros(int(d)))
        model.register_buffer(scale, torch.ones(int(d)))


def fit_scaler(model: nn.Module, arrays: Sequence[np.ndarray]) -> None:
    """Set the buffers from training arrays (n, ...) flattened per row: mean and population
    std per feature (a zero std becomes 1, leaving a constant feature at 0)."""
    for i, a in enumerate(arrays):
        flat = np.asarray(a, dtype=np.float64).reshape(a.shape[0], -1)
        std = flat.std(axis=0)
        std[std == 0] = 1.0
        mean_name, scale_name = _names(i)
        buffer = getattr(model, mean_name)
        buffer.copy_(torch.from_numpy(flat.mean(axis=0)).to(buffer))
        getattr(model, scale_name).copy_(torch.from_numpy(std).to(buffer))


def apply_scaler(model: nn.Module, i: int, x: Tensor) -> Tensor:
    """(B, ...) -> standardised (B, ...) for modality i; identity without a scaler."""
    mean_name, scale_name = _names(i)
    mean = getattr(model, mean_name, None)
    if mean is None:
        return x
    shape = x.shape
    return ((x.reshape(shape[0], -1) - mean) / getattr(model, scale_name)).reshape(shape)
