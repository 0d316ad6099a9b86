"""The multimodal model: one shared and (optionally) one specific encoder per modality.

DisentangledSSL's specific encoder of modality i reads ``[x_i, shared_i(x_i)]`` (the sample and
its own frozen shared code), as in the authors' implementation; with custom encoders this
conditioning can be turned off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.nn.conditioned import ConditionedEncoder
from disentangled_ssl.nn.encoders import MLP


class MultimodalModel(nn.Module):
    """Shared encoders ``shared[i]`` and specific encoders ``specific[i]`` for M modalities.

    Args:
        in_dims: input features per modality (used to build the default MLPs).
        shared_dim, specific_dim: embedding sizes.
        hidden_dim, n_hidden_layers, activation, init: the default MLPs' shape.
        shared_encoders, specific_encoders: optional custom ``nn.Module`` per modality replacing
            the default MLPs (each maps (B, ...) to (B, shared_dim) / (B, specific_dim)).
        condition_specific_on_shared: feed ``[x_i, shared_i(x_i)]`` to the specific encoder
            (requires flat vector inputs); otherwise it reads ``x_i`` alone.
        with_specific: build specific encoders at all (False for shared-only methods).
        extra_modules: further trainable modules a method needs (e.g. DMVAE's decoders,
            FactorCL's critics), held in ``self.extra`` (an ``nn.ModuleDict``) so that they are
            saved and loaded with the encoders; empty by default (adds no weights).
    """

    def __init__(
        self,
        in_dims: Sequence[int],
        shared_dim: int = 100,
        specific_dim: int = 100,
        hidden_dim: int = 512,
        n_hidden_layers: int = 1,
        activation: str = "relu",
        init: str = "normal",
        shared_encoders: Sequence[nn.Module] | None = None,
        specific_encoders: Sequence[nn.Module] | None = None,
        condition_specific_on_shared: bool = True,
        with_specific: bool = True,
        extra_modules: Mapping[str, nn.Module] | None = None,
    ) -> None:
        super().__init__()
        n_mod = len(in_dims)
        if n_mod < 2:
            raise DSSLError(f"need at least 2 modalities, got {n_mod}")
        for name, given in (("shared_encoders", shared_encoders),
                            ("specific_encoders", specific_encoders)):
            if given is not None and len(given) != n_mod:
                raise DSSLError(f"{name} has {len(given)} modules for {n_mod} modalities")
        self.in_dims = [int(d) for d in in_dims]
        self.shared_dim, self.specific_dim = shared_dim, specific_dim
        self.condition_specific_on_shared = condition_specific_on_shared

        def mlp(i: int, o: int) -> MLP:
            return MLP(i, o, hidden_dim, n_hidden_layers, activation, init)

        self.shared = nn.ModuleList(
            list(shared_encoders) if shared_encoders is not None
            else [mlp(d, shared_dim) for d in self.in_dims]
        )
        extra = shared_dim if condition_specific_on_shared else 0
        if not with_specific:
            self.specific = nn.ModuleList()
        elif specific_encoders is not None:
            self.specific = nn.ModuleList(list(specific_encoders))
        else:
            self.specific = nn.ModuleList([mlp(d + extra, specific_dim) for d in self.in_dims])
        self.extra = nn.ModuleDict(dict(extra_modules or {}))

    @property
    def n_modalities(self) -> int:
        return len(self.shared)

    @property
    def has_specific(self) -> bool:
        return len(self.specific) > 0

    def shared_embedding(self, i: int, x: Tensor) -> Tensor:
        """(B, d_i) -> (B, shared_dim): the deterministic shared code of modality i."""
        return self.shared[i](x)

    def specific_embedding(self, i: int, x: Tensor, shared: Tensor | None = None) -> Tensor:
        """(B, ...) -> (B, specific_dim). ``shared`` is ``shared_embedding(i, x)`` if known.

        A :class:`~disentangled_ssl.nn.conditioned.ConditionedEncoder` reads ``(x, shared)``
        (late fusion, for sequences, images and tokens); otherwise, with
        ``condition_specific_on_shared``, the encoder reads ``[x_i.flatten(1), shared]``."""
        if not self.has_specific:
            raise DSSLError("this model has no specific encoders (shared-only method)")
        encoder = self.specific[i]
        if isinstance(encoder, ConditionedEncoder):
            return encoder(x, shared if shared is not None else self.shared_embedding(i, x))
        if self.condition_specific_on_shared:
            if shared is None:
                shared = self.shared_embedding(i, x)
            x = torch.cat([x.flatten(1), shared], dim=1)
        return self.specific[i](x)
