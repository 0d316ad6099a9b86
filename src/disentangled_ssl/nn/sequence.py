"""The default encoder of the "sequence" modality kind: a small Transformer over time steps.

A sequence batch is a float tensor (B, T, d). With ``masked=True`` it is (B, T, d + 1) and
the LAST channel is the validity mask: 1.0 at real time steps, 0.0 at padding (padding may be
anywhere; a row may be fully valid or fully padded). Padded steps are ignored exactly: their
values (even NaN) never reach the output.

The building blocks shared with the token encoder and the sequence decoder live here too:
:func:`sinusoidal_positions`, :func:`masked_mean` and :class:`TransformerPool`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError


def check_positive_ints(owner: str, **values: object) -> None:
    """Raise :class:`DSSLError` unless every value is a positive ``int`` (bools rejected)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DSSLError(f"{owner}: {name} must be a positive integer, got {value!r}")


def check_transformer_args(owner: str, d_model: int, n_heads: int, n_layers: int,
                           dim_feedforward: int, dropout: float, max_len: int) -> None:
    """Validate the shape arguments of a Transformer stack (messages name ``owner``;
    ``n_layers`` may be 0: no attention, a bag of the steps)."""
    check_positive_ints(owner, d_model=d_model, n_heads=n_heads,
                        dim_feedforward=dim_feedforward, max_len=max_len)
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 0:
        raise DSSLError(f"{owner}: n_layers must be a non-negative integer (0: no attention "
                        f"layers, the mean of the step embeddings), got {n_layers!r}")
    if d_model % n_heads:
        raise DSSLError(f"{owner}: d_model={d_model} must be divisible by n_heads={n_heads} "
                        f"(each head gets d_model / n_heads dimensions); e.g. use "
                        f"n_heads={math.gcd(d_model, n_heads)} or d_model="
                        f"{n_heads * max(1, round(d_model / n_heads))}")
    if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
        raise DSSLError(f"{owner}: dropout must be in [0, 1), got {dropout!r}")


def sinusoidal_positions(max_len: int, d_model: int) -> Tensor:
    """(max_len, d_model) fixed positional encoding of Vaswani et al. (2017):
    ``PE[t, 2i] = sin(t / 10000^(2i/d))``, ``PE[t, 2i+1] = cos(t / 10000^(2i/d))`` (an odd
    ``d_model`` drops the last cosine)."""
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32)
                     * (-math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq)[:, : d_model // 2]
    return pe


def masked_mean(h: Tensor, valid: Tensor) -> Tensor:
    """Mean of (B, T, D) ``h`` over the steps where the (B, T) bool ``valid`` is True ->
    (B, D); a row without valid steps gives zeros (not NaN)."""
    weight = valid.to(h.dtype).unsqueeze(-1)
    total = (h * weight).sum(dim=1)
    return total / weight.sum(dim=1).clamp_min(1.0)


class TransformerPool(nn.Module):
    """Positional encoding + Transformer encoder + masked mean pooling:
    (B, T, d_model) embeddings and a (B, T) validity mask -> (B, d_model).

    The sinusoidal encoding is ADDED to the embeddings before the first attention layer, so
    the pooled output can depend on the order of the steps (attention and mean pooling alone
    are permutation invariant). Pre-LayerNorm layers (``norm_first=True``), GELU.

    Padded keys are masked out of attention (``src_key_padding_mask``) and padded steps out of
    the pooling. A row without any valid step attends over all its (zeroed) steps instead of
    none — a softmax over no keys would be NaN — and pools to zeros.

    ``n_layers=0`` has no attention and no positional encoding: the output is the masked mean
    of the embeddings, a bag of steps that ignores their order (for token ids: a learned
    bag of words).

    Args:
        d_model, n_heads, n_layers, dim_feedforward, dropout: the Transformer's shape.
        max_len: longest sequence accepted (length of the positional table).
        owner: class name used in error messages.
    """

    def __init__(self, d_model: int, n_heads: int, n_layers: int, dim_feedforward: int,
                 dropout: float, max_len: int, owner: str = "TransformerPool") -> None:
        super().__init__()
        check_transformer_args(owner, d_model, n_heads, n_layers, dim_feedforward, dropout,
                               max_len)
        self.owner, self.max_len, self.d_model = owner, max_len, d_model
        # Recomputed at construction, so not saved in state_dict.
        self.register_buffer("positions", sinusoidal_positions(max_len, d_model),
                             persistent=False)
        self.encoder: nn.TransformerEncoder | None = None
        if n_layers > 0:
            layer = nn.TransformerEncoderLayer(
                d_model, n_heads, dim_feedforward, dropout, activation="gelu",
                batch_first=True, norm_first=True)
            # Nested tensors are unavailable with norm_first and would only warn.
            self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)

    def check_length(self, steps: int, what: str = "time steps") -> None:
        """Raise :class:`DSSLError` when ``steps`` exceeds ``max_len``."""
        if steps > self.max_len:
            raise DSSLError(
                f"{self.owner}: the input has {steps} {what}, more than max_len={self.max_len} "
                f"(the length of its positional encoding); build it with max_len >= {steps} "
                f"or shorten the inputs")

    def forward(self, h: Tensor, valid: Tensor) -> Tensor:
        """(B, T, d_model) embeddings, (B, T) bool validity -> (B, d_model) pooled features."""
        steps = h.shape[1]
        self.check_length(steps)
        if self.encoder is None:  # n_layers=0: a bag of the steps
            return masked_mean(h, valid)
        h = h + self.positions[:steps].to(h.dtype)
        any_valid = valid.any(dim=1, keepdim=True)
        # True = ignore this key; fully padded rows attend everywhere (pooled to zeros below).
        padding = ~valid & any_valid
        h = self.encoder(h, src_key_padding_mask=padding)
        return masked_mean(h, valid)


