"""Every method by name: how to build its model, its stages and which dials it reads.

One training loop (:func:`~disentangled_ssl.training.train_stage`) serves all seven methods;
a method is only a model builder (which encoders, heads, decoders or critics it needs) and a
list of stages (which objective, which modules are trained or frozen)::

    >>> from disentangled_ssl.method_registry import get_method, method_names
    >>> method_names()
    ('clip', 'simclr', 'joint', 'focal', 'dmvae', 'factorcl', 'disentangled_ssl')
    >>> get_method("joint").dials
    ('alpha', 'lam')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.baselines import (
    CLIPObjective,
    DMVAEObjective,
    FactorCLObjective,
    FOCALObjective,
    JointOptObjective,
    SimCLRObjective,
)
from disentangled_ssl.losses.clip import CLIPLoss
from disentangled_ssl.losses.dmvae import DMVAELoss
from disentangled_ssl.losses.factorcl import FactorCLLoss
from disentangled_ssl.losses.focal import FOCALLoss
from disentangled_ssl.losses.joint import JointOptLoss
from disentangled_ssl.losses.simclr import SimCLRLoss
from disentangled_ssl.methods import disentangled_ssl_stages
from disentangled_ssl.models import MultimodalModel
from disentangled_ssl.nn.encoders import MLP
from disentangled_ssl.nn.heads import CosineCritic, GaussianEncoder
from disentangled_ssl.training.loop import Schedule, Stage

DEFAULT_METHOD = "disentangled_ssl"


@dataclass(frozen=True)
class ModelShape:
    """Sizes of a method's model: features per modality and the encoders' shape."""

    in_dims: Sequence[int]
    shared_dim: int = 100
    specific_dim: int = 100
    hidden_dim: int = 512
    n_hidden_layers: int = 1


@dataclass(frozen=True)
class MethodConfig:
    """Dials and schedule of a run (each method reads the ones it lists in ``dials``).

    Attributes:
        beta, lam: DisentangledSSL's dials; ``lam`` is also the orthogonality weight of
            JointOpt and FOCAL.
        alpha: the baselines' ``a`` (JointOpt/FOCAL specific-term weight, DMVAE KL weight).
        kappa: vMF concentration (DisentangledSSL step 1, JointOpt).
        temperature: InfoNCE temperature.
        epochs: epochs of a one-stage method.
        shared_epochs, specific_epochs: epochs of DisentangledSSL's two steps.
        beta_schedule: optional warm-up of β (DisentangledSSL step 1).
    """

    beta: float = 1.0
    lam: float = 1.0
    alpha: float = 1.0
    kappa: float = 1000.0
    temperature: float = 0.07
    epochs: int = 50
    shared_epochs: int = 50
    specific_epochs: int = 30
    beta_schedule: Schedule | None = None


ModelBuilder = Callable[[ModelShape], MultimodalModel]
StageBuilder = Callable[[MultimodalModel, nn.Module, MethodConfig], list[Stage]]


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
        build_stages: (model, augment, MethodConfig) -> stages, run in order by the one loop.
        sweep: the dial ``dssl compare`` sweeps by default and its default values (None: a
            single setting).
    """

    name: str
    title: str
    citation: str
    dials: tuple[str, ...]
    default_alpha: float | None
    has_specific: bool
    build_model: ModelBuilder
    build_stages: StageBuilder
    sweep: tuple[str, tuple[float, ...]] | None


# ---------------------------------------------------------------------------- models
def _standard_model(shape: ModelShape, *, with_specific: bool = True) -> MultimodalModel:
    """MLP shared encoders; MLP specific encoders fed ``[x_i, shared_i(x_i)]``."""
    return MultimodalModel(shape.in_dims, shape.shared_dim, shape.specific_dim, shape.hidden_dim,
                           shape.n_hidden_layers, with_specific=with_specific)


def _shared_only_model(shape: ModelShape) -> MultimodalModel:
    return _standard_model(shape, with_specific=False)


def _focal_model(shape: ModelShape) -> MultimodalModel:
    """As JointOpt; FOCAL's orthogonality compares specific and shared vectors entrywise."""
    if shape.shared_dim != shape.specific_dim:
        raise DSSLError(
            f"method 'focal' needs specific_dim == shared_dim (its orthogonality term is the "
            f"cosine between paired specific and shared vectors); got specific_dim="
            f"{shape.specific_dim}, shared_dim={shape.shared_dim}"
        )
    return _standard_model(shape)


def _dmvae_model(shape: ModelShape) -> MultimodalModel:
    """Gaussian shared and private encoders per modality, and decoders from
    ``[private, shared]`` back to the modality."""
    if len(shape.in_dims) != 2:
        raise DSSLError(f"method 'dmvae' needs exactly 2 modalities, got {len(shape.in_dims)}")
    h, layers = shape.hidden_dim, shape.n_hidden_layers
    return MultimodalModel(
        shape.in_dims, shape.shared_dim, shape.specific_dim, h, layers,
        shared_encoders=[GaussianEncoder(d, shape.shared_dim, h, layers) for d in shape.in_dims],
        specific_encoders=[GaussianEncoder(d, shape.specific_dim, h, layers)
                           for d in shape.in_dims],
        condition_specific_on_shared=False,
        extra_modules={"decoders": nn.ModuleList([
            MLP(shape.specific_dim + shape.shared_dim, d, h, layers) for d in shape.in_dims
        ])},
    )


