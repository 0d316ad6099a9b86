"""Extra modules some baselines need: Gaussian posterior encoders (DMVAE), cosine critics
(FactorCL), and the trunks of ``encoder_layout="trunk"``: one network per modality whose
output feeds several codes (:class:`Trunk`, :class:`GaussianTrunk`), each code read through a
parameter-free view (:class:`TrunkHead`, :class:`GaussianHead`) that stands in the model's
``shared`` / ``specific`` slots."""

from __future__ import annotations

from collections.abc import Mapping

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


class _View(nn.Module):
    """A parameter-free view of one output of a trunk. The trunk is held outside the module
    tree (in a tuple), so that it is registered, saved, loaded and optimised once, where its
    owner puts it (``MultimodalModel.extra["trunks"]``), however many views read it."""

    def __init__(self, trunk: nn.Module, name: str, names: list[str]) -> None:
        super().__init__()
        if name not in names:
            raise DSSLError(f"the trunk has no output {name!r}; its outputs are "
                            f"{', '.join(names)}")
        self._trunk = (trunk,)  # a tuple: not a submodule
        self.name = name

    @property
    def trunk(self) -> nn.Module:
        return self._trunk[0]

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


class Trunk(nn.Module):
    """One backbone whose features feed several named heads (FactorCL's layout: one network
    per modality with a shared and a unique head).

    Args:
        backbone: (B, ...) -> (B, features).
        heads: name -> module reading the (B, features) output.
    """

    def __init__(self, backbone: nn.Module, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict(dict(heads))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """(B, ...) -> every head's output, from one pass of the backbone."""
        features = self.backbone(x)
        return {name: head(features) for name, head in self.heads.items()}

    def head(self, name: str) -> TrunkHead:
        """The encoder (B, ...) -> head ``name``'s output, sharing this trunk's weights."""
        return TrunkHead(self, name)


class TrunkHead(_View):
    """One head of a :class:`Trunk` as an encoder (no parameters of its own)."""

    def __init__(self, trunk: Trunk, name: str) -> None:
        super().__init__(trunk, name, list(trunk.heads))

    def forward(self, x: Tensor) -> Tensor:
        trunk = self.trunk
        return trunk.heads[self.name](trunk.backbone(x))


class GaussianTrunk(nn.Module):
    """One network giving several diagonal Gaussian posteriors (DMVAE's layout: one encoder
    per modality whose output is split into private mean, private log-variance, shared mean,
    shared log-variance).

    Args:
        net: (B, ...) -> (B, 2 · Σ dims).
        dims: latent name -> size, in output order; each latent takes its means, then its
            log-variances.
    """

    def __init__(self, net: nn.Module, dims: Mapping[str, int]) -> None:
        super().__init__()
        self.net = net
        self.dims = {str(k): int(v) for k, v in dims.items()}

    def posteriors(self, x: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
        """(B, ...) -> name -> (mu, logvar), each (B, dim), from one pass of the network."""
        out = self.net(x)
        sizes = [d for d in self.dims.values() for _ in range(2)]
        if out.shape[-1] != sum(sizes):
            dims = " + ".join(str(d) for d in self.dims.values())
            raise DSSLError(f"GaussianTrunk: the network returned {out.shape[-1]} numbers per "
                            f"row, expected {sum(sizes)} (2 x ({dims}))")
        chunks = out.split(sizes, dim=-1)
        return {name: (chunks[2 * k], chunks[2 * k + 1]) for k, name in enumerate(self.dims)}

    def head(self, name: str) -> GaussianHead:
        """The Gaussian encoder of latent ``name``, sharing this trunk's weights."""
        return GaussianHead(self, name)


class GaussianHead(_View):
    """One posterior of a :class:`GaussianTrunk` as a Gaussian encoder (no parameters of its
    own): :meth:`posterior` gives (mu, logvar), ``forward`` the mean, as
    :class:`GaussianEncoder`."""

    def __init__(self, trunk: GaussianTrunk, name: str) -> None:
        super().__init__(trunk, name, list(trunk.dims))

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.trunk.posteriors(x)[self.name]

    def forward(self, x: Tensor) -> Tensor:
        return self.posterior(x)[0]
