"""Encoders and distributions."""

from disentangled_ssl.nn.encoders import MLP
from disentangled_ssl.nn.heads import CosineCritic, GaussianEncoder

__all__ = ["MLP", "CosineCritic", "GaussianEncoder"]