def _factorcl_model(shape: ModelShape) -> MultimodalModel:
    """Shared and unique MLP encoders (unique read ``x_i`` alone) plus FactorCL's critics."""
    if len(shape.in_dims) != 2:
        raise DSSLError(
            f"method 'factorcl' needs exactly 2 modalities, got {len(shape.in_dims)}")
    h, layers = shape.hidden_dim, shape.n_hidden_layers
    c, u = shape.shared_dim, shape.specific_dim
    return MultimodalModel(
        shape.in_dims, c, u, h, layers,
        specific_encoders=[MLP(d, u, h, layers) for d in shape.in_dims],
        condition_specific_on_shared=False,
        extra_modules={
            "shared_nce": CosineCritic(c, c),
            "shared_club": CosineCritic(2 * c, 2 * c),
            "unique_self": nn.ModuleList([CosineCritic(u, u) for _ in shape.in_dims]),
            "unique_club": CosineCritic(u, u),
            "unique_cond": CosineCritic(2 * u, 2 * u),
        },
    )


# ---------------------------------------------------------------------------- stages
def _one_stage(name: str, objective: nn.Module, model: MultimodalModel,
               config: MethodConfig) -> list[Stage]:
    return [Stage(name=name, objective=objective,
                  trainable=[model.shared, model.specific, model.extra], epochs=config.epochs)]


def _clip_stages(model: MultimodalModel, augment: nn.Module, config: MethodConfig
                 ) -> list[Stage]:
    return _one_stage("clip", CLIPObjective(model, augment, CLIPLoss(config.temperature)),
                      model, config)


def _simclr_stages(model: MultimodalModel, augment: nn.Module, config: MethodConfig
                   ) -> list[Stage]:
    return _one_stage("simclr", SimCLRObjective(model, augment, SimCLRLoss(config.temperature)),
                      model, config)


def _joint_stages(model: MultimodalModel, augment: nn.Module, config: MethodConfig
                  ) -> list[Stage]:
    loss = JointOptLoss(config.alpha, config.lam, config.temperature)
    return _one_stage("joint", JointOptObjective(model, augment, loss, config.kappa),
                      model, config)


def _focal_stages(model: MultimodalModel, augment: nn.Module, config: MethodConfig
                  ) -> list[Stage]:
    loss = FOCALLoss(config.alpha, config.lam, config.temperature)
    return _one_stage("focal", FOCALObjective(model, augment, loss), model, config)


def _dmvae_stages(model: MultimodalModel, augment: nn.Module, config: MethodConfig
                  ) -> list[Stage]:
    return _one_stage("dmvae", DMVAEObjective(model, augment, DMVAELoss(config.alpha)),
                      model, config)


def _factorcl_stages(model: MultimodalModel, augment: nn.Module, config: MethodConfig
                     ) -> list[Stage]:
    return _one_stage("factorcl", FactorCLObjective(model, augment, FactorCLLoss()),
                      model, config)


def _dssl_stages(model: MultimodalModel, augment: nn.Module, config: MethodConfig
                 ) -> list[Stage]:
    return disentangled_ssl_stages(
        model, augment, beta=config.beta, lam=config.lam, kappa=config.kappa,
        temperature=config.temperature, shared_epochs=config.shared_epochs,
        specific_epochs=config.specific_epochs, beta_schedule=config.beta_schedule,
    )


_PAPER = ("Wang et al., 'An Information Criterion for Controlled Disentanglement of "
          "Multimodal Data', ICLR 2025")

METHODS: dict[str, MethodSpec] = {
    spec.name: spec for spec in (
        MethodSpec("clip", "CLIP", "Radford et al., ICML 2021", (), None, False,
                   _shared_only_model, _clip_stages, None),
        MethodSpec("simclr", "SimCLR", "Chen et al., ICML 2020", (), None, False,
                   _shared_only_model, _simclr_stages, None),
        MethodSpec("joint", "JointOpt", f"the joint-optimisation baseline of {_PAPER}",
                   ("alpha", "lam"), 1.0, True, _standard_model, _joint_stages,
                   ("lam", (0.1, 1.0, 10.0))),
        MethodSpec("focal", "FOCAL", "Liu et al., NeurIPS 2023", ("alpha", "lam"), 1.0, True,
                   _focal_model, _focal_stages, ("lam", (0.1, 1.0, 10.0))),
        MethodSpec("dmvae", "DMVAE", "Lee & Pavlovic, CVPR Workshops 2021", ("alpha",), 1e-5,
                   True, _dmvae_model, _dmvae_stages, ("alpha", (1e-6, 1e-5, 1e-4))),
        MethodSpec("factorcl", "FactorCL", "Liang et al., NeurIPS 2023", (), None, True,
                   _factorcl_model, _factorcl_stages, None),
        MethodSpec("disentangled_ssl", "DisentangledSSL", _PAPER, ("beta", "lam"), None, True,
                   _standard_model, _dssl_stages, ("lam", (0.1, 1.0, 10.0))),
    )
}


def method_names() -> tuple[str, ...]:
    """The registered method names, baselines first."""
    return tuple(METHODS)


def get_method(name: object) -> MethodSpec:
    """The :class:`MethodSpec` called ``name``.

    Raises:
        DSSLError: unknown name; the message lists the valid names.
    """
    spec = METHODS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise DSSLError(
            f"unknown method {name!r}; choose one of: {', '.join(method_names())}"
        )
    return spec
