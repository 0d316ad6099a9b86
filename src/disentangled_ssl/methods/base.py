"""What every method is made of, and the helpers their objectives share.

A method is a :class:`MethodSpec`: a model builder (which encoders, heads, decoders or critics
it needs), a stage builder (which objective each stage optimises, which modules it trains and
freezes) and the dials it reads. The one training loop
(:func:`~disentangled_ssl.training.train_stage`) runs any :class:`Stage`.

The helpers here are the only copies of what several objectives do: two augmented views of a
batch (:func:`two_views`), one view per modality (:func:`augment_each`), vMF posterior samples
(:func:`posterior_samples`), the average of a pairwise loss over modality pairs
(:func:`pair_average`), Gaussian reparameterisation and view halves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.nn.modalities import EncoderSizes, Modality, Vector
from disentangled_ssl.nn.model import MultimodalModel
from disentangled_ssl.nn.vmf import normalized_vmf_sample, vmf_noise

Schedule = Callable[[int], float]
Views = tuple[Tensor, Tensor]


@dataclass
class Stage:
    """One optimisation stage.

    Attributes:
        name: shown in progress bars and used as the checkpoint/history key.
        objective: module with ``forward(*batch) -> dict[str, Tensor]`` (must contain "loss").
        trainable: modules whose parameters Adam updates.
        frozen: modules put in eval mode with gradients off for the stage.
        epochs: passes over the data.
        dials: attribute name on ``objective.loss`` -> schedule(global step) giving its value
            (e.g. a β warm-up); empty for constant dials.
    """

    name: str
    objective: nn.Module
    trainable: Sequence[nn.Module]
    epochs: int
    frozen: Sequence[nn.Module] = ()
    dials: dict[str, Schedule] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelShape:
    """Sizes of a method's model: features per modality, the default encoders' shape, and
    optional custom encoders (already copied; methods that cannot use them refuse them).

    Attributes:
        in_dims: flattened input features per modality.
        modalities: the resolved kind of each modality (None: vectors of ``in_dims``); the
            default encoders and decoders are the kinds'.
        shared_dim, specific_dim: embedding sizes.
        hidden_dim, n_hidden_layers: the default MLPs' width and depth.
        shared_encoders, specific_encoders: one custom module per modality, or None.
        condition_specific_on_shared: the specific encoder reads ``[x_i, shared_i(x_i)]``.
        encoder_layout: "separate" (one shared and one specific encoder per modality) or
            "trunk" (one network per modality whose output feeds both codes; the methods
            whose ``MethodSpec.encoder_layouts`` list it).
    """

    in_dims: Sequence[int]
    shared_dim: int = 100
    specific_dim: int = 100
    hidden_dim: int = 512
    n_hidden_layers: int = 1
    shared_encoders: Sequence[nn.Module] | None = None
    specific_encoders: Sequence[nn.Module] | None = None
    condition_specific_on_shared: bool = True
    modalities: Sequence[Modality] | None = None
    encoder_layout: str = "separate"

    @property
    def kinds(self) -> list[Modality]:
        """One resolved kind per modality."""
        if self.modalities is not None:
            return list(self.modalities)
        return [Vector(features=int(d)) for d in self.in_dims]

    @property
    def sizes(self) -> EncoderSizes:
        return EncoderSizes(self.hidden_dim, self.n_hidden_layers)


@dataclass(frozen=True)
class MethodSettings:
    """The dials and epochs of a run; each method reads the ones it uses.

    Attributes:
        beta, lam: DisentangledSSL's dials; ``lam`` is also the orthogonality weight of
            JointOpt and FOCAL.
        alpha: the baselines' ``a`` (JointOpt/FOCAL specific-term weight, DMVAE KL weight).
        kappa: vMF concentration (DisentangledSSL step 1, JointOpt).
        temperature: InfoNCE temperature.
        epochs: epochs of a one-stage method.
        shared_epochs, specific_epochs: epochs of a two-step method's stages.
        beta_warmup_steps: > 0 ramps β log-linearly from β/1000 over this many steps.
        gather: data-parallel training: the losses take negatives and cross-correlations from
            every process (a constructor argument of the losses that support it).
    """

    beta: float = 1.0
    lam: float = 1.0
    alpha: float = 1.0
    kappa: float = 1000.0
    temperature: float = 0.07
    epochs: int = 50
    shared_epochs: int = 50
    specific_epochs: int = 30
    beta_warmup_steps: int = 0
    gather: bool = False


#: The encoder layouts: one encoder per code ("separate", every method), or one network per
#: modality with a head per code ("trunk", as the DMVAE and FactorCL authors' codes build).
ENCODER_LAYOUTS = ("separate", "trunk")


def check_encoder_layout(layout: object) -> str:
    """``layout`` if it is one of :data:`ENCODER_LAYOUTS`, else a DSSLError."""
    if not isinstance(layout, str) or layout not in ENCODER_LAYOUTS:
        raise DSSLError(f"encoder_layout must be 'separate' or 'trunk', got {layout!r}")
    return layout


def check_trunk_encoders(layout: str, shared_encoders: object, specific_encoders: object
                         ) -> None:
    """A trunk is built from the modality kinds: custom encoders need the separate layout."""
    if layout == "trunk" and (shared_encoders is not None or specific_encoders is not None):
        raise DSSLError("custom encoders need encoder_layout='separate': encoder_layout="
                        "'trunk' builds one network per modality from its kind")


def uses_trunk(shape: ModelShape) -> bool:
    """Whether ``shape`` asks for one trunk per modality (``encoder_layout="trunk"``; custom
    encoders are refused with it)."""
    layout = check_encoder_layout(shape.encoder_layout)
    check_trunk_encoders(layout, shape.shared_encoders, shape.specific_encoders)
    return layout == "trunk"


ModelBuilder = Callable[[ModelShape], MultimodalModel]
StageBuilder = Callable[[MultimodalModel, nn.Module, MethodSettings], list[Stage]]


@dataclass(frozen=True)
class MethodSpec:
    """A method: its model, its stages and its dials.

    Attributes:
        name: the name users pass (``DisentangledSSL(method=name)``, ``dssl compare``).
        title: display name.
        citation: the paper.
        dials: estimator parameters the method's objective reads.
        default_alpha: ``alpha`` used when the estimator's ``alpha`` is None (None: no alpha).
        has_specific: whether it learns specific representations.
        build_model: ModelShape -> MultimodalModel.
        build_stages: (model, augment, MethodSettings) -> every stage, in training order
            (a stage with 0 epochs is skipped by ``fit``).
        stage_names: the names of those stages, in order.
        reinit: stage name -> the model attribute (e.g. "specific") freshly initialised when
            that stage is trained again on a fitted model (``fit_specific``); stages absent
            here start from a fresh model.
        sweep: the dial ``dssl compare`` sweeps by default and its default values (None: a
            single setting).
        custom_encoders: whether ``shared_encoders=``/``specific_encoders=`` are accepted.
        supports_gather: whether its losses can run data-parallel (``gather``).
        encoder_layouts: the ``encoder_layout`` values its model builder honours
            (:data:`ENCODER_LAYOUTS`).
    """

    name: str
    title: str
    citation: str
    dials: tuple[str, ...]
    default_alpha: float | None
    has_specific: bool
    build_model: ModelBuilder
    build_stages: StageBuilder
    stage_names: tuple[str, ...]
    reinit: Mapping[str, str] = field(default_factory=dict)
    sweep: tuple[str, tuple[float, ...]] | None = None
    custom_encoders: bool = False
    supports_gather: bool = False
    encoder_layouts: tuple[str, ...] = ("separate",)

    @property
    def two_step(self) -> bool:
        """Shared encoders first, then specific encoders on top of them (DisentangledSSL)."""
        return len(self.stage_names) == 2 and bool(self.reinit)


class Objective(nn.Module):
    """A stage's objective: ``forward(*batch)`` returns the named loss terms (with ``"loss"``)
    that the loop optimises.

    Args:
        model: the encoders (and any heads, decoders, critics) it reads.
        augment: the batch augmentation: one module for every modality, or
            :class:`Augmentations` (one per modality).
        loss: the method's loss module (:mod:`disentangled_ssl.losses`); the loop sets dial
            schedules on it.
    """

    def __init__(self, model: MultimodalModel, augment: nn.Module, loss: nn.Module) -> None:
        super().__init__()
        self.model, self.augment, self.loss = model, augment, loss


class Augmentations(nn.ModuleList):
    """One augmentation module per modality (``augmentations[i]`` augments modality i). The
    same module object may serve several modalities (the estimator shares one vector
    augmentation between all vector modalities, so they are augmented in one call)."""


def augment_of(augment: nn.Module, i: int) -> nn.Module:
    """The augmentation of modality ``i``."""
    return augment[i] if isinstance(augment, Augmentations) else augment


# ---------------------------------------------------------------------------- helpers
def _rowwise(augment: nn.Module) -> bool:
    """Whether ``augment`` treats rows independently (then one call may serve many batches)."""
    return bool(getattr(augment, "rowwise", False))


def augment_each(augment: nn.Module, xs: Sequence[Tensor]) -> list[Tensor]:
    """One augmented view per modality. When every modality has the same row-wise
    augmentation (``augment.rowwise``) and the same row shape, one call augments them all
    (fewer, larger kernels); otherwise each modality's own augmentation is called."""
    augs = [augment_of(augment, i) for i in range(len(xs))]
    if (_rowwise(augs[0]) and len(xs) > 1 and all(a is augs[0] for a in augs)
            and all(x.shape[1:] == xs[0].shape[1:] and x.dtype == xs[0].dtype for x in xs)):
        return list(augs[0](torch.cat(list(xs))).split([x.shape[0] for x in xs]))
    return [a(x) for a, x in zip(augs, xs)]


