"""DisentangledSSL (Wang et al., "An Information Criterion for Controlled Disentanglement of
Multimodal Data", ICLR 2025, arXiv 2410.23996): two stages.

``shared`` (step 1) trains one shared encoder per modality: InfoNCE between vMF samples of the
modalities' codes + β·alignment. ``specific`` (step 2) freezes them and trains one specific
encoder per modality, fed ``[x_i, shared_i(x_i)]``: self-contrastive InfoNCE between two
augmentations of ``[specific_i, shared_j]`` + λ·orthogonality.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from disentangled_ssl.losses.disentangled import SharedLoss, SpecificLoss
from disentangled_ssl.methods.base import (
    MethodSettings,
    MethodSpec,
    Objective,
    Schedule,
    Stage,
    augment_each,
    augment_of,
    halves,
    pair_average,
    posterior_samples,
    standard_model,
    two_views,
)
from disentangled_ssl.nn.model import MultimodalModel

PAPER = ("Wang et al., 'An Information Criterion for Controlled Disentanglement of "
         "Multimodal Data', ICLR 2025")


class SharedObjective(Objective):
    """Step-1 objective over M modalities (the loss is averaged over all modality pairs).

    Args:
        model: the encoders; ``model.shared`` is trained.
        augment: batch augmentation module.
        loss: :class:`SharedLoss` holding β and the temperature.
        kappa: vMF concentration of the posterior around the mean direction; ``None`` uses the
            deterministic normalised embedding (CLIP).
    """

    def __init__(
        self, model: MultimodalModel, augment: nn.Module, loss: SharedLoss, kappa: float | None
    ) -> None:
        super().__init__(model, augment, loss)
        self.kappa = kappa

    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        views = augment_each(self.augment, xs)
        embeddings = [enc(v) for enc, v in zip(self.model.shared, views)]
        z = posterior_samples(torch.cat(embeddings), self.kappa).split(
            [e.shape[0] for e in embeddings])
        return pair_average(len(xs), lambda i, j: self.loss(z[i], z[j], embeddings[i],
                                                             embeddings[j]))


class SpecificObjective(Objective):
    """Step-2 objective: two augmentations per modality, frozen shared codes, trained specific
    encoders fed ``[x_i, shared_i(x_i)]``."""


    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        specific, shared = [], []
        for i, x in enumerate(xs):
            batch = x.shape[0]
            # Both views through each encoder in one call.
            views = two_views(augment_of(self.augment, i), x)
            with torch.no_grad():
                codes = self.model.shared_embedding(i, views)
            spec = self.model.specific_embedding(i, views, codes)
            specific.append(halves(spec, batch))
            shared.append(halves(codes, batch))
        return self.loss(specific, shared)


def exponential_schedule(start: float, end: float, steps: int) -> Schedule:
    """Log-linear ramp from ``start`` to ``end`` over ``steps`` steps, then constant (the
    authors' β/λ warm-up). ``start`` and ``end`` must be positive."""

    def schedule(step: int) -> float:
        if step >= steps:
            return end
        frac = step / steps
        return float(start * (end / start) ** frac)

    return schedule


def build_stages(model: MultimodalModel, augment: nn.Module, settings: MethodSettings
                 ) -> list[Stage]:
    """The two DisentangledSSL stages, ``shared`` then ``specific``."""
    beta, warmup = float(settings.beta), int(settings.beta_warmup_steps)
    dials = ({"beta": exponential_schedule(beta / 1000.0, beta, warmup)}
             if warmup > 0 and beta > 0 else {})
    shared_loss = SharedLoss(beta, settings.temperature, gather=settings.gather)
    specific_loss = SpecificLoss(settings.lam, settings.temperature, gather=settings.gather)
    return [
        Stage(name="shared",
              objective=SharedObjective(model, augment, shared_loss, settings.kappa),
              trainable=[model.shared], epochs=settings.shared_epochs, dials=dials),
        Stage(name="specific", objective=SpecificObjective(model, augment, specific_loss),
              trainable=[model.specific], frozen=[model.shared],
              epochs=settings.specific_epochs),
    ]


SPEC = MethodSpec(
    name="disentangled_ssl", title="DisentangledSSL", citation=PAPER, dials=("beta", "lam"),
    default_alpha=None, has_specific=True, build_model=standard_model, build_stages=build_stages,
    stage_names=("shared", "specific"), reinit={"specific": "specific"},
    sweep=("lam", (0.1, 1.0, 10.0)), custom_encoders=True, supports_gather=True,
)
