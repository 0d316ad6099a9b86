"""DMVAE (Lee & Pavlovic, CVPR Workshops 2021): Gaussian shared and private posteriors per
modality, a product-of-experts shared posterior, decoders from ``[private_i, shared]`` back to
each modality, with self- and cross-reconstruction."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from disentangled_ssl.losses.dmvae import DMVAELoss
from disentangled_ssl.losses.functional import product_of_experts
from disentangled_ssl.methods.base import (
    MethodSettings,
    MethodSpec,
    ModelShape,
    Objective,
    Stage,
    one_stage,
    reparameterize,
    require_modalities,
)
from disentangled_ssl.nn.encoders import MLP
from disentangled_ssl.nn.heads import GaussianEncoder
from disentangled_ssl.nn.model import MultimodalModel


class DMVAEObjective(Objective):
    """DMVAE: Gaussian encoders in ``model.shared`` / ``model.specific``, decoders
    ``model.extra["decoders"][i]`` reading ``[private_i, shared]``; one augmentation per
    modality is encoded and reconstructed."""


    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        require_modalities("dmvae", len(xs))
        targets = [self.augment(x) for x in xs]
        shared = [self.model.shared[i].posterior(x) for i, x in enumerate(targets)]
        private = [self.model.specific[i].posterior(x) for i, x in enumerate(targets)]
        joint = product_of_experts(*shared[0], *shared[1])
        z_joint = reparameterize(*joint)
        z_shared = [reparameterize(*p) for p in shared]
        z_private = [reparameterize(*p) for p in private]
        decoders = self.model.extra["decoders"]
        recon = [decoders[i](torch.cat([z_private[i], z_joint], dim=1)) for i in range(2)]
        cross = [decoders[i](torch.cat([z_private[i], z_shared[1 - i]], dim=1))
                 for i in range(2)]
        return self.loss(targets, recon, cross, private, shared, joint)


def build_model(shape: ModelShape) -> MultimodalModel:
    """Gaussian shared and private encoders per modality, and decoders from
    ``[private, shared]`` back to the modality."""
    require_modalities("dmvae", len(shape.in_dims))
    h, layers = shape.hidden_dim, shape.n_hidden_layers
    return MultimodalModel(
        shape.in_dims, shape.shared_dim, shape.specific_dim, h, layers,
        shared_encoders=[GaussianEncoder(d, shape.shared_dim, h, layers) for d in shape.in_dims],
        specific_encoders=[GaussianEncoder(d, shape.specific_dim, h, layers)
                           for d in shape.in_dims],
        condition_specific_on_shared=False,
        extra_modules={"decoders": nn.ModuleList([
            MLP(shape.specific_dim + shape.shared_dim, d, h, layers) for d in shape.in_dims
        ])},
    )


def build_stages(model: MultimodalModel, augment: nn.Module, settings: MethodSettings
                 ) -> list[Stage]:
    return one_stage("dmvae", DMVAEObjective(model, augment, DMVAELoss(settings.alpha)),
                     model, settings)


SPEC = MethodSpec(
    name="dmvae", title="DMVAE", citation="Lee & Pavlovic, CVPR Workshops 2021",
    dials=("alpha",), default_alpha=1e-5, has_specific=True, build_model=build_model,
    build_stages=build_stages, stage_names=("dmvae",), sweep=("alpha", (1e-6, 1e-5, 1e-4)),
)
