"""Data: the paper's synthetic generator, paired containers, augmentations."""

from disentangled_ssl.data.augment import VectorAugment, augment_vectors
from disentangled_ssl.data.readers import (
    MultimodalData,
    MultimodalDataset,
    read_multimodal,
    read_table,
)
from disentangled_ssl.data.synthetic import LABEL_NAMES, PairedData, make_synthetic

__all__ = [
    "LABEL_NAMES",
    "MultimodalData",
    "MultimodalDataset",
    "PairedData",
    "VectorAugment",
    "augment_vectors",
    "make_synthetic",
    "read_multimodal",
    "read_table",
]