class SequenceEncoder(nn.Module):
    """Transformer encoder of a sequence modality: (B, T, d) [or (B, T, d + 1) with the mask
    channel last when ``masked``] -> (B, out_dim).

    Linear projection of the d features to ``d_model`` → + sinusoidal positions → pre-LN
    Transformer encoder (padded steps masked out) → mean over the valid steps → LayerNorm →
    Linear to ``out_dim``. Padded steps are zeroed before the projection, so their values
    (even NaN) never matter; a fully padded row gives a finite output (that of zero features).
    Inputs are cast to the module's dtype (float32 by default).

    Args:
        in_features: d, the features per time step (without the mask channel).
        out_dim: output size.
        d_model: Transformer width.
        n_heads: attention heads (must divide ``d_model``).
        n_layers: Transformer layers.
        dim_feedforward: hidden width of each layer's feed-forward block.
        dropout: dropout inside the Transformer layers.
        max_len: longest T accepted.
        masked: whether inputs carry the validity mask as their last channel.
    """

    def __init__(self, in_features: int, out_dim: int, *, d_model: int = 64, n_heads: int = 4,
                 n_layers: int = 2, dim_feedforward: int = 128, dropout: float = 0.0,
                 max_len: int = 1024, masked: bool = False) -> None:
        super().__init__()
        check_positive_ints("SequenceEncoder", in_features=in_features, out_dim=out_dim)
        self.in_features, self.out_dim, self.masked = in_features, out_dim, bool(masked)
        self.proj = nn.Linear(in_features, d_model)
        self.body = TransformerPool(d_model, n_heads, n_layers, dim_feedforward, dropout,
                                    max_len, owner="SequenceEncoder")
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, out_dim)

    @property
    def max_len(self) -> int:
        return self.body.max_len

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Check a batch; return its (B, T, d) features (padding zeroed) and (B, T) bool
        validity (mask channel > 0.5)."""
        channels = self.in_features + self.masked
        if x.dim() != 3 or x.shape[-1] != channels:
            layout = (f"(B, T, {self.in_features} + 1), the validity mask last" if self.masked
                      else f"(B, T, {self.in_features})")
            raise DSSLError(
                f"SequenceEncoder expects a batch of shape {layout}, got {tuple(x.shape)}; "
                f"check in_features and masked")
        if not x.is_floating_point():
            raise DSSLError(f"SequenceEncoder expects a floating-point tensor, got {x.dtype}; "
                            f"convert with .float()")
        x = x.to(self.proj.weight.dtype)
        if not self.masked:
            return x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        valid = x[..., -1] > 0.5
        return x[..., :-1].masked_fill(~valid.unsqueeze(-1), 0.0), valid

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, d) or (B, T, d + 1) -> (B, out_dim)."""
        self.body.check_length(x.shape[1] if x.dim() == 3 else 0)
        features, valid = self.split(x)
        return self.out(self.norm(self.body(self.proj(features), valid)))
