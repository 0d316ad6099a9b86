"""The baselines' objectives: one ``nn.Module`` per method whose ``forward(*batch)`` returns
the named loss terms the one training loop (:func:`~disentangled_ssl.training.train_stage`)
optimises. Each objective does the method's forward pass (augmentations, encoders, sampling,
decoders, critics) and hands the results to the method's loss module in
:mod:`disentangled_ssl.losses`; the method registry
(:mod:`disentangled_ssl.method_registry`) pairs them with their models.

Batches are one (B, d_i) tensor per modality. Objectives that need two augmented views push
both through each encoder in one call (a (2B, d_i) batch) and split the result.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.losses.clip import CLIPLoss
from disentangled_ssl.losses.dmvae import DMVAELoss
from disentangled_ssl.losses.factorcl import FactorCLLoss
from disentangled_ssl.losses.focal import FOCALLoss
from disentangled_ssl.losses.functional import product_of_experts
from disentangled_ssl.losses.joint import JointOptLoss
from disentangled_ssl.losses.simclr import SimCLRLoss
from disentangled_ssl.models import MultimodalModel
from disentangled_ssl.nn.vmf import VonMisesFisher

Views = tuple[Tensor, Tensor]


def _halves(t: Tensor, batch: int) -> Views:
    """(2B, D) -> the two (B, D) views."""
    return t[:batch], t[batch:]


def _two_views(augment: nn.Module, x: Tensor) -> Tensor:
    """(B, d) -> (2B, d): two independent augmentations of the same rows, stacked."""
    return torch.cat([augment(x), augment(x)])


def _reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
    """A reparameterised draw from N(mu, exp(logvar)) (torch's global RNG)."""
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


def _require_two(name: str, xs: tuple[Tensor, ...]) -> None:
    if len(xs) != 2:
        raise DSSLError(f"method {name!r} is defined for exactly 2 modalities, got {len(xs)}")


class CLIPObjective(nn.Module):
    """CLIP on one augmentation per modality, averaged over modality pairs."""

    def __init__(self, model: MultimodalModel, augment: nn.Module, loss: CLIPLoss) -> None:
        super().__init__()
        self.model, self.augment, self.loss = model, augment, loss

    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        codes = [self.model.shared_embedding(i, self.augment(x)) for i, x in enumerate(xs)]
        pairs = [(i, j) for i in range(len(xs)) for j in range(i + 1, len(xs))]
        out: dict[str, Tensor] = {}
        for i, j in pairs:
            for key, value in self.loss(codes[i], codes[j]).items():
                out[key] = out.get(key, 0.0) + value / len(pairs)
        return out


class SimCLRObjective(nn.Module):
    """SimCLR per modality: two augmentations through the modality's (only) encoder."""

    def __init__(self, model: MultimodalModel, augment: nn.Module, loss: SimCLRLoss) -> None:
        super().__init__()
        self.model, self.augment, self.loss = model, augment, loss

    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        batch = xs[0].shape[0]
        views = [_halves(self.model.shared_embedding(i, _two_views(self.augment, x)), batch)
                 for i, x in enumerate(xs)]
        return self.loss(views)


class JointOptObjective(nn.Module):
    """JointOpt: DisentangledSSL's architecture (vMF shared heads, specific encoders fed
    ``[x_i, shared_i(x_i)]``) with both objectives in one stage and gradients flowing into the
    shared encoders from every term."""

    def __init__(self, model: MultimodalModel, augment: nn.Module, loss: JointOptLoss,
                 kappa: float) -> None:
        super().__init__()
        self.model, self.augment, self.loss = model, augment, loss
        self.kappa = float(kappa)

    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        batch = xs[0].shape[0]
        views = [_two_views(self.augment, x) for x in xs]
        codes = [self.model.shared_embedding(i, v) for i, v in enumerate(views)]
        # One vectorised vMF draw for every modality and view.
        vmf = VonMisesFisher(F.normalize(torch.cat(codes), dim=-1), self.kappa,
                             validate_args=False)
        samples = F.normalize(vmf.rsample(), dim=-1).split([c.shape[0] for c in codes])
        specific = [self.model.specific_embedding(i, v, c)
                    for i, (v, c) in enumerate(zip(views, codes))]
        return self.loss([_halves(s, batch) for s in samples],
                         [_halves(c, batch) for c in codes],
                         [_halves(s, batch) for s in specific])


class FOCALObjective(nn.Module):
    """FOCAL: deterministic shared and specific encoders (specific fed ``[x_i, shared_i]``),
    two augmented views, trained together."""

    def __init__(self, model: MultimodalModel, augment: nn.Module, loss: FOCALLoss) -> None:
        super().__init__()
        self.model, self.augment, self.loss = model, augment, loss

    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        batch = xs[0].shape[0]
        views = [_two_views(self.augment, x) for x in xs]
        codes = [self.model.shared_embedding(i, v) for i, v in enumerate(views)]
        specific = [self.model.specific_embedding(i, v, c)
                    for i, (v, c) in enumerate(zip(views, codes))]
        return self.loss([_halves(c, batch) for c in codes],
                         [_halves(s, batch) for s in specific])


class DMVAEObjective(nn.Module):
    """DMVAE: Gaussian shared and private posteriors per modality
    (:class:`~disentangled_ssl.nn.GaussianEncoder` in ``model.shared`` / ``model.specific``),
    product-of-experts shared posterior, decoders ``model.extra["decoders"][i]`` reading
    ``[private_i, shared]``; one augmentation per modality is encoded and reconstructed."""

    def __init__(self, model: MultimodalModel, augment: nn.Module, loss: DMVAELoss) -> None:
        super().__init__()
        self.model, self.augment, self.loss = model, augment, loss

    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        _require_two("dmvae", xs)
        targets = [self.augment(x) for x in xs]
        shared = [self.model.shared[i].posterior(x) for i, x in enumerate(targets)]
        private = [self.model.specific[i].posterior(x) for i, x in enumerate(targets)]
        joint = product_of_experts(*shared[0], *shared[1])
        z_joint = _reparameterize(*joint)
        z_shared = [_reparameterize(*p) for p in shared]
        z_private = [_reparameterize(*p) for p in private]
        decoders = self.model.extra["decoders"]
        recon = [decoders[i](torch.cat([z_private[i], z_joint], dim=1)) for i in range(2)]
        cross = [decoders[i](torch.cat([z_private[i], z_shared[1 - i]], dim=1))
                 for i in range(2)]
        return self.loss(targets, recon, cross, private, shared, joint)


def _frozen_call(critic: nn.Module, a: Tensor, b: Tensor) -> Tensor:
    """Critic scores with the critic's parameters detached: gradients reach the inputs (the
    encoders) but not the critic."""
    params = {k: p.detach() for k, p in critic.named_parameters()}
    return functional_call(critic, params, (a, b))


class FactorCLObjective(nn.Module):
    """FactorCL (self-supervised): shared encoders ``model.shared``, unique encoders
    ``model.specific`` (reading ``x_i`` alone), and the critics in ``model.extra``:
    ``shared_nce``, ``shared_club`` (conditional), ``unique_self`` (one per modality),
    ``unique_club`` and ``unique_cond``. Two augmented views per modality; the second plays
    FactorCL's X_i'."""

    def __init__(self, model: MultimodalModel, augment: nn.Module, loss: FactorCLLoss) -> None:
        super().__init__()
        self.model, self.augment, self.loss = model, augment, loss

    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        _require_two("factorcl", xs)
        batch = xs[0].shape[0]
        views = [_two_views(self.augment, x) for x in xs]
        s = [_halves(self.model.shared_embedding(i, v), batch) for i, v in enumerate(views)]
        u = [_halves(self.model.specific_embedding(i, v), batch) for i, v in enumerate(views)]
        s_cond = [torch.cat(pair, dim=1) for pair in s]  # [S_i, S_i']
        u_cond = [torch.cat(pair, dim=1) for pair in u]
        critics = self.model.extra
        return self.loss(
            shared_nce=critics["shared_nce"](s[0][0], s[1][0]),
            shared_club_cond=_frozen_call(critics["shared_club"], s_cond[0], s_cond[1]),
            unique_self_nce=[critics["unique_self"][i](u[i][0], u[i][1]) for i in range(2)],
            unique_club=_frozen_call(critics["unique_club"], u[0][0], u[1][0]),
            unique_nce_cond=critics["unique_cond"](u_cond[0], u_cond[1]),
            critic_scores=[
                critics["shared_club"](s_cond[0].detach(), s_cond[1].detach()),
                critics["unique_club"](u[0][0].detach(), u[1][0].detach()),
            ],
        )
