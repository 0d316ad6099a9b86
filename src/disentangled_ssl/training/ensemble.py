"""Batched ensembles: the K models of a β grid (step 1) or a λ grid (step 2) trained as one.

A sweep over a dial trains K models that differ only in that dial. Trained one by one, each run
repeats the same data pipeline (augmentation, vMF noise, for step 2 the frozen shared encoders)
and launches K times as many small kernels. Here the K members' weights are stacked into one
``(K, ...)`` tensor per layer and applied with batched matrix products, so a step of the
ensemble costs a few large kernels instead of K rounds of small ones: on a GPU the grid trains
in about the time of one model; on a CPU the gain is the per-operation overhead.

**What matches one-by-one training, and why.** Every member of a grid has the same seed. In
one-by-one training a run seeds torch's RNG with it, initialises its model from it, shuffles
the rows with it and then draws, per step, the augmentations and (step 1) the vMF noise from
it — and none of these draws depends on the weights or on the dial (Wood's rejection sampler
accepts or rejects on random numbers and κ only). So all members see the same batches, the same
augmented views and the same vMF noise: the ensemble draws them once per step, in the order a
single run does, and gives them to every member. Each member's loss is computed as in the
single run; the ensemble's loss is their SUM, and as members share no parameters each member's
gradient is exactly its own loss's gradient; Adam is elementwise, so each member's update is the
one its own run makes. The losses are the very nodes a single run uses
(:mod:`disentangled_ssl.losses.fused`, broadcast over the members); batched matrix products
may still round differently in the last bit, so a
member equals its one-by-one run to float tolerance, not always bit for bit: after an epoch of
the paper's setting the weights agree to ~1e-7 relative (Frobenius), and single weights whose
gradient is ~0 may differ by up to one Adam step (~lr), as Adam normalises rounding noise
(``tests/test_ensemble.py``, ``benchmarks/bench_ensemble.py``).

A seed grid is one ensemble per seed (members with different seeds shuffle differently).
Step 2's λ grid also shares the frozen step-1 encoders: their forward pass runs once per step
for all members.

The estimator-level grids (:func:`disentangled_ssl.estimator.fit_shared_grid`,
:func:`~disentangled_ssl.estimator.fit_specific_grid`) prepare each member's stage through the
estimator's public ``prepare_stage`` and train them here.

Example:
    >>> from disentangled_ssl import DisentangledSSL, make_synthetic
    >>> from disentangled_ssl.estimator import fit_shared_grid, fit_specific_grid
    >>> data = make_synthetic(n_samples=512, seed=0)
    >>> base = DisentangledSSL(shared_epochs=1, specific_epochs=1, random_state=0,
    ...                        verbose=False)
    >>> grid = fit_shared_grid(base, [0.1, 1.0, 10.0], data.x1, data.x2)
    >>> [est.beta for est in grid]
    [0.1, 1.0, 10.0]
    >>> lam_grid = fit_specific_grid(grid[1], [0.0, 1.0], data.x1, data.x2)
    >>> lam_grid[1].transform(data.x1, data.x2).specific1.shape
    (512, 100)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.losses.functional import alignment
from disentangled_ssl.losses.fused import info_nce as fused_info_nce
from disentangled_ssl.losses.fused import specific_terms_summed
from disentangled_ssl.methods.base import (
    augment_each,
    augment_of,
    pair_average,
    posterior_samples,
    two_views,
)
from disentangled_ssl.methods.dssl import SharedObjective, SpecificObjective
from disentangled_ssl.training.loop import LoopState, Stage, TrainConfig, train_stage

__all__ = [
    "BatchedMLP",
    "SharedEnsembleObjective",
    "SpecificEnsembleObjective",
    "ensemble_stage",
    "train_ensemble",
]

# Elementwise activations a batched MLP may apply unchanged to (K, B, H) tensors.
_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.GELU, nn.Identity, nn.LeakyReLU, nn.SiLU, nn.Sigmoid)


# --------------------------------------------------------------------------------------------
# Batched layers
# --------------------------------------------------------------------------------------------


def _layers(module: nn.Module) -> list[nn.Module]:
    """The layer sequence of an MLP-like encoder (``.net`` Sequential, or a Sequential)."""
    seq = getattr(module, "net", module)
    if not isinstance(seq, nn.Sequential):
        raise DSSLError(
            f"batched ensembles need MLP encoders (nn.Linear layers and activations in an "
            f"nn.Sequential), got {type(module).__name__}; train custom encoders one by one"
        )
    layers = list(seq)
    for layer in layers:
        if not isinstance(layer, (nn.Linear, *_ELEMENTWISE)):
            raise DSSLError(
                f"batched ensembles support nn.Linear layers and elementwise activations, got "
                f"{type(layer).__name__}; train such encoders one by one"
            )
    return layers


class BatchedMLP(nn.Module):
    """K MLPs of identical architecture evaluated together.

    Layer j's weights are one parameter of shape (K, out_j, in_j) (and bias (K, out_j)),
    initialised from the members' ``nn.Linear`` layers; the forward pass is a chain of
    ``torch.baddbmm`` calls and the members' activations.

    Args:
        mlps: K modules with the same layer structure (see :func:`_layers`).

    Raises:
        DSSLError: if the members are not MLPs or differ in structure.
    """

    def __init__(self, mlps: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(mlps) == 0:
            raise DSSLError("a batched ensemble needs at least one member")
        structures = [_layers(m) for m in mlps]
        first = structures[0]
        for k, layers in enumerate(structures[1:], start=1):
            same = len(layers) == len(first) and all(
                type(a) is type(b)
                and (not isinstance(a, nn.Linear)
                     or (a.weight.shape == b.weight.shape and (a.bias is None) == (b.bias is None)))
                for a, b in zip(first, layers)
            )
            if not same:
                raise DSSLError(
                    f"ensemble member {k} has a different encoder architecture from member 0; "
                    "all members of a grid must share the encoder shape"
                )
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.kinds: list[str] = []
        self.activations = nn.ModuleList()
        for j, layer in enumerate(first):
            if isinstance(layer, nn.Linear):
                column = [layers[j] for layers in structures]
                stacked = torch.stack([lin.weight.detach() for lin in column])
                self.weights.append(nn.Parameter(stacked))
                self.biases.append(nn.Parameter(
                    torch.stack([lin.bias.detach() for lin in column]) if layer.bias is not None
                    else torch.zeros(len(mlps), layer.out_features, device=layer.weight.device,
                                     dtype=layer.weight.dtype),
                    requires_grad=layer.bias is not None,
                ))
                self.kinds.append("linear")
            else:
                self.activations.append(copy.deepcopy(layer))
                self.kinds.append("activation")
        self.n_members = len(mlps)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in) — the same input for every member — or (K, B, in) -> (K, B, out)."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n_members, *x.shape)
        lin = act = 0
        for kind in self.kinds:
            if kind == "linear":
                w, b = self.weights[lin], self.biases[lin]
                x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
                lin += 1
            else:
                x = self.activations[act](x)
                act += 1
        return x

    @torch.no_grad()
    def write_back(self, mlps: Sequence[nn.Module]) -> None:
        """Copy member k's weights into ``mlps[k]`` (the modules it was built from)."""
        if len(mlps) != self.n_members:
            raise DSSLError(f"write_back got {len(mlps)} modules for {self.n_members} members")
        for k, mlp in enumerate(mlps):
            linears = [layer for layer in _layers(mlp) if isinstance(layer, nn.Linear)]
            for lin, w, b in zip(linears, self.weights, self.biases):
                lin.weight.copy_(w[k])
                if lin.bias is not None:
                    lin.bias.copy_(b[k])


