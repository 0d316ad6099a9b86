"""CLIP (Radford et al., ICML 2021): InfoNCE between the modalities' deterministic codes, one
augmentation per modality, averaged over modality pairs. Shared codes only."""

from __future__ import annotations

from torch import Tensor, nn

from disentangled_ssl.losses.clip import CLIPLoss
from disentangled_ssl.methods.base import (
    MethodSettings,
    MethodSpec,
    Objective,
    Stage,
    augment_of,
    one_stage,
    pair_average,
    shared_only_model,
)
from disentangled_ssl.nn.model import MultimodalModel


class CLIPObjective(Objective):
    """CLIP on one augmentation per modality, averaged over modality pairs."""


    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        codes = [self.model.shared_embedding(i, augment_of(self.augment, i)(x))
                 for i, x in enumerate(xs)]
        return pair_average(len(xs), lambda i, j: self.loss(codes[i], codes[j]))


def build_stages(model: MultimodalModel, augment: nn.Module, settings: MethodSettings
                 ) -> list[Stage]:
    return one_stage("clip", CLIPObjective(model, augment, CLIPLoss(settings.temperature)),
                     model, settings)


SPEC = MethodSpec(
    name="clip", title="CLIP", citation="Radford et al., ICML 2021", dials=(),
    default_alpha=None, has_specific=False, build_model=shared_only_model,
    build_stages=build_stages, stage_names=("clip",), custom_encoders=True,
)
