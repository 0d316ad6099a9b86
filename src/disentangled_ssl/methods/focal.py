"""FOCAL (Liu et al., NeurIPS 2023): deterministic shared and specific encoders (specific fed
``[x_i, shared_i]``), two augmented views, trained together with an orthogonality between
paired specific and shared vectors."""

from __future__ import annotations

from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.losses.focal import FOCALLoss
from disentangled_ssl.methods.base import (
    MethodSettings,
    MethodSpec,
    ModelShape,
    Objective,
    Stage,
    augment_of,
    halves,
    one_stage,
    standard_model,
    two_views,
)
from disentangled_ssl.nn.model import MultimodalModel


class FOCALObjective(Objective):
    """FOCAL: two views per modality through the shared and specific encoders."""


    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        batch = xs[0].shape[0]
        views = [two_views(augment_of(self.augment, i), x) for i, x in enumerate(xs)]
        codes = [self.model.shared_embedding(i, v) for i, v in enumerate(views)]
        specific = [self.model.specific_embedding(i, v, c)
                    for i, (v, c) in enumerate(zip(views, codes))]
        return self.loss([halves(c, batch) for c in codes],
                         [halves(s, batch) for s in specific])


def build_model(shape: ModelShape) -> MultimodalModel:
    """As JointOpt; FOCAL's orthogonality compares specific and shared vectors entrywise."""
    if shape.shared_dim != shape.specific_dim:
        raise DSSLError(
            f"method 'focal' needs specific_dim == shared_dim (its orthogonality term is the "
            f"cosine between paired specific and shared vectors); got specific_dim="
            f"{shape.specific_dim}, shared_dim={shape.shared_dim}"
        )
    return standard_model(shape)


def build_stages(model: MultimodalModel, augment: nn.Module, settings: MethodSettings
                 ) -> list[Stage]:
    loss = FOCALLoss(settings.alpha, settings.lam, settings.temperature)
    return one_stage("focal", FOCALObjective(model, augment, loss), model, settings)


SPEC = MethodSpec(
    name="focal", title="FOCAL", citation="Liu et al., NeurIPS 2023", dials=("alpha", "lam"),
    default_alpha=1.0, has_specific=True, build_model=build_model, build_stages=build_stages,
    stage_names=("focal",), sweep=("lam", (0.1, 1.0, 10.0)), custom_encoders=True,
)
