"""Evaluation: linear probes and cross-modal retrieval."""

from disentangled_ssl.evaluation.probe import linear_probe
from disentangled_ssl.evaluation.retrieval import retrieval_metrics

__all__ = ["linear_probe", "retrieval_metrics"]