# --------------------------------------------------------------------------------------------
# Batched losses (the same equations as disentangled_ssl.losses.functional, per member)
# --------------------------------------------------------------------------------------------


def _member_terms(terms: dict[str, Tensor]) -> dict[str, Tensor]:
    """{"loss": sum over members} + one scalar per member and term, "term[k]"."""
    out = {"loss": terms["loss"].sum()}
    for name, values in terms.items():
        for k, value in enumerate(values.unbind()):
            out[f"{name}[{k}]"] = value
    return out


# --------------------------------------------------------------------------------------------
# Ensemble objectives
# --------------------------------------------------------------------------------------------


def _same_augment(members: Sequence[nn.Module]) -> nn.Module:
    first = members[0].augment
    for k, m in enumerate(members[1:], start=1):
        if type(m.augment) is not type(first) or _public_state(m.augment) != _public_state(first):
            raise DSSLError(
                f"ensemble member {k} augments differently from member 0; all members of a "
                "grid must share the augmentation settings"
            )
    return first


def _public_state(module: nn.Module) -> dict:
    return {k: v for k, v in vars(module).items() if not k.startswith("_") and k != "training"}


class SharedEnsembleObjective(nn.Module):
    """Step 1 for K members at once: the batched form of
    :class:`disentangled_ssl.methods.SharedObjective`.

    Args:
        members: the K members' step-1 objectives (same modalities, encoder shapes,
            augmentation, κ and temperature; β may differ).

    Returns from ``forward``: ``loss`` (sum over members) and ``loss[k]``, ``infonce[k]``,
    ``alignment[k]`` per member.
    """

    def __init__(self, members: Sequence[SharedObjective]) -> None:
        super().__init__()
        if not members or not all(isinstance(m, SharedObjective) for m in members):
            raise DSSLError("SharedEnsembleObjective needs SharedObjective members")
        first = members[0]
        for k, m in enumerate(members[1:], start=1):
            if m.kappa != first.kappa or m.loss.temperature != first.loss.temperature:
                raise DSSLError(
                    f"ensemble member {k} has kappa={m.kappa}, temperature="
                    f"{m.loss.temperature}; member 0 has {first.kappa}, "
                    f"{first.loss.temperature}: only beta may differ in a step-1 grid"
                )
            if m.model.n_modalities != first.model.n_modalities:
                raise DSSLError(f"ensemble member {k} has a different number of modalities")
        self.augment = _same_augment(members)
        self.kappa = first.kappa
        self.temperature = first.loss.temperature
        self.encoders = nn.ModuleList(
            BatchedMLP([m.model.shared[i] for m in members])
            for i in range(first.model.n_modalities)
        )
        device = next(first.model.parameters()).device
        self.register_buffer("beta", torch.tensor([float(m.loss.beta) for m in members],
                                                  device=device))
        self._members = tuple(members)  # not submodules: their weights are the stacked ones

    def write_back(self) -> None:
        """Copy the trained weights into the members' models."""
        for i, enc in enumerate(self.encoders):
            enc.write_back([m.model.shared[i] for m in self._members])

    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        """xs: one (B, d_i) batch per modality, shared by all members."""
        views = augment_each(self.augment, xs)  # drawn as in each member's single run
        embeddings = [enc(v) for enc, v in zip(self.encoders, views)]  # (K, B, D) each
        # One vMF noise draw for all members, as each member's single run draws it.
        samples = posterior_samples(torch.cat(embeddings, dim=1), self.kappa)  # (K, M·B, D)
        z = samples.split([e.shape[1] for e in embeddings], dim=1)
        terms = pair_average(len(xs), lambda i, j: {
            "infonce": fused_info_nce(z[i], z[j], self.temperature),
            "alignment": alignment(embeddings[i], embeddings[j])})
        nce, align = terms["infonce"], terms["alignment"]
        return _member_terms({"loss": nce + self.beta * align, "infonce": nce,
                              "alignment": align})


