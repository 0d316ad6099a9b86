"""Decoders on the frozen codes of a fitted estimator, counterfactuals and cross-modal
prediction (the estimator's ``fit_decoders``, ``counterfactual`` and ``predict_modality``).

Per modality ``i`` a decoder maps ``[shared_i, specific_i]`` (each code standardised per
dimension with its training mean and std) back to ``x_i``; it is trained through the one loop
(:func:`~disentangled_ssl.training.train_stage`) as the stage ``"decoder"`` with every encoder
frozen. Vectors use the MLP decoder and the mean squared error, padded sequences the sequence
Transformer decoder and the mean squared error over their valid steps; images and token ids
have no decoder (refused by name). The loss is computed where the encoders read their input
(standardised with ``standardize=True``); outputs are mapped back to the input's units.

A counterfactual row ``k`` is ``decoder_i(shared_i(b_k), specific_i(a_k))``: the specific
content of sample ``a_k`` with the shared content of sample ``b_k``. Cross-modal prediction
decodes modality ``j`` from modality ``i``'s shared code, with ``j``'s specific code (not
observable from modality ``i``) fixed at its mean over the decoders' training rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from disentangled_ssl._errors import DSSLError
from disentangled_ssl._validation import check_nonnegative, check_paired, check_positive_int
from disentangled_ssl.data.loaders import TensorBatches
from disentangled_ssl.data.scaling import apply_scaler
from disentangled_ssl.estimator.inputs import Inputs, as_batch_tensor, read_inputs
from disentangled_ssl.methods import get_method, method_names
from disentangled_ssl.methods.decoder import (
    DECODER_STAGE,
    CodeDecoders,
    decoder_stage,
    model_codes,
)
from disentangled_ssl.nn.modalities import EncoderSizes, Vector
from disentangled_ssl.nn.modalities import Sequence as SequenceKind
from disentangled_ssl.training.logging import EpochLogger
from disentangled_ssl.training.loop import TrainConfig, resolve_device, rng_fork, train_stage

if TYPE_CHECKING:
    from disentangled_ssl.estimator.estimator import DisentangledSSL

#: The modality kinds that have a decoder.
DECODABLE_KINDS: tuple[str, ...] = (Vector.kind, SequenceKind.kind)

_HOW_TO_TRAIN = ("train them with est.fit_decoders([X1, X2]) or refit with decoder_epochs=N "
                 "(CLI: dssl fit --decoder-epochs N)")


# ---------------------------------------------------------------------------- checks
def _methods_with_specific() -> list[str]:
    return [m for m in method_names() if get_method(m).has_specific]


def _no_specific(est: DisentangledSSL, what: str) -> DSSLError:
    return DSSLError(
        f"{what}: method {est.method!r} learns no specific representation, so it has no "
        "[shared_i, specific_i] codes to decode; fit a method with specific codes: "
        + ", ".join(_methods_with_specific()))


def check_decoder_settings(est: DisentangledSSL) -> None:
    """``decoder_epochs`` and ``decoder_lr`` (part of ``validate_params``): decoders need a
    method with specific codes whose specific step is trained."""
    check_positive_int("decoder_epochs", est.decoder_epochs, allow_zero=True)
    check_nonnegative("decoder_lr", est.decoder_lr, positive=True)
    if est.decoder_epochs > 0:
        spec = est._spec()
        if not spec.has_specific:
            raise _no_specific(est, "decoder_epochs > 0")
        if spec.two_step and est.specific_epochs == 0:
            raise DSSLError("decoder_epochs > 0 needs the specific codes, but "
                            "specific_epochs=0; set specific_epochs > 0 or decoder_epochs=0")


def check_decoder_kinds(est: DisentangledSSL, what: str) -> None:
    """Refuse modality kinds without a decoder (images, token ids), by modality."""
    for k, kind in enumerate(est._kinds()):
        if kind.kind not in DECODABLE_KINDS:
            raise DSSLError(
                f"{what}: modality {k + 1} is {kind.kind!r}, which has no decoder; decoders "
                f"exist for {' and '.join(repr(d) for d in DECODABLE_KINDS)} modalities "
                "(flatten it and pass modalities='vector' to decode it as a vector)")


def check_decodable(est: DisentangledSSL, what: str) -> None:
    """Refuse an unfitted model, a method without specific codes, an untrained specific step
    and modality kinds without a decoder, each by name."""
    if not hasattr(est, "model_"):
        raise DSSLError(f"{what} needs a fitted model: call fit([X1, X2]) first (with "
                        "decoder_epochs=N, fit trains the decoders after the encoders)")
    spec = est._spec()
    if not spec.has_specific:
        raise _no_specific(est, what)
    untrained = [name for name in spec.reinit if name not in est.history_]
    if untrained:
        raise DSSLError(f"{what} needs the specific codes, but the stage {untrained[0]!r} was "
                        "not trained (specific_epochs=0); fit with specific_epochs > 0 (or "
                        "call fit_specific) first")
    check_decoder_kinds(est, what)


def require_decoders(est: DisentangledSSL, what: str) -> CodeDecoders:
    """``est.decoders_``, or a DSSLError saying how to train them."""
    if not hasattr(est, "model_"):
        raise DSSLError(f"{what} needs a fitted model with decoders: call fit([X1, X2]) with "
                        "decoder_epochs=N first, or fit_decoders([X1, X2]) on a fitted model")
    decoders = getattr(est, "decoders_", None)
    if decoders is None:
        raise DSSLError(f"{what} needs decoders, but this model has none (it was fitted with "
                        f"decoder_epochs=0); {_HOW_TO_TRAIN}")
    return decoders


def _device(est: DisentangledSSL) -> torch.device:
    device = getattr(est, "_device", None)
    return device if device is not None else resolve_device(est.device)


# ---------------------------------------------------------------------------- building
def build_decoders(est: DisentangledSSL) -> CodeDecoders:
    """Freshly initialised decoders of ``est``'s kinds and sizes (torch's global RNG): each
    kind's decoder from ``shared_dim + specific_dim`` codes, the MLP of ``hidden_dim`` ×
    ``n_hidden_layers`` for vectors."""
    sizes = EncoderSizes(int(est.hidden_dim), int(est.n_hidden_layers))
    latent = int(est.shared_dim) + int(est.specific_dim)
    return CodeDecoders([k.decoder(latent, sizes, est.method) for k in est._kinds()],
                        int(est.shared_dim), int(est.specific_dim))


def _batches(est: DisentangledSSL, data: list[Tensor] | object, size: int = 8192
             ) -> Iterator[Sequence[Tensor]]:
    """The training rows in order, in batches (resident tensors or a batch source)."""
    if isinstance(data, list):
        n = int(data[0].shape[0])
        for start in range(0, n, size):
            yield [t[start:start + size] for t in data]
    else:
        yield from data.batches()  # type: ignore[attr-defined]


@torch.no_grad()
def _set_code_statistics(est: DisentangledSSL, decoders: CodeDecoders,
                         data: list[Tensor] | object) -> None:
    """Per-dimension mean and std of every modality's ``[shared, specific]`` training codes
    (sums in float64, one pass)."""
    model = est.model_.eval()
    sums: dict[int, list] = {}
    for batch in _batches(est, data):
        for i, x in enumerate(batch):
            code = torch.cat(model_codes(model, i, x), dim=1).double()
            entry = sums.setdefault(i, [0.0, 0.0, 0])
            entry[0] = entry[0] + code.sum(0)
            entry[1] = entry[1] + (code * code).sum(0)
            entry[2] += code.shape[0]
    for i, (total, total_sq, count) in sums.items():
        mean = total / count
        std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
        decoders.set_code_statistics(i, mean.float(), std.float())


# ---------------------------------------------------------------------------- training
def fit_decoders(est: DisentangledSSL, views: tuple[object, ...], *, epochs: int | None = None,
                 validation: object = None) -> None:
    """Train ``est.decoders_`` on the frozen encoders of fitted ``est`` (its
    ``decoder_epochs`` unless ``epochs`` is given) into ``est.history_["decoder"]``.

    Raises:
        DSSLError: see :func:`check_decodable`; bad views; ``epochs`` not positive.
    """
    check_decodable(est, "fit_decoders")
    est.validate_params()
    n_epochs = est.decoder_epochs if epochs is None else epochs
    if (isinstance(n_epochs, bool) or not isinstance(n_epochs, (int, np.integer))
            or n_epochs < 1):
        raise DSSLError(f"fit_decoders needs a positive number of epochs, got {n_epochs!r}; "
                        "pass fit_decoders(..., epochs=N) or set decoder_epochs=N")
    est._device = _device(est)
    seed = est.seed_ + len(est._spec().stage_names)
    train, held = est._split(est._read(views, seed), validation, seed)
    if train.tensors is not None:
        train.tensors = est._checked(train, est._kinds(), fitting=True)
    if held is not None and held.tensors is not None:
        held.tensors = est._checked(held, est._kinds(), fitting=False)
    data = est._device_data(train)
    with rng_fork(est._device):
        torch.manual_seed(seed)
        decoders = build_decoders(est).to(est._device)
    _set_code_statistics(est, decoders, data)
    config = TrainConfig(batch_size=int(est.batch_size), lr=float(est.decoder_lr), seed=seed,
                         progress=bool(est.verbose), bf16=bool(est.bf16),
                         early_stopping_patience=est.early_stopping_patience)
    validation_data = _validation(est, held)
    if validation_data is None and est.early_stopping_patience is not None:
        raise DSSLError("early_stopping_patience needs validation data: set "
                        "validation_fraction > 0 or pass fit_decoders(..., validation=...)")
    folder = est.log_dir if est.log_dir is not None else est.checkpoint_dir
    logger = (EpochLogger(folder, DECODER_STAGE, est.history_,
                          tensorboard=est.log_dir is not None) if folder is not None else None)
    try:
        history = train_stage(decoder_stage(est.model_, decoders, n_epochs), data, config,
                              validation_data, on_epoch_end=logger)
    finally:
        if logger is not None:
            logger.close()
    est.decoders_ = decoders.eval()
    est.history_[DECODER_STAGE] = history


def _validation(est: DisentangledSSL, held: Inputs | None) -> object:
    if held is None:
        return None
    data = est._device_data(held)
    return TensorBatches(data, int(est.batch_size)) if isinstance(data, list) else data


def drop_decoders(est: DisentangledSSL) -> None:
    """Forget the decoders (the encoders they were trained on are about to change)."""
    est.__dict__.pop("decoders_", None)
    history = getattr(est, "history_", None)
    if isinstance(history, dict):
        history.pop(DECODER_STAGE, None)


# ---------------------------------------------------------------------------- inference
def _unscale(est: DisentangledSSL, i: int, output: Tensor) -> Tensor:
    """A decoded (B, d) vector or (B, T, d) sequence batch in the input's units (the inverse
    of ``standardize``'s per-feature scaling; identity without it)."""
    mean = getattr(est.model_, f"input_mean_{i}", None)
    if mean is None:
        return output
    return output * getattr(est.model_, f"input_scale_{i}") + mean


