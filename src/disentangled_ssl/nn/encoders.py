"""Encoders: MLPs whose depth and width are parameters.

The default (one hidden layer of 512 ReLU units, weights ~ N(0, 0.01²)) is what the
DisentangledSSL authors' code builds for the synthetic task. Any ``torch.nn.Module`` mapping
(B, in_dim) to (B, out_dim) can be used instead through the Python API.
"""

from __future__ import annotations

from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
_INITS = ("normal", "xavier", "default")


class MLP(nn.Module):
    """Multi-layer perceptron ``in_dim → hidden_dim (× n_hidden_layers) → out_dim``.

    Args:
        in_dim: input features.
        out_dim: output features.
        hidden_dim: width of every hidden layer.
        n_hidden_layers: number of hidden layers (0 gives a linear map).
        activation: "relu", "tanh" or "gelu".
        init: "normal" (weights N(0, 0.01²), the authors' choice), "xavier" or "default"
            (PyTorch's default).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 512,
        n_hidden_layers: int = 1,
        activation: str = "relu",
        init: str = "normal",
    ) -> None:
        super().__init__()
        for name, value in {"in_dim": in_dim, "out_dim": out_dim, "hidden_dim": hidden_dim}.items():
            if not isinstance(value, int) or value < 1:
                raise DSSLError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(n_hidden_layers, int) or n_hidden_layers < 0:
            raise DSSLError(
                f"n_hidden_layers must be a non-negative integer, got {n_hidden_layers!r}"
            )
        if activation not in _ACTIVATIONS:
            raise DSSLError(
                f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}"
            )
        if init not in _INITS:
            raise DSSLError(f"unknown init {init!r}; choose one of {list(_INITS)}")
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(n_hidden_layers):
            layers += [nn.Linear(width, hidden_dim), _ACTIVATIONS[activation]()]
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim
        for module in self.net:
            if isinstance(module, nn.Linear):
                if init == "normal":
                    nn.init.normal_(module.weight, mean=0.0, std=0.01)
                elif init == "xavier":
                    nn.init.xavier_uniform_(module.weight)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_dim) -> (B, out_dim)."""
        return self.net(x)