class SpecificEnsembleObjective(nn.Module):
    """Step 2 for K members at once: the batched form of
    :class:`disentangled_ssl.methods.SpecificObjective`.

    All members must sit on the same frozen step-1 encoders (one fitted step 1, several λ):
    the augmented views and their shared codes are computed once per step for all members.

    Returns from ``forward``: ``loss`` (sum over members) and ``loss[k]``, ``infonce[k]``,
    ``orthogonality[k]`` per member.
    """

    def __init__(self, members: Sequence[SpecificObjective]) -> None:
        super().__init__()
        if not members or not all(isinstance(m, SpecificObjective) for m in members):
            raise DSSLError("SpecificEnsembleObjective needs SpecificObjective members")
        first = members[0]
        reference = first.model.shared.state_dict()
        for k, m in enumerate(members[1:], start=1):
            if m.loss.temperature != first.loss.temperature:
                raise DSSLError(f"ensemble member {k} has a different temperature")
            if (m.model.condition_specific_on_shared != first.model.condition_specific_on_shared
                    or m.model.n_modalities != first.model.n_modalities):
                raise DSSLError(f"ensemble member {k} has a different model layout")
            state = m.model.shared.state_dict()
            if state.keys() != reference.keys() or not all(
                    torch.equal(state[key], reference[key]) for key in reference):
                raise DSSLError(
                    f"ensemble member {k} has different shared (step-1) encoders from member 0;"
                    " a step-2 grid runs on one fitted step 1"
                )
        self.augment = _same_augment(members)
        self.temperature = first.loss.temperature
        self.shared_model = first.model  # frozen: its shared encoders serve every member
        self.encoders = nn.ModuleList(
            BatchedMLP([m.model.specific[i] for m in members])
            for i in range(first.model.n_modalities)
        )
        device = next(first.model.parameters()).device
        self.register_buffer("lam", torch.tensor([float(m.loss.lam) for m in members],
                                                 device=device))
        self._members = tuple(members)

    def write_back(self) -> None:
        """Copy the trained weights into the members' models."""
        for i, enc in enumerate(self.encoders):
            enc.write_back([m.model.specific[i] for m in self._members])

    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        """xs: one (B, d_i) batch per modality, shared by all members."""
        model = self.shared_model
        specific: list[tuple[Tensor, Tensor]] = []
        shared: list[tuple[Tensor, Tensor]] = []
        for i, x in enumerate(xs):
            batch = x.shape[0]
            views = two_views(augment_of(self.augment, i), x)  # as in each member's single run
            with torch.no_grad():
                codes = model.shared_embedding(i, views)
            inputs = (torch.cat([views.flatten(1), codes], dim=1)
                      if model.condition_specific_on_shared else views)
            spec = self.encoders[i](inputs)  # (K, 2B, Ds)
            specific.append((spec[:, :batch], spec[:, batch:]))
            shared.append((codes[:batch], codes[batch:]))
        nce, ortho = specific_terms_summed(specific, shared, self.temperature)
        return _member_terms({"loss": nce + self.lam * ortho, "infonce": nce,
                              "orthogonality": ortho})


