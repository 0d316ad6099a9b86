"""SimCLR (Chen et al., ICML 2020) per modality: two augmentations through the modality's only
encoder, InfoNCE between them, summed over modalities. Shared codes only."""

from __future__ import annotations

from torch import Tensor, nn

from disentangled_ssl.losses.simclr import SimCLRLoss
from disentangled_ssl.methods.base import (
    MethodSettings,
    MethodSpec,
    Objective,
    Stage,
    augment_of,
    halves,
    one_stage,
    shared_only_model,
    two_views,
)
from disentangled_ssl.nn.model import MultimodalModel


class SimCLRObjective(Objective):
    """SimCLR per modality: two augmentations through the modality's (only) encoder."""


    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        batch = xs[0].shape[0]
        views = [halves(self.model.shared_embedding(
            i, two_views(augment_of(self.augment, i), x)), batch) for i, x in enumerate(xs)]
        return self.loss(views)


def build_stages(model: MultimodalModel, augment: nn.Module, settings: MethodSettings
                 ) -> list[Stage]:
    return one_stage("simclr",
                     SimCLRObjective(model, augment, SimCLRLoss(settings.temperature)),
                     model, settings)


SPEC = MethodSpec(
    name="simclr", title="SimCLR", citation="Chen et al., ICML 2020", dials=(),
    default_alpha=None, has_specific=False, build_model=shared_only_model,
    build_stages=build_stages, stage_names=("simclr",), custom_encoders=True,
)
