"""disentangled-ssl: shared and modality-specific representations of paired multimodal data.

Implements DisentangledSSL (Wang et al., "An Information Criterion for Controlled
Disentanglement of Multimodal Data", ICLR 2025, arXiv 2410.23996).
"""

from disentangled_ssl._errors import DSSLError, PerformanceWarning, TrainingDivergedError
from disentangled_ssl._version import __version__
from disentangled_ssl.data import (
    MultimodalDataset,
    PairedData,
    SyntheticStream,
    make_synthetic,
    pack_sequences,
)
from disentangled_ssl.estimator import DisentangledSSL, Embeddings
from disentangled_ssl.evaluation import linear_probe, retrieval_metrics
from disentangled_ssl.nn.modalities import Image, Sequence, Tokens, Vector

__all__ = [
    "DSSLError",
    "DisentangledSSL",
    "Embeddings",
    "Image",
    "MultimodalDataset",
    "PairedData",
    "PerformanceWarning",
    "Sequence",
    "SyntheticStream",
    "Tokens",
    "TrainingDivergedError",
    "Vector",
    "__version__",
    "linear_probe",
    "make_synthetic",
    "pack_sequences",
    "retrieval_metrics",
]
