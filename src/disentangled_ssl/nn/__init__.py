"""Encoders per modality kind, decoders, heads and the modality kinds themselves."""

from disentangled_ssl.nn.conditioned import ConditionedEncoder
from disentangled_ssl.nn.decoders import SequenceDecoder, VectorDecoder
from disentangled_ssl.nn.encoders import MLP
from disentangled_ssl.nn.heads import CosineCritic, GaussianEncoder
from disentangled_ssl.nn.image import ImageEncoder
from disentangled_ssl.nn.modalities import KINDS, Image, Modality, Sequence, Tokens, Vector
from disentangled_ssl.nn.sequence import SequenceEncoder
from disentangled_ssl.nn.tokens import TokenEncoder

__all__ = ["KINDS", "MLP", "ConditionedEncoder", "CosineCritic", "GaussianEncoder", "Image",
           "ImageEncoder", "Modality", "Sequence", "SequenceDecoder", "SequenceEncoder",
           "TokenEncoder", "Tokens", "Vector", "VectorDecoder"]
