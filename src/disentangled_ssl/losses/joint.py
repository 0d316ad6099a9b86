"""JointOpt: shared and specific encoders optimised together in one objective — the
"joint optimisation" baseline of Wang et al., "An Information Criterion for Controlled
Disentanglement of Multimodal Data" (ICLR 2025, arXiv 2410.23996), Section 5.1."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.losses._checks import check_dial, check_temperature, check_views
from disentangled_ssl.losses.disentangled import SpecificLoss
from disentangled_ssl.losses.functional import info_nce


class JointOptLoss(nn.Module):
    """``2/(1+a) · shared InfoNCE + a/(1+a) · specific InfoNCE + λ · orthogonality``.

    The two DisentangledSSL objectives in one: the shared term is the symmetric cross-modal
    InfoNCE between vMF samples of the shared codes (averaged over two augmented views and over
    modality pairs); the specific and orthogonality terms are those of
    :class:`~disentangled_ssl.losses.SpecificLoss` (self-contrastive InfoNCE of
    ``normalise([specific_i, shared_other])``, summed over modalities, plus the Frobenius norm
    of the specific/shared cross-correlation) — but gradients reach the shared encoders from
    every term, which is what lets private information leak into the shared code and shared
    information into the specific one.

    Attributes:
        alpha: ``a``, the trade-off between the shared and the specific terms (the dial; the
            authors sweep 0.01 … 1000).
        lam: weight of the orthogonality penalty.
        temperature: InfoNCE temperature.

    Raises:
        DSSLError: negative or non-finite weights, non-positive temperature.
    """

    def __init__(self, alpha: float = 1.0, lam: float = 1.0, temperature: float = 0.07) -> None:
        super().__init__()
        self.alpha = check_dial("alpha", alpha)
        self.lam = check_dial("lam", lam)
        self.temperature = check_temperature(temperature)
        self._specific = SpecificLoss(lam=0.0, temperature=self.temperature)

    def forward(
        self,
        samples: list[tuple[Tensor, Tensor]],
        shared: list[tuple[Tensor, Tensor]],
        specific: list[tuple[Tensor, Tensor]],
    ) -> dict[str, Tensor]:
        """Args:
            samples: per modality, (view a, view b) unit-norm vMF samples of the shared codes,
                each (B, Dc).
            shared: per modality, (view a, view b) shared codes (encoder outputs), (B, Dc).
            specific: per modality, (view a, view b) specific codes, (B, Ds).

        Returns ``loss``, ``shared_infonce``, ``specific_infonce`` and ``orthogonality``.
        """
        n_mod = check_views("JointOptLoss", samples)
        if len(shared) != n_mod or len(specific) != n_mod:
            raise DSSLError("JointOptLoss needs samples, shared and specific for every modality")
        pairs = [(i, j) for i in range(n_mod) for j in range(i + 1, n_mod)]
        shared_nce = torch.stack([
            info_nce(samples[i][v], samples[j][v], self.temperature)
            for i, j in pairs for v in (0, 1)
        ]).mean()
        spec = self._specific(specific, shared)
        a = self.alpha
        loss = (2.0 / (1.0 + a)) * shared_nce + (a / (1.0 + a)) * spec["infonce"] \
            + self.lam * spec["orthogonality"]
        return {"loss": loss, "shared_infonce": shared_nce, "specific_infonce": spec["infonce"],
                "orthogonality": spec["orthogonality"]}
