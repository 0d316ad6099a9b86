"""Evaluation: linear probes and cross-modal retrieval."""

from disentangled_ssl.evaluation.probe import linear_probe
from disentangled_ssl.evaluation.retrieval import by_group_retrieval, retrieval_metrics

__all__ = ["by_group_retrieval", "linear_probe", "retrieval_metrics"]