def two_views(augment: nn.Module, x: Tensor) -> Tensor:
    """(B, ...) -> (2B, ...): two independent augmentations of every row, stacked (one call
    on the duplicated batch for a row-wise augmentation). Each view is augmented once from
    ``x`` (the authors' code augments the second view twice, ``aug(aug(x))``)."""
    if _rowwise(augment):
        return augment(torch.cat([x, x]))
    return torch.cat([augment(x), augment(x)])


def halves(t: Tensor, batch: int) -> Views:
    """(2B, ...) -> the two (B, ...) views."""
    return t[:batch], t[batch:]


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


def modality_pairs(n: int) -> list[tuple[int, int]]:
    """All (i, j) with i < j < n."""
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def pair_average(n: int, terms: Callable[[int, int], Mapping[str, Tensor]]
                 ) -> dict[str, Tensor]:
    """The mean over the modality pairs (i < j) of the named terms ``terms(i, j)``."""
    pairs = modality_pairs(n)
    out: dict[str, Tensor] = {}
    for i, j in pairs:
        for key, value in terms(i, j).items():
            out[key] = out[key] + value / len(pairs) if key in out else value / len(pairs)
    return out


def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
    """A reparameterised draw from N(mu, exp(logvar)) (torch's global RNG)."""
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


def require_modalities(name: str, n: int, expected: int = 2) -> None:
    """Methods defined for exactly ``expected`` modalities refuse others."""
    if n != expected:
        raise DSSLError(f"method {name!r} needs exactly {expected} modalities, got {n}")


