"""Specific encoders that also read a condition vector (DisentangledSSL's step 2).

In step 2 of DisentangledSSL the modality-specific encoder reads the sample AND its frozen
shared code. For vector modalities the library concatenates ``[x, shared]`` at the input of
an MLP. For sequences, images and tokens the input is not a vector, and the shared code is:
it could be broadcast over every time step / pixel / token and concatenated as extra input
channels (early fusion), but that needs a backbone built for the wider input and rules out an
arbitrary custom backbone. :class:`ConditionedEncoder` fuses late instead: the backbone
encodes the sample alone to a feature vector, and a small MLP reads ``[features, condition]``.
The backbone stays unchanged (any module mapping (B, ...) to (B, feature_dim) works), and
the head can still model any interaction of the features with the shared code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.nn.encoders import MLP
from disentangled_ssl.nn.sequence import check_positive_ints


class ConditionedEncoder(nn.Module):
    """``forward(x, condition) = head(cat([backbone(x), condition], dim=1))``.

    Args:
        backbone: module mapping a batch (B, ...) to (B, feature_dim), e.g. a
            :class:`~disentangled_ssl.nn.sequence.SequenceEncoder` built with
            ``out_dim=feature_dim``.
        feature_dim: size of the backbone's output.
        condition_dim: size of the condition vector (the shared code).
        out_dim: output size.
        hidden_dim: width of the head's single hidden layer (ReLU, PyTorch's default init).
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, condition_dim: int, out_dim: int,
                 hidden_dim: int = 256) -> None:
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise DSSLError(f"ConditionedEncoder: backbone must be a torch.nn.Module, got "
                            f"{type(backbone).__name__}")
        check_positive_ints("ConditionedEncoder", feature_dim=feature_dim,
                            condition_dim=condition_dim, out_dim=out_dim, hidden_dim=hidden_dim)
        self.backbone = backbone
        self.feature_dim, self.condition_dim, self.out_dim = feature_dim, condition_dim, out_dim
        self.head = MLP(feature_dim + condition_dim, out_dim, hidden_dim, 1, init="default")

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        """(B, ...) sample, (B, condition_dim) condition -> (B, out_dim)."""
        features = self.backbone(x)
        batch = features.shape[0]
        if features.shape != (batch, self.feature_dim):
            raise DSSLError(f"ConditionedEncoder: the backbone returned shape "
                            f"{tuple(features.shape)}, expected (B, feature_dim="
                            f"{self.feature_dim}); set feature_dim to the backbone's output size")
        if condition.shape != (batch, self.condition_dim):
            raise DSSLError(f"ConditionedEncoder: condition has shape {tuple(condition.shape)}, "
                            f"expected ({batch}, condition_dim={self.condition_dim})")
        return self.head(torch.cat([features, condition.to(features.dtype)], dim=1))
