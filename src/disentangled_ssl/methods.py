"""Methods as stages: name -> the objectives the one training loop runs.

DisentangledSSL is two stages: ``shared`` (step 1: InfoNCE between vMF samples + β·alignment)
then ``specific`` (step 2, shared encoders frozen: self-contrastive InfoNCE + λ·orthogonality).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from disentangled_ssl.losses.disentangled import SharedLoss, SpecificLoss
from disentangled_ssl.models import MultimodalModel
from disentangled_ssl.nn.vmf import VonMisesFisher
from disentangled_ssl.training.loop import Schedule, Stage


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
        embeddings = [enc(self.augment(x)) for enc, x in zip(self.model.shared, xs)]
        directions = F.normalize(torch.cat(embeddings), dim=-1)
        if self.kappa is None:
            samples = directions
        else:
            # One vectorised vMF draw for all modalities at once.
            vmf = VonMisesFisher(directions, self.kappa, validate_args=False)
            samples = F.normalize(vmf.rsample(), dim=-1)
        z = samples.split([e.shape[0] for e in embeddings])
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
            # Two independent augmentations of every row, drawn in one call (rows are
            # augmented independently): views[:B] and views[B:].
            views = self.augment(torch.cat([x, x]))
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
