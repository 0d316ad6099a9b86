"""FactorCL (Liang et al., NeurIPS 2023), self-supervised: shared and unique encoders (or,
with ``encoder_layout="trunk"`` as in the authors' code, one backbone per modality with a
shared and a unique linear head), with InfoNCE lower bounds and CLUB upper bounds estimated by
cosine critics."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from disentangled_ssl.losses.factorcl import FactorCLLoss
from disentangled_ssl.methods.base import (
    MethodSettings,
    MethodSpec,
    ModelShape,
    Objective,
    Stage,
    augment_of,
    halves,
    one_stage,
    require_modalities,
    two_views,
    uses_trunk,
)
from disentangled_ssl.nn.encoders import MLP
from disentangled_ssl.nn.heads import CosineCritic, Trunk
from disentangled_ssl.nn.modalities import Modality, Vector
from disentangled_ssl.nn.model import MultimodalModel


def _frozen_call(critic: nn.Module, a: Tensor, b: Tensor) -> Tensor:
    """Critic scores with the critic's parameters detached: gradients reach the inputs (the
    encoders) but not the critic."""
    params = {k: p.detach() for k, p in critic.named_parameters()}
    return functional_call(critic, params, (a, b))


class FactorCLObjective(Objective):
    """FactorCL: shared encoders ``model.shared``, unique encoders ``model.specific`` (reading
    ``x_i`` alone; with ``encoder_layout="trunk"``, the heads of the trunks
    ``model.extra["trunks"][i]``, each run once per batch), and the critics in
    ``model.extra``: ``shared_nce``, ``shared_club`` (conditional), ``unique_self`` (one per
    modality), ``unique_club`` and ``unique_cond``. Two augmented views per modality; the
    second plays FactorCL's X_i'."""


    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        require_modalities("factorcl", len(xs))
        batch = xs[0].shape[0]
        views = [two_views(augment_of(self.augment, i), x) for i, x in enumerate(xs)]
        if "trunks" in self.model.extra:
            codes = [self.model.extra["trunks"][i](v) for i, v in enumerate(views)]
            s = [halves(c["shared"], batch) for c in codes]
            u = [halves(c["unique"], batch) for c in codes]
        else:
            s = [halves(self.model.shared_embedding(i, v), batch) for i, v in enumerate(views)]
            u = [halves(self.model.specific_embedding(i, v), batch)
                 for i, v in enumerate(views)]
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


def _critics(c: int, u: int, n_modalities: int) -> dict[str, nn.Module]:
    return {
        "shared_nce": CosineCritic(c, c),
        "shared_club": CosineCritic(2 * c, 2 * c),
        "unique_self": nn.ModuleList([CosineCritic(u, u) for _ in range(n_modalities)]),
        "unique_club": CosineCritic(u, u),
        "unique_cond": CosineCritic(2 * u, 2 * u),
    }


def _trunk(kind: Modality, shape: ModelShape) -> Trunk:
    """One backbone with a linear shared head and a linear unique head. Vectors: the hidden
    layers of the separate layout's MLP (Linear + ReLU each, weights N(0, 0.01²); none when
    ``n_hidden_layers=0``) and heads initialised like its output layer, so each code's path
    is that MLP; other kinds: the kind's ``backbone`` and PyTorch-initialised heads."""
    h, layers = shape.hidden_dim, shape.n_hidden_layers
    backbone: nn.Module
    if isinstance(kind, Vector):
        backbone, width = nn.Identity(), kind.n_features
        if layers > 0:
            backbone, width = nn.Sequential(MLP(kind.n_features, h, h, layers - 1), nn.ReLU()), h
        heads = {"shared": MLP(width, shape.shared_dim, h, 0),
                 "unique": MLP(width, shape.specific_dim, h, 0)}
    else:
        backbone, width = kind.backbone(shape.sizes)
        heads = {"shared": nn.Linear(width, shape.shared_dim),
                 "unique": nn.Linear(width, shape.specific_dim)}
    return Trunk(backbone, heads)


def build_model(shape: ModelShape) -> MultimodalModel:
    """Shared and unique encoders of each modality's kind (or custom; unique encoders read
    ``x_i`` alone), or with ``encoder_layout="trunk"`` one backbone per modality with a
    shared and a unique head, plus FactorCL's critics."""
    require_modalities("factorcl", len(shape.in_dims))
    h, layers = shape.hidden_dim, shape.n_hidden_layers
    c, u = shape.shared_dim, shape.specific_dim
    kinds = shape.kinds
    if uses_trunk(shape):
        trunks = [_trunk(k, shape) for k in kinds]
        return MultimodalModel(
            shape.in_dims, c, u, h, layers,
            shared_encoders=[t.head("shared") for t in trunks],
            specific_encoders=[t.head("unique") for t in trunks],
            condition_specific_on_shared=False,
            extra_modules={"trunks": nn.ModuleList(trunks), **_critics(c, u, len(kinds))},
        )
    # Built in the order of the original MLP-only build (unique encoders, critics, shared
    # encoders), so that the initialisation draws are unchanged.
    unique = (list(shape.specific_encoders) if shape.specific_encoders is not None
              else [MLP(k.n_features, u, h, layers) if isinstance(k, Vector)
                    else k.shared_encoder(u, shape.sizes) for k in kinds])
    critics = _critics(c, u, len(shape.in_dims))
    shared = (list(shape.shared_encoders) if shape.shared_encoders is not None
              else [k.shared_encoder(c, shape.sizes) for k in kinds])
    return MultimodalModel(
        shape.in_dims, c, u, h, layers, shared_encoders=shared, specific_encoders=unique,
        condition_specific_on_shared=False, extra_modules=critics,
    )


def build_stages(model: MultimodalModel, augment: nn.Module, settings: MethodSettings
                 ) -> list[Stage]:
    return one_stage("factorcl", FactorCLObjective(model, augment, FactorCLLoss()),
                     model, settings)


SPEC = MethodSpec(
    name="factorcl", title="FactorCL", citation="Liang et al., NeurIPS 2023", dials=(),
    default_alpha=None, has_specific=True, build_model=build_model, build_stages=build_stages,
    stage_names=("factorcl",), custom_encoders=True, encoder_layouts=("separate", "trunk"),
)
