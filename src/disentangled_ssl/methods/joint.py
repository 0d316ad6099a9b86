"""JointOpt, the joint-optimisation baseline of the DisentangledSSL paper: DisentangledSSL's
architecture (vMF shared heads, specific encoders fed ``[x_i, shared_i(x_i)]``) with both
objectives in one stage, so gradients reach the shared encoders from every term."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from disentangled_ssl.losses.joint import JointOptLoss
from disentangled_ssl.methods.base import (
    MethodSettings,
    MethodSpec,
    Objective,
    Stage,
    augment_of,
    halves,
    one_stage,
    posterior_samples,
    standard_model,
    two_views,
)
from disentangled_ssl.methods.dssl import PAPER
from disentangled_ssl.nn.model import MultimodalModel


class JointOptObjective(Objective):
    """JointOpt: two views per modality; vMF samples of the shared codes for the shared
    InfoNCE, the specific codes for the self-contrastive term and the orthogonality."""

    def __init__(self, model: MultimodalModel, augment: nn.Module, loss: JointOptLoss,
                 kappa: float) -> None:
        super().__init__(model, augment, loss)
        self.kappa = float(kappa)

    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        batch = xs[0].shape[0]
        views = [two_views(augment_of(self.augment, i), x) for i, x in enumerate(xs)]
        codes = [self.model.shared_embedding(i, v) for i, v in enumerate(views)]
        # One vMF draw for every modality and view, as DisentangledSSL's step 1 draws it.
        samples = posterior_samples(torch.cat(codes), self.kappa).split(
            [c.shape[0] for c in codes])
        specific = [self.model.specific_embedding(i, v, c)
                    for i, (v, c) in enumerate(zip(views, codes))]
        return self.loss([halves(s, batch) for s in samples],
                         [halves(c, batch) for c in codes],
                         [halves(s, batch) for s in specific])


def build_stages(model: MultimodalModel, augment: nn.Module, settings: MethodSettings
                 ) -> list[Stage]:
    loss = JointOptLoss(settings.alpha, settings.lam, settings.temperature)
    return one_stage("joint", JointOptObjective(model, augment, loss, settings.kappa),
                     model, settings)


SPEC = MethodSpec(
    name="joint", title="JointOpt", citation=f"the joint-optimisation baseline of {PAPER}",
    dials=("alpha", "lam"), default_alpha=1.0, has_specific=True, build_model=standard_model,
    build_stages=build_stages, stage_names=("joint",), sweep=("lam", (0.1, 1.0, 10.0)),
    custom_encoders=True,
)
