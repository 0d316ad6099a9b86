"""Augmentations for vector data, vectorised over the batch.

Each row independently gets one of: Gaussian noise (std ``noise_std``), zeroing of a random
``drop_fraction`` of its features, or identity, each with probability 1/3 (the augmentation of
the DisentangledSSL authors, without their per-row Python loop).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError


def augment_vectors(x: Tensor, noise_std: float = 0.01, drop_fraction: float = 0.1) -> Tensor:
    """Return an augmented copy of a batch.

    Args:
        x: batch of shape (B, D).
        noise_std: std of the additive Gaussian noise of the "noise" branch.
        drop_fraction: fraction of features zeroed in the "drop" branch (``int(D * f)`` features,
            chosen without replacement per row).

    Returns:
        Tensor of shape (B, D). Randomness comes from torch's global RNG.
    """
    batch, dim = x.shape
    choice = torch.randint(0, 3, (batch, 1), device=x.device)
    noise = torch.randn_like(x) * noise_std
    out = torch.where(choice == 0, x + noise, x)
    n_drop = int(dim * drop_fraction)
    if n_drop > 0:
        # The n_drop largest of D uniforms per row index a uniformly random subset to zero.
        index = torch.rand(batch, dim, device=x.device).topk(n_drop, dim=1).indices
        drop = torch.zeros_like(x, dtype=torch.bool).scatter_(1, index, True) & (choice == 1)
        out = out.masked_fill(drop, 0.0)
    return out


class VectorAugment(nn.Module):
    """Module form of :func:`augment_vectors` (identity when ``enabled`` is False)."""

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
