"""DMVAE (Lee & Pavlovic, CVPR Workshops 2021): Gaussian shared and private posteriors per
modality, a product-of-experts shared posterior, decoders from ``[private_i, shared]`` back to
each modality, with self- and cross-reconstruction. The posteriors come from separate shared
and private encoders (``encoder_layout="separate"``) or, as in the authors' code, from one
encoder per modality whose output is split into four chunks (``"trunk"``)."""

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
    augment_of,
    one_stage,
    reparameterize,
    require_modalities,
    uses_trunk,
)
from disentangled_ssl.nn.encoders import MLP
from disentangled_ssl.nn.heads import GaussianEncoder, GaussianTrunk
from disentangled_ssl.nn.modalities import Modality, Vector
from disentangled_ssl.nn.model import MultimodalModel


class DMVAEObjective(Objective):
    """DMVAE: Gaussian encoders in ``model.shared`` / ``model.specific`` (with
    ``encoder_layout="trunk"``, views of the trunks ``model.extra["trunks"][i]``, each run
    once per batch), decoders ``model.extra["decoders"][i]`` reading ``[private_i, shared]``;
    one augmentation per modality is encoded and reconstructed."""


    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        require_modalities("dmvae", len(xs))
        targets = [augment_of(self.augment, i)(x) for i, x in enumerate(xs)]
        if "trunks" in self.model.extra:
            both = [self.model.extra["trunks"][i].posteriors(x) for i, x in enumerate(targets)]
            shared, private = [b["shared"] for b in both], [b["private"] for b in both]
        else:
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
        for i in range(2):
            if getattr(decoders[i], "masked", False):
                # A padded sequence: reconstruct the values of its real steps only.
                mask = targets[i][..., -1:]
                targets[i] = targets[i][..., :-1] * mask
                recon[i], cross[i] = recon[i] * mask, cross[i] * mask
        return self.loss(targets, recon, cross, private, shared, joint)


def _posterior(kind: Modality, custom: nn.Module | None, dim: int, shape: ModelShape
               ) -> GaussianEncoder:
    """A Gaussian posterior of ``dim`` latents: an MLP for vectors, the kind's encoder for
    other kinds, a custom encoder (B, ...) -> (B, dim) followed by a linear map to the
    means and log-variances."""
    if custom is not None:
        return GaussianEncoder.around(nn.Sequential(custom, nn.Linear(dim, 2 * dim)), dim)
    if isinstance(kind, Vector):
        return GaussianEncoder(kind.n_features, dim, shape.hidden_dim, shape.n_hidden_layers)
    return GaussianEncoder.around(kind.shared_encoder(2 * dim, shape.sizes), dim)


def _decoder(kind: Modality, latent: int, shape: ModelShape) -> nn.Module:
    if isinstance(kind, Vector):
        return MLP(latent, kind.n_features, shape.hidden_dim, shape.n_hidden_layers)
    return kind.decoder(latent, shape.sizes, "dmvae")


def _trunk_model(shape: ModelShape) -> MultimodalModel:
    """One encoder per modality, the kind's default network (for vectors the MLP) whose last
    layer gives ``2 · (specific_dim + shared_dim)`` numbers: private means, private
    log-variances, shared means, shared log-variances."""
    kinds, p, s = shape.kinds, shape.specific_dim, shape.shared_dim
    trunks = [GaussianTrunk(k.shared_encoder(2 * (p + s), shape.sizes),
                            {"private": p, "shared": s}) for k in kinds]
    decoders = [_decoder(k, p + s, shape) for k in kinds]
    return MultimodalModel(
        shape.in_dims, s, p, shape.hidden_dim, shape.n_hidden_layers,
        shared_encoders=[t.head("shared") for t in trunks],
        specific_encoders=[t.head("private") for t in trunks],
        condition_specific_on_shared=False,
        extra_modules={"trunks": nn.ModuleList(trunks), "decoders": nn.ModuleList(decoders)},
    )


def build_model(shape: ModelShape) -> MultimodalModel:
    """Gaussian shared and private encoders per modality (or one trunk per modality with
    ``encoder_layout="trunk"``), and decoders from ``[private, shared]`` back to the modality
    (vectors and sequences; other kinds are refused by name). Custom encoders
    (B, ...) -> (B, dim) get a linear Gaussian head."""
    require_modalities("dmvae", len(shape.in_dims))
    if uses_trunk(shape):
        return _trunk_model(shape)
    kinds = shape.kinds
    shared_custom = shape.shared_encoders or [None] * len(kinds)
    specific_custom = shape.specific_encoders or [None] * len(kinds)
    # Built in this order (shared, private, decoders): the initialisation draws' order.
    shared = [_posterior(k, c, shape.shared_dim, shape) for k, c in zip(kinds, shared_custom)]
    private = [_posterior(k, c, shape.specific_dim, shape)
               for k, c in zip(kinds, specific_custom)]
    decoders = [_decoder(k, shape.specific_dim + shape.shared_dim, shape) for k in kinds]
    return MultimodalModel(
        shape.in_dims, shape.shared_dim, shape.specific_dim, shape.hidden_dim,
        shape.n_hidden_layers, shared_encoders=shared, specific_encoders=private,
        condition_specific_on_shared=False,
        extra_modules={"decoders": nn.ModuleList(decoders)},
    )


def build_stages(model: MultimodalModel, augment: nn.Module, settings: MethodSettings
                 ) -> list[Stage]:
    return one_stage("dmvae", DMVAEObjective(model, augment, DMVAELoss(settings.alpha)),
                     model, settings)


SPEC = MethodSpec(
    name="dmvae", title="DMVAE", citation="Lee & Pavlovic, CVPR Workshops 2021",
    dials=("alpha",), default_alpha=1e-5, has_specific=True, build_model=build_model,
    build_stages=build_stages, stage_names=("dmvae",), sweep=("alpha", (1e-6, 1e-5, 1e-4)),
    custom_encoders=True, encoder_layouts=("separate", "trunk"),
)
