"""CLIP: symmetric cross-modal InfoNCE (Radford et al., "Learning Transferable Visual Models
From Natural Language Supervision", ICML 2021)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.losses._checks import check_temperature
from disentangled_ssl.losses.functional import info_nce


class CLIPLoss(nn.Module):
    """Symmetric InfoNCE between the two modalities' L2-normalised embeddings.

    This is DisentangledSSL's step 1 at β = 0 with deterministic heads (no vMF sampling): the
    shared code of each modality must identify its partner in the other modality among the
    batch.

    Attributes:
        temperature: softmax temperature of the cosine logits.

    Raises:
        DSSLError: non-positive temperature, or batches of different sizes.

    Example:
        >>> import torch
        >>> out = CLIPLoss(temperature=0.07)(torch.eye(4), torch.eye(4))
        >>> float(out["loss"]) < 1e-3
        True
    """

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)

    def forward(self, e1: Tensor, e2: Tensor) -> dict[str, Tensor]:
        """e1, e2: (B, D) paired embeddings (any scale). Returns ``loss`` and ``infonce``."""
        if e1.shape[0] != e2.shape[0]:
            raise DSSLError(f"paired batches differ in size: {e1.shape[0]} vs {e2.shape[0]}")
        nce = info_nce(F.normalize(e1, dim=-1), F.normalize(e2, dim=-1), self.temperature)
        return {"loss": nce, "infonce": nce}
