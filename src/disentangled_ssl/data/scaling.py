"""Feature standardisation fitted on the training rows only and saved with the model.

With ``DisentangledSSL(standardize=True)`` the per-feature mean and standard deviation of each
standardisable modality's training rows become buffers of the model (``input_mean_i``,
``input_scale_i``), so they are written to ``model.safetensors`` and checkpoints with the
weights and reused as-is by ``transform`` on any later data (no refitting on test rows).

As scikit-learn's ``StandardScaler``: a feature that is constant on the training rows keeps
scale 1 (it becomes 0, and stays finite on later rows). Vectors are standardised per feature;
sequences per feature over all real time steps (the mask channel of padded sequences is left
alone); images and token ids never (a kind without ``scalable`` gets no buffers).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn


def _names(i: int) -> tuple[str, str]:
    return f"input_mean_{i}", f"input_scale_{i}"


def attach_scaler(model: nn.Module, n_features: Sequence[int | None]) -> None:
    """Register identity scaler buffers (mean 0, scale 1) of ``n_features[i]`` per modality
    (None: modality i is not standardised)."""
    for i, d in enumerate(n_features):
        if d is None:
            continue
        mean, scale = _names(i)
        model.register_buffer(mean, torch.zeros(int(d)))
        model.register_buffer(scale, torch.ones(int(d)))


def _rows(x: Tensor, masked: bool) -> Tensor:
    """The per-feature rows a scaler sees: (n, d) vectors, or the (steps, d) real time steps of
    (n, T, d[+1]) sequences."""
    if x.dim() == 2:
        return x
    if masked:
        valid = x[..., -1] > 0
        return x[..., :-1][valid]
    return x.reshape(-1, x.shape[-1])


def _set(model: nn.Module, i: int, total: Tensor, total_sq: Tensor, count: int) -> None:
    mean = total / max(count, 1)
    var = (total_sq / max(count, 1) - mean * mean).clamp_min(0)
    std = var.sqrt()
    std[std <= 1e-12 * mean.abs().clamp_min(1.0)] = 1.0
    mean_name, scale_name = _names(i)
    buffer = getattr(model, mean_name)
    buffer.copy_(mean.to(buffer))
    getattr(model, scale_name).copy_(std.to(buffer))


def fit_scaler(model: nn.Module, arrays: Sequence[np.ndarray | Tensor],
               kinds: Sequence[object] | None = None) -> None:
    """Set the buffers from the training rows: mean and population std per feature (a zero
    std becomes 1, leaving a constant feature at 0). Modalities without buffers are skipped."""
    for i, a in enumerate(arrays):
        mean_name, _ = _names(i)
        if getattr(model, mean_name, None) is None:
            continue
        masked = bool(getattr(kinds[i], "masked", False)) if kinds is not None else False
        x = a if isinstance(a, Tensor) else torch.from_numpy(np.asarray(a))
        if x.dim() > 2 and kinds is None:
            x = x.reshape(x.shape[0], -1)
        rows = np.asarray(_rows(x, masked).cpu().numpy(), dtype=np.float64)
        std = rows.std(axis=0)
        std[std == 0] = 1.0
        buffer = getattr(model, mean_name)
        buffer.copy_(torch.from_numpy(rows.mean(axis=0)).to(buffer))
        getattr(model, _names(i)[1]).copy_(torch.from_numpy(std).to(buffer))


def fit_scaler_streaming(model: nn.Module, batches: Iterable[tuple[Tensor, ...]] | object,
                         kinds: Sequence[object]) -> None:
    """As :func:`fit_scaler`, from one pass over a batch source (sums of the rows and of their
    squares in float64; memory of one batch)."""
    sums: dict[int, list] = {}
    source = batches.batches() if hasattr(batches, "batches") else batches  # type: ignore
    for batch in source:
        for i, x in enumerate(batch):
            if getattr(model, _names(i)[0], None) is None:
                continue
            rows = _rows(x, bool(getattr(kinds[i], "masked", False))).double()
            entry = sums.setdefault(i, [0.0, 0.0, 0])
            entry[0] = entry[0] + rows.sum(0)
            entry[1] = entry[1] + (rows * rows).sum(0)
            entry[2] += rows.shape[0]
    for i, (total, total_sq, count) in sums.items():
        _set(model, i, total, total_sq, count)


def apply_scaler(model: nn.Module, i: int, x: Tensor) -> Tensor:
    """(B, ...) -> standardised (B, ...) for modality i; identity without a scaler. Vectors
    (and N-D inputs of models saved before modality kinds) are standardised per flattened
    feature; (B, T, d[+1]) sequences per feature on their first d channels."""
    mean_name, scale_name = _names(i)
    mean = getattr(model, mean_name, None)
    if mean is None:
        return x
    scale = getattr(model, scale_name)
    if x.dim() == 3 and x.shape[-1] in (mean.shape[0], mean.shape[0] + 1) and (
            x.shape[1] * x.shape[2] != mean.shape[0]):
        d = mean.shape[0]
        values = (x[..., :d] - mean) / scale
        if x.shape[-1] == d + 1:  # a padded sequence: keep the mask, zeros at padding
            mask = x[..., d:]
            return torch.cat([values * mask, mask], dim=-1)
        return values
    shape = x.shape
    return ((x.reshape(shape[0], -1) - mean) / scale).reshape(shape)
