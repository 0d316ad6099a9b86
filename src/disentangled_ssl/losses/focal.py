"""FOCAL (Liu et al., "FOCAL: Contrastive Learning for Multimodal Time-Series Sensing Signals
in Factorized Orthogonal Latent Space", NeurIPS 2023), as the DisentangledSSL authors run it as
a baseline (Wang et al., ICLR 2025)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.losses._checks import check_dial, check_temperature, check_views
from disentangled_ssl.losses.functional import info_nce, paired_cosine


class FOCALLoss(nn.Module):
    """``shared InfoNCE + a · specific InfoNCE + λ · orthogonality``.

    - shared: symmetric cross-modal InfoNCE between the normalised shared codes, summed over
      the two augmented views (averaged over modality pairs when M > 2);
    - specific: self-contrastive InfoNCE between the two views of each modality's normalised
      specific code, summed over modalities (the specific code alone, not concatenated with
      a shared code);
    - orthogonality: the mean cosine between paired vectors, summed over (specific_i, shared_i)
      for every modality and view and over (specific_i, specific_j) for every modality pair and
      view. Like the authors' ``ortho_loss_focal`` it is the signed cosine, so minimising it
      can push pairs towards anti-alignment rather than exact orthogonality.

    Attributes:
        alpha: ``a``, weight of the specific term (the dial).
        lam: weight of the orthogonality term.
        temperature: InfoNCE temperature.
    """

    def __init__(self, alpha: float = 1.0, lam: float = 1.0, temperature: float = 0.07) -> None:
        super().__init__()
        self.alpha = check_dial("alpha", alpha)
        self.lam = check_dial("lam", lam)
        self.temperature = check_temperature(temperature)

    def forward(
        self, shared: list[tuple[Tensor, Tensor]], specific: list[tuple[Tensor, Tensor]]
    ) -> dict[str, Tensor]:
        """shared, specific: per modality, (view a, view b) codes, each (B, D) (any scale).

        Returns ``loss``, ``shared_infonce``, ``specific_infonce`` and ``orthogonality``.
        """
        n_mod = check_views("FOCALLoss", shared)
        if len(specific) != n_mod:
            raise DSSLError("FOCALLoss needs shared and specific codes for every modality")
        c = [[F.normalize(v, dim=-1) for v in views] for views in shared]
        s = [[F.normalize(v, dim=-1) for v in views] for views in specific]
        pairs = [(i, j) for i in range(n_mod) for j in range(i + 1, n_mod)]
        shared_nce = torch.stack([
            info_nce(c[i][v], c[j][v], self.temperature) for i, j in pairs for v in (0, 1)
        ]).sum() / len(pairs)
        specific_nce = torch.stack([info_nce(s[i][0], s[i][1], self.temperature)
                                    for i in range(n_mod)]).sum()
        ortho = torch.stack(
            [paired_cosine(s[i][v], c[i][v]) for i in range(n_mod) for v in (0, 1)]
            + [paired_cosine(s[i][v], s[j][v]) for i, j in pairs for v in (0, 1)]
        ).sum()
        loss = shared_nce + self.alpha * specific_nce + self.lam * ortho
        return {"loss": loss, "shared_infonce": shared_nce, "specific_infonce": specific_nce,
                "orthogonality": ortho}
