"""The equations, as pure typed functions on embeddings.

Loss modules (one per method) and stages call these; each is tested on tiny inputs with
hand-computed values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def info_nce(a: Tensor, b: Tensor, temperature: float = 0.07) -> Tensor:
    """Symmetric InfoNCE between paired batches (CLIP's loss; SimCLR's NT-Xent without
    within-view negatives).

    Row i of ``a`` is the positive of row i of ``b``; the other rows of the other batch are the
    negatives. The loss averages the cross-entropy of the a→b and b→a directions over the batch,
    exactly as the DisentangledSSL authors' ``SupConLoss`` with two views and the same-view
    block masked.

    Args:
        a: (B, D) embeddings, L2-normalised by the caller when cosine logits are wanted.
        b: (B, D) embeddings paired with ``a``.
        temperature: logits are ``a @ b.T / temperature``.

    Returns:
        Scalar tensor.
    """
    logits = a @ b.T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def alignment(e1: Tensor, e2: Tensor) -> Tensor:
    """Negative mean cosine between paired rows: -mean_i cos(e1_i, e2_i).

    With a fixed vMF concentration, the KL between the two modalities' vMF posteriors is an
    affine function of this term; the authors use it as the surrogate of I(Z; X1 | X2).
    """
    return -F.cosine_similarity(e1, e2, dim=-1, eps=1e-12).mean()


def orthogonality(specific: Tensor, shared: Tensor) -> Tensor:
    """Frobenius norm of the cross-correlation normalise(specific)ᵀ · normalise(shared).

    Args:
        specific: (B, Ds) specific embeddings.
        shared: (B, Dc) shared embeddings of the same rows.

    Returns:
        Scalar ``‖Ŝᵀ Ĉ‖_F`` where rows are L2-normalised; zero iff every specific dimension is
        orthogonal (over the batch) to every shared dimension.
    """
    return torch.linalg.matrix_norm(F.normalize(specific, dim=-1).T @ F.normalize(shared, dim=-1))


def paired_cosine(a: Tensor, b: Tensor) -> Tensor:
    """Mean cosine between paired rows (FOCAL's orthogonality term)."""
    return F.cosine_similarity(a, b, dim=-1, eps=1e-12).mean()
