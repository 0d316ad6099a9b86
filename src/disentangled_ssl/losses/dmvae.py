"""DMVAE: the private-shared disentangled multimodal VAE (Lee & Pavlovic, "Private-Shared
Disentangled Multimodal VAE for Learning of Latent Representations", CVPR Workshops 2021), as
the DisentangledSSL authors run it as a baseline (Wang et al., ICLR 2025)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.losses._checks import check_dial
from disentangled_ssl.losses.functional import gaussian_kl

Gaussian = tuple[Tensor, Tensor]


class DMVAELoss(nn.Module):
    """``recon + cross recon + a · (KL + cross KL)`` for two modalities.

    Each modality i has a Gaussian private posterior q(p_i | x_i) and a Gaussian shared
    posterior q(s_i | x_i); the joint shared posterior is their product of experts q(s | x1, x2).

    - recon: ``Σ_i MSE(dec_i([p_i, s]), x_i)`` with s drawn from the product of experts;
    - cross recon: ``Σ_i MSE(dec_i([p_i, s_j]), x_i)``, j the other modality — the shared
      latent of one modality must stand in for the other's;
    - KL: ``Σ_i KL(q(p_i)) + 2 · KL(q(s))`` (the joint shared posterior counted for both
      reconstructions);
    - cross KL: ``Σ_i KL(q(p_i)) + Σ_i KL(q(s_i))``. (The authors' code has
      ``KL(N(μ_p1, σ²_p2)) + KL(N(μ_p2, σ²_p1))`` for the first sum, mixing the two modalities'
      private means and variances. That is the same total: a KL to N(0, 1) is a mean part
      plus a variance part, so both forms sum to the same function of the four parameters —
      same loss, same gradients; ``docs/baselines.md`` has the numerical check.)

    MSE is averaged over rows and features; each KL is summed over rows and latent dimensions
    (see :func:`~disentangled_ssl.losses.functional.gaussian_kl`), as in the authors' code, so
    ``a`` spans their grid 0, 1e-7 … 1e-2.

    Attributes:
        alpha: ``a``, weight of the KL terms (the dial).
    """

    def __init__(self, alpha: float = 1e-5) -> None:
        super().__init__()
        self.alpha = check_dial("alpha", alpha)

    def forward(
        self,
        targets: list[Tensor],
        reconstructions: list[Tensor],
        cross_reconstructions: list[Tensor],
        private: list[Gaussian],
        shared: list[Gaussian],
        joint_shared: Gaussian,
    ) -> dict[str, Tensor]:
        """Args:
            targets: per modality, the (B, d_i) rows that were encoded.
            reconstructions: per modality, (B, d_i) decodings of ``[p_i, s]``.
            cross_reconstructions: per modality, (B, d_i) decodings of ``[p_i, s_j]``.
            private: per modality, (mu, logvar) of q(p_i | x_i), each (B, Dp).
            shared: per modality, (mu, logvar) of q(s_i | x_i), each (B, Ds).
            joint_shared: (mu, logvar) of the product of experts, each (B, Ds).

        Returns ``loss``, ``recon``, ``cross_recon``, ``kl`` and ``cross_kl``.
        """
        n_mod = len(targets)
        if n_mod != 2 or not (len(reconstructions) == len(cross_reconstructions)
                              == len(private) == len(shared) == 2):
            raise DSSLError(f"DMVAELoss is defined for exactly 2 modalities, got {n_mod}")
        recon = torch.stack([F.mse_loss(r, x) for r, x in zip(reconstructions, targets)]).sum()
        cross = torch.stack([F.mse_loss(r, x) for r, x in zip(cross_reconstructions, targets)]
                            ).sum()
        private_kl = gaussian_kl(*private[0]) + gaussian_kl(*private[1])
        kl = private_kl + 2.0 * gaussian_kl(*joint_shared)
        cross_kl = private_kl + gaussian_kl(*shared[0]) + gaussian_kl(*shared[1])
        loss = recon + cross + self.alpha * (kl + cross_kl)
        return {"loss": loss, "recon": recon, "cross_recon": cross, "kl": kl,
                "cross_kl": cross_kl}
