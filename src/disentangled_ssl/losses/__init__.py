"""Objectives: pure functions and one small loss module per method."""

from disentangled_ssl.losses.disentangled import SharedLoss, SpecificLoss
from disentangled_ssl.losses.functional import alignment, info_nce, orthogonality, paired_cosine
from disentangled_ssl.losses.infonce import InfoNCELoss

__all__ = [
    "InfoNCELoss",
    "SharedLoss",
    "SpecificLoss",
    "alignment",
    "info_nce",
    "orthogonality",
    "paired_cosine",
]
