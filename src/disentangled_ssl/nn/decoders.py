"""Decoders from a latent vector back to a modality (the DMVAE baseline reconstructs inputs).

Each decoder maps (B, latent_dim) to the modality's shape and has
``reconstruction_error(target, output) -> (B,)``, the per-row mean squared error; its mean
over rows is the reconstruction loss.
"""

from __future__ import annotations

from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.nn.encoders import MLP
from disentangled_ssl.nn.sequence import (
    check_positive_ints,
    check_transformer_args,
    sinusoidal_positions,
)


class VectorDecoder(nn.Module):
    """MLP decoder ``latent_dim → hidden_dim (× n_hidden_layers) → out_dim`` (an
    :class:`~disentangled_ssl.nn.encoders.MLP`; the defaults build the same network as the
    DMVAE decoders of the vector case).

    Args:
        latent_dim: input (latent) size.
        out_dim: features of the reconstructed vector.
        hidden_dim, n_hidden_layers, activation, init: the MLP's shape (see :class:`MLP`).
    """

    def __init__(self, latent_dim: int, out_dim: int, hidden_dim: int = 512,
                 n_hidden_layers: int = 1, activation: str = "relu",
                 init: str = "normal") -> None:
        super().__init__()
        self.net = MLP(latent_dim, out_dim, hidden_dim, n_hidden_layers, activation, init)
        self.latent_dim, self.out_dim = latent_dim, out_dim

    def forward(self, z: Tensor) -> Tensor:
        """(B, latent_dim) -> (B, out_dim)."""
        return self.net(z)

    def reconstruction_error(self, target: Tensor, output: Tensor) -> Tensor:
        """(B, out_dim) target and output -> (B,) mean over features of the squared error
        (its mean over rows is ``F.mse_loss(output, target)``)."""
        target = target.reshape(target.shape[0], -1)
        if target.shape != output.shape:
            raise DSSLError(f"VectorDecoder.reconstruction_error: target has shape "
                            f"{tuple(target.shape)} (flattened), output {tuple(output.shape)}")
        return (output - target.to(output.dtype)).pow(2).mean(dim=1)


class SequenceDecoder(nn.Module):
    """Transformer decoder of a sequence modality: (B, latent_dim) -> (B, steps, features).

    One learned query per time step (initialised with the sinusoidal positional encoding) plus
    the latent, projected to ``d_model`` and added to every query → pre-LN Transformer encoder
    over the ``steps`` queries (no masking: every step is decoded) → LayerNorm → Linear to
    ``features``.

    With ``masked=True`` the TARGETS carry the validity mask as their last channel,
    (B, steps, features + 1); the output never includes it, and :meth:`reconstruction_error`
    scores only the valid steps.

    Args:
        latent_dim: input (latent) size.
        steps: T of the sequences.
        features: d, features per step (without the mask channel).
        d_model, n_heads, n_layers, dim_feedforward, dropout: the Transformer's shape.
        masked: whether targets carry the validity mask channel.
    """

    def __init__(self, latent_dim: int, steps: int, features: int, *, d_model: int = 64,
                 n_heads: int = 4, n_layers: int = 2, dim_feedforward: int = 128,
                 dropout: float = 0.0, masked: bool = False) -> None:
        super().__init__()
        check_positive_ints("SequenceDecoder", latent_dim=latent_dim, steps=steps,
                            features=features)
        check_transformer_args("SequenceDecoder", d_model, n_heads, n_layers, dim_feedforward,
                               dropout, steps)
        self.latent_dim, self.steps, self.features = latent_dim, steps, features
        self.masked = bool(masked)
        self.queries = nn.Parameter(sinusoidal_positions(steps, d_model))
        self.latent = nn.Linear(latent_dim, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward, dropout, activation="gelu", batch_first=True,
            norm_first=True)
        self.decoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, features)

    def forward(self, z: Tensor) -> Tensor:
        """(B, latent_dim) -> (B, steps, features)."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise DSSLError(f"SequenceDecoder expects (B, latent_dim={self.latent_dim}) "
                            f"latents, got shape {tuple(z.shape)}")
        h = self.queries.unsqueeze(0) + self.latent(z).unsqueeze(1)
        return self.out(self.norm(self.decoder(h)))

    def reconstruction_error(self, target: Tensor, output: Tensor) -> Tensor:
        """Per-row mean squared error over the valid steps and the features -> (B,).

        ``target`` is (B, steps, features), or (B, steps, features + 1) with the mask channel
        last when ``masked``; ``output`` is (B, steps, features). A row without valid steps
        scores 0. Rows are averaged over their own valid steps (a short row weighs as much as
        a long one in the mean over rows).
        """
        expected = (self.steps, self.features + self.masked)
        if target.dim() != 3 or tuple(target.shape[1:]) != expected:
            raise DSSLError(f"SequenceDecoder.reconstruction_error: target has shape "
                            f"{tuple(target.shape)}, expected (B, {expected[0]}, {expected[1]})"
                            f"{' (the mask channel last)' if self.masked else ''}")
        if output.shape != (target.shape[0], self.steps, self.features):
            raise DSSLError(f"SequenceDecoder.reconstruction_error: output has shape "
                            f"{tuple(output.shape)}, expected ({target.shape[0]}, {self.steps}, "
                            f"{self.features})")
        target = target.to(output.dtype)
        if not self.masked:
            return (output - target).pow(2).mean(dim=(1, 2))
        valid = target[..., -1:] > 0.5  # (B, T, 1)
        # Padded targets are replaced before the difference, so NaN there cannot leak into
        # the error or its gradient.
        values = target[..., :-1].masked_fill(~valid, 0.0)
        sq = (output - values).pow(2) * valid
        count = valid.sum(dim=(1, 2)).to(output.dtype) * self.features
        return sq.sum(dim=(1, 2)) / count.clamp_min(1.0)
