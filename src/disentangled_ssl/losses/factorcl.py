"""FactorCL (Liang et al., "Factorized Contrastive Learning: Going Beyond Multi-view
Redundancy", NeurIPS 2023), self-supervised version: augmentations stand in for the task."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.losses.functional import club_upper_bound, nce_lower_bound


class FactorCLLoss(nn.Module):
    """FactorCL's factorised objective, from critic score matrices.

    With X_i' an augmentation of X_i, FactorCL learns shared codes S_i and unique codes U_i:

    - shared: maximise ``I_NCE(S1; S2) − I_CLUB(S1; S2 | X1', X2')`` — what the modalities
      share, minus what of it the augmentations do not preserve;
    - unique: maximise, per modality, ``I_NCE(U_i; U_i')`` (self-supervised coverage of X_i), and
      ``− I_CLUB(U1; U2) + I_NCE(U1; U2 | X1', X2')`` (remove the information the modalities
      share, keep the part that is only shared through the augmentation-relevant content).

    Lower bounds are InfoNCE (:func:`nce_lower_bound`); upper bounds are NCE-CLUB
    (:func:`club_upper_bound`) whose critics are trained to maximise their own InfoNCE bound on
    *detached* inputs (``critic_scores``) while the encoders see them frozen, so one backward
    pass updates encoders and critics without a second optimiser. Conditional terms score the
    concatenations ``[z_i, z_i']``.

    The loss is ``−I_NCE(S) + I_CLUB(S|·) − Σ_i I_NCE(U_i; U_i') + I_CLUB(U) − I_NCE(U|·)``
    plus ``−Σ I_NCE`` of the CLUB critics on detached inputs. All weights are 1, as in the
    paper; the method has no dial.
    """

    def forward(
        self,
        shared_nce: Tensor,
        shared_club_cond: Tensor,
        unique_self_nce: list[Tensor],
        unique_club: Tensor,
        unique_nce_cond: Tensor,
        critic_scores: list[Tensor],
    ) -> dict[str, Tensor]:
        """Every argument is a (B, B) critic score matrix (pairs on the diagonal).

        Args:
            shared_nce: scores of (S1, S2).
            shared_club_cond: frozen-critic scores of ([S1, S1'], [S2, S2']).
            unique_self_nce: per modality, scores of (U_i, U_i').
            unique_club: frozen-critic scores of (U1, U2).
            unique_nce_cond: scores of ([U1, U1'], [U2, U2']).
            critic_scores: the CLUB critics' scores on detached inputs (their training signal).

        Returns ``loss`` and the bounds ``shared_nce``, ``shared_club``, ``unique_self``,
        ``unique_club``, ``unique_cond`` and ``critic_nce`` (all in nats).
        """
        if not unique_self_nce:
            raise DSSLError("FactorCLLoss needs the self-contrastive scores of every modality")
        s_nce = nce_lower_bound(shared_nce)
        s_club = club_upper_bound(shared_club_cond)
        u_self = torch.stack([nce_lower_bound(s) for s in unique_self_nce]).sum()
        u_club = club_upper_bound(unique_club)
        u_cond = nce_lower_bound(unique_nce_cond)
        critic = torch.stack([nce_lower_bound(s) for s in critic_scores]).sum() \
            if critic_scores else s_nce.new_zeros(())
        loss = -s_nce + s_club - u_self + u_club - u_cond - critic
        return {"loss": loss, "shared_nce": s_nce, "shared_club": s_club, "unique_self": u_self,
                "unique_club": u_club, "unique_cond": u_cond, "critic_nce": critic}
