"""Data: the paper's synthetic generator, paired containers, augmentations per modality kind,
batch sources for the loop, padded sequences, toy data of every kind."""

from disentangled_ssl.data.augment import (
    ImageAugment,
    SequenceAugment,
    TokenAugment,
    VectorAugment,
    augment_vectors,
)
from disentangled_ssl.data.loaders import EpochSampler, LoaderBatches, TensorBatches
from disentangled_ssl.data.readers import (
    MultimodalData,
    MultimodalDataset,
    read_multimodal,
    read_table,
)
from disentangled_ssl.data.sequences import pack_lengths, pack_sequences
from disentangled_ssl.data.synthetic import (
    LABEL_NAMES,
    PairedData,
    SyntheticStream,
    make_synthetic,
    shared_recoverability,
    true_counterfactual,
)
from disentangled_ssl.data.toy import make_image_captions, make_sequence_pair

__all__ = [
    "LABEL_NAMES",
    "EpochSampler",
    "ImageAugment",
    "LoaderBatches",
    "MultimodalData",
    "MultimodalDataset",
    "PairedData",
    "SequenceAugment",
    "SyntheticStream",
    "TensorBatches",
    "TokenAugment",
    "VectorAugment",
    "augment_vectors",
    "make_image_captions",
    "make_sequence_pair",
    "make_synthetic",
    "pack_lengths",
    "pack_sequences",
    "read_multimodal",
    "read_table",
    "shared_recoverability",
    "true_counterfactual",
]
