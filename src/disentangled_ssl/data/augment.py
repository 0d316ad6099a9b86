"""Augmentations for vector data, vectorised over the batch.

Each row independently gets one of: Gaussian noise (std ``noise_std``), zeroing of a random
``drop_fraction`` of its features, or identity, each with probability 1/3 (the augmentation of
the DisentangledSSL authors, without their per-row Python loop).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError


def augment_vectors(
    x: Tensor,
    noise_std: float = 0.01,
    drop_fraction: float = 0.1,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Return an augmented copy of a batch.

    Args:
        x: batch of shape (B, D), or (B, ...) (e.g. images), augmented as its flattened rows.
        noise_std: std of the additive Gaussian noise of the "noise" branch.
        drop_fraction: fraction of features zeroed in the "drop" branch (``int(D * f)`` features,
            chosen without replacement per row).
        generator: random generator on ``x``'s device; None uses torch's global RNG.

    Returns:
        Tensor of the shape of ``x``.
    """
    shape = x.shape
    flat = x.reshape(shape[0], -1)
    batch, dim = flat.shape
    device = flat.device
    n_drop = int(dim * drop_fraction)
    choice = torch.randint(0, 3, (batch,), device=device, generator=generator)
    if device.type != "cpu":
        # No host sync on accelerators: draw for every row, keep the rows' own branch.
        noise = torch.randn(flat.shape, dtype=flat.dtype, device=device, generator=generator)
        out = torch.where((choice == 0).unsqueeze(1), flat + noise * noise_std, flat)
        if n_drop > 0:
            # The n_drop largest of D uniforms per row index a uniformly random subset to zero.
            index = torch.rand(batch, dim, device=device, generator=generator).topk(
                n_drop, dim=1, sorted=False).indices
            drop = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, index, True)
            out = out.masked_fill(drop & (choice == 1).unsqueeze(1), 0.0)
        return out.reshape(shape)
    # On CPU the random draws dominate: draw them only for the rows of their branch (a third
    # each), ~3x cheaper than drawing (B, D) noise and uniforms for every row.
    out = flat.clone(memory_format=torch.contiguous_format)
    if noise_std > 0:
        rows = (choice == 0).nonzero().squeeze(1)
        noise = torch.randn(rows.shape[0], dim, dtype=flat.dtype, generator=generator)
        out.index_copy_(0, rows, noise.mul_(noise_std).add_(flat.index_select(0, rows)))
    if n_drop > 0:
        rows = (choice == 1).nonzero()  # (k, 1)
        index = torch.rand(rows.shape[0], dim, generator=generator).topk(
            n_drop, dim=1, sorted=False).indices
        out.view(-1).index_fill_(0, index.add_(rows, alpha=dim).view(-1), 0.0)
    return out.reshape(shape)


class VectorAugment(nn.Module):
    """Module form of :func:`augment_vectors` (identity when ``enabled`` is False).

    ``rowwise = True``: every row is augmented independently of the others, so one call on
    stacked batches equals separate calls in distribution (objectives use this to batch
    several views into one call).
    """

    rowwise = True

    def __init__(self, noise_std: float = 0.01, drop_fraction: float = 0.1, enabled: bool = True):
        super().__init__()
        if not (noise_std >= 0 and noise_std < float("inf")):
            raise DSSLError(f"noise_std must be >= 0 and finite, got {noise_std!r}")
        if not 0.0 <= drop_fraction < 1.0:
            raise DSSLError(f"drop_fraction must be in [0, 1), got {drop_fraction!r}")
        self.noise_std = float(noise_std)
        self.drop_fraction = float(drop_fraction)
        self.enabled = enabled

    def forward(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        return augment_vectors(x, self.noise_std, self.drop_fraction)
