"""Encoders and distributions."""

from disentangled_ssl.nn.encoders import MLP

__all__ = ["MLP"]