# --------------------------------------------------------------------------------------------
# Stages and training
# --------------------------------------------------------------------------------------------


def ensemble_stage(stages: Sequence[Stage]) -> Stage:
    """One stage training the members of ``stages`` together.

    Args:
        stages: K stages of the same kind (all DisentangledSSL step 1 or all step 2), equal in
            name and epochs, without dial schedules.

    Returns:
        A :class:`Stage` whose objective is a :class:`SharedEnsembleObjective` or
        :class:`SpecificEnsembleObjective` (call its ``write_back()`` after training).

    Raises:
        DSSLError: mixed or unsupported stages, epochs that differ, dial schedules.
    """
    if not stages:
        raise DSSLError("ensemble_stage needs at least one stage")
    first = stages[0]
    for k, s in enumerate(stages):
        if s.name != first.name or s.epochs != first.epochs:
            raise DSSLError(
                f"ensemble member {k} is stage {s.name!r} with {s.epochs} epochs; member 0 is "
                f"{first.name!r} with {first.epochs}: a grid's members must run the same stage"
            )
        if s.dials:
            raise DSSLError(
                f"stage {s.name!r} of member {k} has dial schedules {sorted(s.dials)}; "
                "batched ensembles need constant dials (e.g. beta_warmup_steps=0)"
            )
    objectives = [s.objective for s in stages]
    objective: SharedEnsembleObjective | SpecificEnsembleObjective
    if all(isinstance(o, SharedObjective) for o in objectives):
        objective = SharedEnsembleObjective(objectives)  # type: ignore[arg-type]
        frozen: list[nn.Module] = []
    elif all(isinstance(o, SpecificObjective) for o in objectives):
        objective = SpecificEnsembleObjective(objectives)  # type: ignore[arg-type]
        frozen = [objective.shared_model.shared]
    else:
        kinds = sorted({type(o).__name__ for o in objectives})
        raise DSSLError(
            f"batched ensembles support DisentangledSSL's SharedObjective (step 1) and "
            f"SpecificObjective (step 2) grids, got {kinds}"
        )
    return Stage(name=first.name, objective=objective, trainable=[objective.encoders],
                 epochs=first.epochs, frozen=frozen)


def split_history(history: list[dict[str, float]], n_members: int) -> list[list[dict[str, float]]]:
    """Per-member histories (the keys a single run records) from an ensemble's history."""
    out: list[list[dict[str, float]]] = [[] for _ in range(n_members)]
    for record in history:
        shared = {k: v for k, v in record.items() if "[" not in k and k != "loss"}
        for k in range(n_members):
            member = {name[: -len(f"[{k}]")]: v for name, v in record.items()
                      if name.endswith(f"[{k}]")}
            out[k].append({**member, **shared})
    return out


def train_ensemble(
    stages: Sequence[Stage],
    data: Sequence[Tensor],
    config: TrainConfig,
    *,
    on_epoch_end: Callable[[LoopState], None] | None = None,
) -> list[list[dict[str, float]]]:
    """Train K stages together through :func:`train_stage` and write the trained weights back
    into the members' models.

    Args:
        stages: the members' stages (see :func:`ensemble_stage`); their models end up trained
            as if each stage had been run on its own with ``config`` (to float tolerance).
        data: the (n, d_i) tensors all members train on.
        config: the loop settings every member's single run would use (same seed).

    Returns:
        One history per member, with the keys of a single run's history (``seconds`` is the
        whole ensemble's epoch time).
    """
    stage = ensemble_stage(stages)
    history = train_stage(stage, data, config, on_epoch_end=on_epoch_end)
    objective = stage.objective
    assert isinstance(objective, (SharedEnsembleObjective, SpecificEnsembleObjective))
    objective.write_back()
    return split_history(history, len(stages))
