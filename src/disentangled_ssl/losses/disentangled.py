"""DisentangledSSL's two objectives (Wang et al., "An Information Criterion for Controlled
Disentanglement of Multimodal Data", ICLR 2025, arXiv 2410.23996)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.losses._checks import check_dial, check_temperature
from disentangled_ssl.losses.functional import (
    alignment,
    info_nce,
    orthogonality,
    rank_and_world,
)
from disentangled_ssl.losses.fused import other_codes, specific_terms_summed


class SharedLoss(nn.Module):
    """Step 1: ``InfoNCE(z1, z2) + beta · alignment(e1, e2)``.

    Maximises I(Z; X_other) through the symmetric InfoNCE between vMF samples of both modalities
    and penalises I(Z; X_own | X_other) through the alignment surrogate (negative mean cosine of
    the two modalities' mean directions).

    Attributes:
        beta: weight of the alignment term (the trade-off dial; 0 gives CLIP on vMF samples).
        temperature: InfoNCE temperature.
        gather: under torch.distributed, take the InfoNCE negatives from every process's
            batch (data-parallel training; no effect in a single process).

    Example:
        >>> import torch
        >>> e = torch.nn.functional.normalize(torch.randn(8, 4), dim=-1)
        >>> out = SharedLoss(beta=1.0)(e, e, e, e)
        >>> sorted(out)
        ['alignment', 'infonce', 'loss']
    """

    def __init__(self, beta: float = 1.0, temperature: float = 0.07, *,
                 gather: bool = False) -> None:
        super().__init__()
        self.beta = check_dial("beta", beta)
        self.temperature = check_temperature(temperature)
        self.gather = bool(gather)

    def forward(self, z1: Tensor, z2: Tensor, e1: Tensor, e2: Tensor) -> dict[str, Tensor]:
        """z1, z2: (B, D) unit-norm vMF samples; e1, e2: (B, D) encoder outputs (mean
        directions up to scale). Returns ``loss``, ``infonce`` and ``alignment``."""
        nce = info_nce(z1, z2, self.temperature, gather=self.gather)
        align = alignment(e1, e2)
        return {"loss": nce + self.beta * align, "infonce": nce, "alignment": align}


class SpecificLoss(nn.Module):
    """Step 2: per modality i, ``InfoNCE(j_i, j_i') + lam · orthogonality``.

    ``j_i = normalise([s_i(v), c_other(v_other)])`` for one augmentation and ``j_i'`` for the
    other: the specific code together with the other modality's shared code must identify the
    sample (coverage of X_i), while the orthogonality penalty keeps the specific code
    uncorrelated with the modality's own shared code (disentanglement). As the authors
    implement it, the InfoNCE terms are summed over modalities and the orthogonality term is
    summed over modalities and averaged over the two views.

    Attributes:
        lam: weight of the orthogonality penalty (the dial).
        temperature: InfoNCE temperature.
        gather: under torch.distributed, compute both terms over the global batch (negatives
            and cross-correlation from every process; no effect in a single process).
    """

    def __init__(self, lam: float = 1.0, temperature: float = 0.07, *,
                 gather: bool = False) -> None:
        super().__init__()
        self.lam = check_dial("lam", lam)
        self.temperature = check_temperature(temperature)
        self.gather = bool(gather)

    def forward(
        self,
        specific: list[tuple[Tensor, Tensor]],
        shared: list[tuple[Tensor, Tensor]],
    ) -> dict[str, Tensor]:
        """Args:
            specific: per modality, (view a, view b) specific embeddings, each (B, Ds).
            shared: per modality, (view a, view b) frozen shared embeddings, each (B, Dc).

        Returns ``loss``, ``infonce`` (summed over modalities) and ``orthogonality``.
        """
        n_mod = len(specific)
        if n_mod < 2 or len(shared) != n_mod:
            raise DSSLError("SpecificLoss needs specific and shared views for >= 2 modalities")
        if (self.gather and rank_and_world()[1] > 1) or any(
                c.requires_grad for pair in shared for c in pair):
            return self._composed(specific, shared, other_codes(shared))
        nce, ortho = specific_terms_summed(specific, shared, self.temperature)
        return {"loss": nce + self.lam * ortho, "infonce": nce, "orthogonality": ortho}

    def _composed(self, specific: list[tuple[Tensor, Tensor]],
                  shared: list[tuple[Tensor, Tensor]], other: list[tuple[Tensor, Tensor]]
                  ) -> dict[str, Tensor]:
        """The same terms through autograd: needed when the InfoNCE negatives and the
        cross-correlation are gathered across processes, or when the shared codes are
        trained too (the fused node gives gradients to the specific codes only)."""
        nce = specific[0][0].new_zeros(())
        ortho = specific[0][0].new_zeros(())
        for i in range(len(specific)):
            joint_a = F.normalize(torch.cat([specific[i][0], other[i][0]], dim=-1), dim=-1)
            joint_b = F.normalize(torch.cat([specific[i][1], other[i][1]], dim=-1), dim=-1)
            nce = nce + info_nce(joint_a, joint_b, self.temperature, gather=self.gather)
            ortho = ortho + 0.5 * (
                orthogonality(specific[i][0], shared[i][0], gather=self.gather)
                + orthogonality(specific[i][1], shared[i][1], gather=self.gather)
            )
        return {"loss": nce + self.lam * ortho, "infonce": nce, "orthogonality": ortho}
