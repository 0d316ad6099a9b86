"""Symmetric cross-modal InfoNCE as a loss module."""

from __future__ import annotations

from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.losses.functional import info_nce


class InfoNCELoss(nn.Module):
    """Symmetric InfoNCE (van den Oord et al. 2018; CLIP, Radford et al. 2021).

    Attributes:
        temperature: softmax temperature of the cosine logits (0.07 in DisentangledSSL).
        normalize: L2-normalise both inputs first.

    Raises:
        DSSLError: if ``temperature`` is not positive and finite.

    Example:
        >>> import torch
        >>> loss = InfoNCELoss(temperature=0.07)
        >>> a = torch.eye(4)
        >>> float(loss(a, a)) < 1e-3
        True
    """

    def __init__(self, temperature: float = 0.07, normalize: bool = True) -> None:
        super().__init__()
        if not (temperature > 0 and temperature < float("inf")):
            raise DSSLError(f"temperature must be positive and finite, got {temperature!r}")
        self.temperature = float(temperature)
        self.normalize = normalize

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """a, b: (B, D) paired embeddings -> scalar loss."""
        if a.shape[0] != b.shape[0]:
            raise DSSLError(f"paired batches differ in size: {a.shape[0]} vs {b.shape[0]}")
        if self.normalize:
            a, b = nn.functional.normalize(a, dim=-1), nn.functional.normalize(b, dim=-1)
        return info_nce(a, b, self.temperature)
