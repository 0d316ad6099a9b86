"""The decoder stage: per modality, a decoder from the frozen ``[shared_i, specific_i]`` codes
back to ``x_i`` (for counterfactuals and cross-modal prediction; not a method of its own).

It runs through the one loop like every other stage: :func:`decoder_stage` returns a
:class:`~disentangled_ssl.methods.base.Stage` whose trainable modules are the decoders and
whose frozen module is the whole fitted model, so training the decoders never changes an
encoder. The decoders read the codes standardised per dimension with their mean and standard
deviation over the training rows (:class:`CodeDecoders` holds them as buffers: saved with the
decoders, and the mean specific code is what cross-modal prediction fills in).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.methods.base import Stage
from disentangled_ssl.nn.model import MultimodalModel

#: The name of the stage in progress bars and ``history_``.
DECODER_STAGE = "decoder"


class CodeDecoders(nn.Module):
    """One decoder per modality reading the standardised codes ``[shared_i, specific_i]``.

    Args:
        decoders: per modality, a module (B, shared_dim + specific_dim) -> the modality's
            (B, ...) shape with ``reconstruction_error(target, output) -> (B,)`` (the kinds'
            decoders, :mod:`disentangled_ssl.nn.decoders`).
        shared_dim, specific_dim: the code sizes.

    Buffers ``code_mean_i`` and ``code_scale_i`` ((shared_dim + specific_dim,) each) hold the
    per-dimension mean and standard deviation of modality i's training codes (set by
    :meth:`set_code_statistics`; identity until then).
    """

    def __init__(self, decoders: Sequence[nn.Module], shared_dim: int, specific_dim: int
                 ) -> None:
        super().__init__()
        self.decoders = nn.ModuleList(list(decoders))
        self.shared_dim, self.specific_dim = int(shared_dim), int(specific_dim)
        width = self.shared_dim + self.specific_dim
        for i in range(len(self.decoders)):
            self.register_buffer(f"code_mean_{i}", torch.zeros(width))
            self.register_buffer(f"code_scale_{i}", torch.ones(width))

    def __len__(self) -> int:
        return len(self.decoders)

    def set_code_statistics(self, i: int, mean: Tensor, std: Tensor) -> None:
        """Store modality i's per-dimension code mean and std (a zero std becomes 1)."""
        scale = std.clone()
        scale[scale <= 1e-12] = 1.0
        getattr(self, f"code_mean_{i}").copy_(mean)
        getattr(self, f"code_scale_{i}").copy_(scale)

    def mean_specific(self, i: int) -> Tensor:
        """(specific_dim,) the mean specific code of modality i over the training rows."""
        return getattr(self, f"code_mean_{i}")[self.shared_dim:]

    def standardized(self, i: int, shared: Tensor, specific: Tensor,
                     shared_stats: int | None = None) -> Tensor:
        """The decoder input ``[shared, specific]`` standardised with modality i's code
        statistics (the shared part with modality ``shared_stats``'s when given: a shared
        code of another modality, for cross-modal prediction)."""
        if shared.shape[0] != specific.shape[0]:
            raise DSSLError(f"decode: {shared.shape[0]} shared codes but {specific.shape[0]} "
                            "specific codes")
        code = torch.cat([shared, specific.to(shared.dtype)], dim=1)
        mean, scale = getattr(self, f"code_mean_{i}"), getattr(self, f"code_scale_{i}")
        if shared_stats is not None and shared_stats != i:
            d = self.shared_dim
            mean = torch.cat([getattr(self, f"code_mean_{shared_stats}")[:d], mean[d:]])
            scale = torch.cat([getattr(self, f"code_scale_{shared_stats}")[:d], scale[d:]])
        return (code - mean) / scale

    def decode(self, i: int, shared: Tensor, specific: Tensor,
               shared_stats: int | None = None) -> Tensor:
        """(B, shared_dim) and (B, specific_dim) raw codes -> modality i's decoded (B, ...)
        (in the space the model reads its input: standardised when the estimator
        standardises). ``shared_stats``: see :meth:`standardized`."""
        return self.decoders[i](self.standardized(i, shared, specific, shared_stats))


def model_codes(model: MultimodalModel, i: int, x: Tensor) -> tuple[Tensor, Tensor]:
    """(shared_i(x), specific_i(x)) of modality i, as ``transform`` computes them."""
    shared = model.shared_embedding(i, x)
    return shared, model.specific_embedding(i, x, shared)


class DecoderObjective(nn.Module):
    """The decoder stage's objective: per modality, the mean over rows of the decoder's
    ``reconstruction_error`` (MSE over features; over the valid steps of a padded sequence)
    from the frozen codes of the un-augmented batch. ``loss`` is their sum (each decoder
    sees the gradient of its own modality only), reported per modality as ``mse<i>``."""

    def __init__(self, model: MultimodalModel, decoders: CodeDecoders) -> None:
        super().__init__()
        self.model, self.decoders = model, decoders

    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        if len(xs) != len(self.decoders):
            raise DSSLError(f"the decoder stage got {len(xs)} modalities for "
                            f"{len(self.decoders)} decoders")
        terms: dict[str, Tensor] = {}
        for i, x in enumerate(xs):
            with torch.no_grad():
                shared, specific = model_codes(self.model, i, x)
            output = self.decoders.decode(i, shared, specific)
            terms[f"mse{i + 1}"] = self.decoders.decoders[i].reconstruction_error(
                x, output).mean()
        return {"loss": sum(terms.values()), **terms}  # type: ignore[dict-item]


def decoder_stage(model: MultimodalModel, decoders: CodeDecoders, epochs: int) -> Stage:
    """The stage training ``decoders`` on ``model``'s frozen codes for ``epochs`` epochs."""
    return Stage(name=DECODER_STAGE, objective=DecoderObjective(model, decoders),
                 trainable=[decoders], frozen=[model], epochs=int(epochs))