def one_stage(name: str, objective: nn.Module, model: MultimodalModel,
              settings: MethodSettings) -> list[Stage]:
    """A method trained in a single stage: every module of the model, ``settings.epochs``."""
    return [Stage(name=name, objective=objective,
                  trainable=[model.shared, model.specific, model.extra], epochs=settings.epochs)]


def standard_model(shape: ModelShape, *, with_specific: bool = True) -> MultimodalModel:
    """The kinds' default (or custom) shared encoders; specific encoders conditioned on the
    shared code (vectors: fed ``[x_i, shared_i(x_i)]``; other kinds: late fusion)."""
    kinds, sizes = shape.kinds, shape.sizes
    shared = (list(shape.shared_encoders) if shape.shared_encoders is not None
              else [k.shared_encoder(shape.shared_dim, sizes) for k in kinds])
    condition = shape.shared_dim if shape.condition_specific_on_shared else None
    specific = None
    if with_specific:
        specific = (list(shape.specific_encoders) if shape.specific_encoders is not None
                    else [k.specific_encoder(shape.specific_dim, condition, sizes)
                          for k in kinds])
    return MultimodalModel(
        [k.n_features for k in kinds], shape.shared_dim, shape.specific_dim, shape.hidden_dim,
        shape.n_hidden_layers, shared_encoders=shared, specific_encoders=specific,
        condition_specific_on_shared=shape.condition_specific_on_shared,
        with_specific=with_specific,
    )


def shared_only_model(shape: ModelShape) -> MultimodalModel:
    """Shared encoders only (CLIP, SimCLR)."""
    if shape.specific_encoders is not None:
        raise DSSLError("this method learns no specific representation; do not pass "
                        "specific_encoders")
    return standard_model(shape, with_specific=False)
