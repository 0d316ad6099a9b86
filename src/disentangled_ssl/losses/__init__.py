"""Objectives: pure functions and one small loss module per method."""

from disentangled_ssl.losses.clip import CLIPLoss
from disentangled_ssl.losses.disentangled import SharedLoss, SpecificLoss
from disentangled_ssl.losses.dmvae import DMVAELoss
from disentangled_ssl.losses.factorcl import FactorCLLoss
from disentangled_ssl.losses.focal import FOCALLoss
from disentangled_ssl.losses.functional import (
    alignment,
    club_upper_bound,
    gaussian_kl,
    info_nce,
    nce_lower_bound,
    orthogonality,
    paired_cosine,
    product_of_experts,
)
from disentangled_ssl.losses.infonce import InfoNCELoss
from disentangled_ssl.losses.joint import JointOptLoss
from disentangled_ssl.losses.simclr import SimCLRLoss

__all__ = [
    "CLIPLoss",
    "DMVAELoss",
    "FOCALLoss",
    "FactorCLLoss",
    "InfoNCELoss",
    "JointOptLoss",
    "SimCLRLoss",
    "SharedLoss",
    "SpecificLoss",
    "alignment",
    "club_upper_bound",
    "gaussian_kl",
    "info_nce",
    "nce_lower_bound",
    "orthogonality",
    "paired_cosine",
    "product_of_experts",
]
