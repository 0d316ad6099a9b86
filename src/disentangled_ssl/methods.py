"""Methods as stages: name -> the objectives the one training loop runs.

DisentangledSSL is two stages: ``shared`` (step 1: InfoNCE between vMF samples + β·alignment)
then ``specific`` (step 2, shared encoders frozen: self-contrastive InfoNCE + λ·orthogonality).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from disentangled_ssl.data.augment import VectorAugment
from disentangled_ssl.losses.disentangled import SharedLoss, SpecificLoss
from disentangled_ssl.models import MultimodalModel
from disentangled_ssl.nn.vmf import normalized_vmf_sample, vmf_noise
from disentangled_ssl.training.loop import Schedule, Stage


def augment_each(augment: nn.Module, xs: Sequence[Tensor]) -> list[Tensor]:
    """One augmented view per modality. :class:`VectorAugment` treats rows independently, so
    same-shaped modalities are augmented in one call (fewer, larger kernels); other modules
    are called once per modality."""
    if (isinstance(augment, VectorAugment) and len(xs) > 1
            and all(x.shape[1:] == xs[0].shape[1:] and x.dtype == xs[0].dtype for x in xs)):
        return list(augment(torch.cat(list(xs))).split([x.shape[0] for x in xs]))
    return [augment(x) for x in xs]


def two_views(augment: nn.Module, x: Tensor) -> Tensor:
    """(B, ...) -> (2B, ...): two independent augmentations of every row, stacked (one call
    on the duplicated batch for the row-wise :class:`VectorAugment`)."""
    if isinstance(augment, VectorAugment):
        return augment(torch.cat([x, x]))
    return torch.cat([augment(x), augment(x)])


def posterior_samples(embeddings: Tensor, kappa: float | None) -> Tensor:
    """(..., n, D) encoder outputs -> (..., n, D) unit vectors: the L2-normalised vMF sample
    around each row's direction (concentration ``kappa``), or the direction itself when
    ``kappa`` is None. One noise draw serves all rows and all leading (ensemble) dimensions;
    the noise does not depend on the directions."""
    if kappa is None:
        return F.normalize(embeddings, dim=-1)
    n, dim = embeddings.shape[-2], embeddings.shape[-1]
    w, v = vmf_noise(kappa, dim, n, torch.promote_types(embeddings.dtype, torch.float32),
                     embeddings.device)
    return normalized_vmf_sample(embeddings, w, v)


class SharedObjective(nn.Module):
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
        super().__init__()
        self.model, self.augment, self.loss = model, augment, loss
        self.kappa = kappa

    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        views = augment_each(self.augment, xs)
        embeddings = [enc(v) for enc, v in zip(self.model.shared, views)]
        z = posterior_samples(torch.cat(embeddings), self.kappa).split(
            [e.shape[0] for e in embeddings])
        pairs = [(i, j) for i in range(len(xs)) for j in range(i + 1, len(xs))]
        out: dict[str, Tensor] = {}
        for i, j in pairs:
            for key, value in self.loss(z[i], z[j], embeddings[i], embeddings[j]).items():
                out[key] = out[key] + value / len(pairs) if key in out else value / len(pairs)
        return out


class SpecificObjective(nn.Module):
    """Step-2 objective: two augmentations per modality, frozen shared codes, trained specific
    encoders fed ``[x_i, shared_i(x_i)]``."""

    def __init__(self, model: MultimodalModel, augment: nn.Module, loss: SpecificLoss) -> None:
        super().__init__()
        self.model, self.augment, self.loss = model, augment, loss

    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        specific, shared = [], []
        for i, x in enumerate(xs):
            batch = x.shape[0]
            # Both views go through each encoder in one call.
            views = two_views(self.augment, x)
            with torch.no_grad():
                codes = self.model.shared_embedding(i, views)
            spec = self.model.specific_embedding(i, views, codes)
            specific.append((spec[:batch], spec[batch:]))
            shared.append((codes[:batch], codes[batch:]))
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


def disentangled_ssl_stages(
    model: MultimodalModel,
    augment: nn.Module,
    *,
    beta: float,
    lam: float,
    kappa: float,
    temperature: float,
    shared_epochs: int,
    specific_epochs: int,
    beta_schedule: Callable[[int], float] | None = None,
) -> list[Stage]:
    """The two DisentangledSSL stages (either may have 0 epochs and is then skipped)."""
    shared = Stage(
        name="shared",
        objective=SharedObjective(model, augment, SharedLoss(beta, temperature), kappa),
        trainable=[model.shared],
        epochs=shared_epochs,
        dials={"beta": beta_schedule} if beta_schedule is not None else {},
    )
    specific = Stage(
        name="specific",
        objective=SpecificObjective(model, augment, SpecificLoss(lam, temperature)),
        trainable=[model.specific],
        frozen=[model.shared],
        epochs=specific_epochs,
    )
    return [s for s in (shared, specific) if s.epochs > 0]