def _as_views(views: object, what: str, n_mod: int) -> list[Tensor]:
    if not isinstance(views, (list, tuple)):
        raise DSSLError(f"{what} must be a list of one array per modality, [X1, X2], got "
                        f"{type(views).__name__}")
    if len(views) != n_mod:
        raise DSSLError(f"{what} has {len(views)} view{'s' if len(views) != 1 else ''} but the "
                        f"model was fitted on {n_mod} modalities; pass one array per modality, "
                        "[X1, X2]")
    return list(views)


def _checked_views(est: DisentangledSSL, views: list[object], what: str) -> list[Tensor]:
    """The views of ``what`` validated by the fitted kinds (and paired row by row)."""
    inputs = read_inputs(tuple(views), batch_size=int(est.batch_size), seed=0, num_workers=0,
                         pin_memory=False)
    assert inputs.tensors is not None
    names = [f"{what}[{k}]" for k in range(len(inputs.tensors))]
    check_paired(inputs.tensors, names)
    return [kind.check(t, name) for kind, t, name in zip(est._kinds(), inputs.tensors, names)]


@torch.no_grad()
def counterfactual(est: DisentangledSSL, specific_from: object, shared_from: object, *,
                   batch_size: int = 8192) -> list[np.ndarray]:
    """Per modality i, ``decoder_i(shared_i(b_k), specific_i(a_k))`` for every row k, where
    ``a = specific_from`` and ``b = shared_from`` (see
    :meth:`DisentangledSSL.counterfactual`)."""
    decoders = require_decoders(est, "counterfactual")
    n_mod = len(est._kinds())
    a = _as_views(specific_from, "specific_from", n_mod)
    b = _as_views(shared_from, "shared_from", n_mod)
    a_t = _checked_views(est, a, "specific_from")
    b_t = _checked_views(est, b, "shared_from")
    if a_t[0].shape[0] != b_t[0].shape[0]:
        raise DSSLError(f"specific_from has {a_t[0].shape[0]} rows but shared_from has "
                        f"{b_t[0].shape[0]}; row k of the counterfactual combines row k of "
                        "each, so give them the same number of rows")
    model, device = est.model_.eval(), next(decoders.parameters()).device
    out: list[np.ndarray] = []
    for i in range(n_mod):
        parts = []
        for start in range(0, int(a_t[i].shape[0]), batch_size):
            xa = apply_scaler(model, i, a_t[i][start:start + batch_size].to(device))
            xb = apply_scaler(model, i, b_t[i][start:start + batch_size].to(device))
            specific = model_codes(model, i, xa)[1]
            decoded = decoders.decode(i, model.shared_embedding(i, xb), specific)
            parts.append(_unscale(est, i, decoded).float().cpu().numpy())
        out.append(np.concatenate(parts))
    return out


