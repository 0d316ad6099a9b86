"""disentangled-ssl: shared and modality-specific representations of paired multimodal data.

Implements DisentangledSSL (Wang et al., "An Information Criterion for Controlled
Disentanglement of Multimodal Data", ICLR 2025, arXiv 2410.23996).
"""

from disentangled_ssl._errors import DSSLError, PerformanceWarning, TrainingDivergedError
from disentangled_ssl._version import __version__
from disentangled_ssl.data import PairedData, make_synthetic
from disentangled_ssl.estimator import DisentangledSSL, Embeddings
from disentangled_ssl.evaluation import linear_probe, retrieval_metrics

__all__ = [
    "DSSLError",
    "DisentangledSSL",
    "Embeddings",
    "PairedData",
    "PerformanceWarning",
    "TrainingDivergedError",
    "__version__",
    "linear_probe",
    "make_synthetic",
    "retrieval_metrics",
]
