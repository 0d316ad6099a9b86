"""SimCLR: self-contrastive InfoNCE between two augmentations, per modality (Chen et al.,
"A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from disentangled_ssl.losses._checks import check_temperature, check_views
from disentangled_ssl.losses.functional import info_nce


class SimCLRLoss(nn.Module):
    """Sum over modalities of the symmetric InfoNCE between two augmented views.

    Each modality is trained on its own (no cross-modal term), so the code of modality i keeps
    whatever distinguishes a sample of modality i from the others of the batch — shared and
    private information alike. As in the DisentangledSSL authors' ``SupConLoss`` with two views,
    the negatives of a view are the other samples of the other view.

    Attributes:
        temperature: softmax temperature of the cosine logits.

    Example:
        >>> import torch
        >>> v = torch.eye(4)
        >>> out = SimCLRLoss()([(v, v), (v, v)])
        >>> float(out["loss"]) < 1e-3
        True
    """

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)

    def forward(self, views: list[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
        """views: per modality, two (B, D) embeddings of two augmentations of the same rows.

        Returns ``loss`` (the sum) and ``infonce{i}`` per modality (1-based).
        """
        check_views("SimCLRLoss", views, n_min=1)
        terms = {
            f"infonce{i + 1}": info_nce(F.normalize(a, dim=-1), F.normalize(b, dim=-1),
                                        self.temperature)
            for i, (a, b) in enumerate(views)
        }
        return {"loss": torch.stack(list(terms.values())).sum(), **terms}
