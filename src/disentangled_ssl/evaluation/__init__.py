"""Evaluation: linear probes, cross-modal retrieval and counterfactual R²."""

from disentangled_ssl.evaluation.counterfactual import counterfactual_r2
from disentangled_ssl.evaluation.probe import linear_probe
from disentangled_ssl.evaluation.retrieval import by_group_retrieval, retrieval_metrics

__all__ = ["by_group_retrieval", "counterfactual_r2", "linear_probe", "retrieval_metrics"]
