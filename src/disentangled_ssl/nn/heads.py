"""Extra modules some baselines need: Gaussian posterior encoders (DMVAE) and cosine critics
(FactorCL)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.nn.encoders import MLP


class GaussianEncoder(nn.Module):
    """An MLP giving a diagonal Gaussian posterior ``N(mu(x), exp(logvar(x)))``.

    ``forward`` returns the mean only, so the module can stand wherever a deterministic
    encoder is expected (``transform`` returns posterior means, as the DMVAE baseline of the
    DisentangledSSL authors does); :meth:`posterior` returns both parameters.

    Args:
        in_dim: input features.
        out_dim: latent size (the MLP outputs ``2 · out_dim`` numbers: means then log-variances).
        hidden_dim, n_hidden_layers, activation, init: the MLP's shape (see :class:`MLP`).
        net: a network to use instead of the MLP (``in_dim`` is then ignored).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 512,
                 n_hidden_layers: int = 1, activation: str = "relu", init: str = "normal",
                 net: nn.Module | None = None) -> None:
        super().__init__()
        self.net = net if net is not None else MLP(in_dim, 2 * out_dim, hidden_dim,
                                                   n_hidden_layers, activation, init)
        self.out_dim = out_dim

    @classmethod
    def around(cls, net: nn.Module, out_dim: int) -> GaussianEncoder:
        """A Gaussian posterior read from any network mapping (B, ...) to (B, 2 · out_dim)
        (means, then log-variances), e.g. a sequence or image encoder."""
        return cls(0, out_dim, net=net)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, in_dim) -> (mu, logvar), each (B, out_dim)."""
        mu, logvar = self.net(x).chunk(2, dim=-1)
        return mu, logvar

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_dim) -> (B, out_dim) posterior means."""
        return self.posterior(x)[0]


class CosineCritic(nn.Module):
    """Separable critic ``f(a, b) = cos(g(a), h(b)) / temperature`` over all pairs of a batch.

    Bounded scores keep the NCE-CLUB upper bound of FactorCL stable; a separable critic
    costs one (B, B) matrix product instead of an MLP over all B² concatenated pairs (the
    concatenation critic of the FactorCL code).

    Args:
        a_dim, b_dim: input sizes of the two arguments.
        hidden_dim: width of the projection MLPs (one hidden layer each).
        out_dim: projection size.
        temperature: divides the cosine.
    """

    def __init__(self, a_dim: int, b_dim: int, hidden_dim: int = 256, out_dim: int = 128,
                 temperature: float = 0.1) -> None:
        super().__init__()
        if not temperature > 0:
            raise DSSLError(f"critic temperature must be positive, got {temperature!r}")
        self.g = MLP(a_dim, out_dim, hidden_dim, 1, init="default")
        self.h = MLP(b_dim, out_dim, hidden_dim, 1, init="default")
        self.temperature = float(temperature)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """a: (B, a_dim), b: (B, b_dim) -> (B, B) scores; entry (i, j) scores ``(a_i, b_j)``."""
        return F.normalize(self.g(a), dim=-1) @ F.normalize(self.h(b), dim=-1).T / self.temperature