def _modality_number(value: object, name: str, n_mod: int) -> int:
    if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
            or not 1 <= int(value) <= n_mod):
        raise DSSLError(f"{name} must be a modality number, 1 to {n_mod}, got {value!r}")
    return int(value) - 1


@torch.no_grad()
def predict_modality(est: DisentangledSSL, X: object, *, source: int, target: int,
                     batch_size: int = 8192) -> np.ndarray:
    """Modality ``target`` decoded from modality ``source``'s shared code, the specific code
    of ``target`` at its training mean (see :meth:`DisentangledSSL.predict_modality`)."""
    decoders = require_decoders(est, "predict_modality")
    n_mod = len(est._kinds())
    s = _modality_number(source, "source", n_mod)
    t = _modality_number(target, "target", n_mod)
    if isinstance(X, (list, tuple)) and not (
            len(X) == 2 and getattr(X[1], "ndim", None) == 1):  # not a (values, lengths) pair
        raise DSSLError(f"predict_modality reads one array, modality {s + 1}'s rows (X{s + 1}); "
                        f"got a list of {len(X)}")
    x = est._kinds()[s].check(as_batch_tensor(X, f"X{s + 1}"), f"X{s + 1}")
    model, device = est.model_.eval(), next(decoders.parameters()).device
    fill = decoders.mean_specific(t)
    parts = []
    for start in range(0, int(x.shape[0]), batch_size):
        xs = apply_scaler(model, s, x[start:start + batch_size].to(device))
        shared = model.shared_embedding(s, xs)
        decoded = decoders.decode(t, shared, fill.expand(shared.shape[0], -1), shared_stats=s)
        parts.append(_unscale(est, t, decoded).float().cpu().numpy())
    if not parts:
        raise DSSLError(f"X{s + 1} has no rows")
    return np.concatenate(parts)
