"""The equations, as pure typed functions on embeddings.

Loss modules (one per method) and stages call these; each is tested on tiny inputs with
hand-computed values.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from disentangled_ssl.losses import fused


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the initialised torch.distributed group, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class _GatherRows(torch.autograd.Function):
    """(B, D) per process -> (W·B, D): every process's rows, in rank order. Backward: the
    gradient w.r.t. this process's rows summed over every process's loss."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        rank, world = rank_and_world()
        parts = [torch.empty_like(x) for _ in range(world)]
        torch.distributed.all_gather(parts, x.contiguous())
        ctx.rows = (rank * x.shape[0], (rank + 1) * x.shape[0])
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        torch.distributed.all_reduce(grad)
        return grad[ctx.rows[0]:ctx.rows[1]]


class _SumOverProcesses(torch.autograd.Function):
    """The sum of a tensor over all processes; the gradient is summed likewise."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        out = x.clone()
        torch.distributed.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.clone()
        torch.distributed.all_reduce(grad)
        return grad


def info_nce(a: Tensor, b: Tensor, temperature: float = 0.07, *, gather: bool = False
             ) -> Tensor:
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
        gather: under torch.distributed with W > 1 processes, score this process's rows
            against the other batch's rows of ALL processes (a differentiable all_gather, so
            gradients reach every process's rows): the mean of the W processes' losses is the
            loss of the global batch (rows ordered by rank). No effect in a single process.

    Returns:
        Scalar tensor.
    """
    rank, world = rank_and_world() if gather else (0, 1)
    if world > 1:
        a_all, b_all = _GatherRows.apply(a), _GatherRows.apply(b)
        target = torch.arange(a.shape[0], device=a.device) + rank * a.shape[0]
        return 0.5 * (F.cross_entropy(a @ b_all.T / temperature, target)
                      + F.cross_entropy(b @ a_all.T / temperature, target))
    # The same value as 0.5 · (cross_entropy(a bᵀ/τ, I) + cross_entropy(b aᵀ/τ, I)), as one
    # autograd node with an analytic backward (disentangled_ssl.losses.fused).
    return fused.info_nce(a, b, temperature)


def alignment(e1: Tensor, e2: Tensor) -> Tensor:
    """Negative mean cosine between paired rows: -mean_i cos(e1_i, e2_i); (..., B, D) inputs
    give (...) values (one per leading index, e.g. ensemble member).

    With a fixed vMF concentration, the KL between the two modalities' vMF posteriors is an
    affine function of this term; the authors use it as the surrogate of I(Z; X1 | X2).
    """
    return -F.cosine_similarity(e1, e2, dim=-1, eps=1e-12).mean(-1)


def orthogonality(specific: Tensor, shared: Tensor, *, gather: bool = False) -> Tensor:
    """Frobenius norm of the cross-correlation normalise(specific)ᵀ · normalise(shared).

    Args:
        specific: (B, Ds) specific embeddings.
        shared: (B, Dc) shared embeddings of the same rows.
        gather: under torch.distributed with W > 1 processes, sum the cross-correlation over
            the rows of all processes (a differentiable all_reduce) first: every process
            returns the value of the global batch.

    Returns:
        Scalar ``‖Ŝᵀ Ĉ‖_F`` where rows are L2-normalised; zero iff every specific dimension is
        orthogonal (over the batch) to every shared dimension.
    """
    cross = F.normalize(specific, dim=-1).T @ F.normalize(shared, dim=-1)
    if gather and rank_and_world()[1] > 1:
        cross = _SumOverProcesses.apply(cross)
    return torch.linalg.matrix_norm(cross)


def paired_cosine(a: Tensor, b: Tensor) -> Tensor:
    """Mean cosine between paired rows (FOCAL's orthogonality term)."""
    return F.cosine_similarity(a, b, dim=-1, eps=1e-12).mean()


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL( N(mu, exp(logvar)) || N(0, I) ), summed over the batch and the latent dimensions.

    Summing (not averaging) over the batch follows the DMVAE baseline of the DisentangledSSL
    authors, so that the KL weight ``a`` keeps the meaning of their grid (1e-7 … 1e-2).

    Args:
        mu: (B, D) posterior means.
        logvar: (B, D) posterior log-variances.

    Returns:
        Scalar ``-0.5 · Σ (1 + logvar - mu² - exp(logvar))``.
    """
    return -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp())


def product_of_experts(
    mu1: Tensor, logvar1: Tensor, mu2: Tensor, logvar2: Tensor
) -> tuple[Tensor, Tensor]:
    """Product of two diagonal Gaussian experts (precision-weighted), as in DMVAE
    (Lee & Pavlovic, "Private-Shared Disentangled Multimodal VAE", CVPR-W 2021).

    ``1/σ² = 1/σ1² + 1/σ2²`` and ``μ = σ² (μ1/σ1² + μ2/σ2²)``, computed in log space (no
    overflow for very small or large variances).

    Args:
        mu1, logvar1: (B, D) first expert.
        mu2, logvar2: (B, D) second expert.

    Returns:
        ``(mu, logvar)`` of the product, each (B, D).
    """
    logvar = -torch.logaddexp(-logvar1, -logvar2)
    weight1 = torch.sigmoid(logvar2 - logvar1)  # = σ1⁻² / (σ1⁻² + σ2⁻²)
    return weight1 * mu1 + (1.0 - weight1) * mu2, logvar


def nce_lower_bound(scores: Tensor) -> Tensor:
    """InfoNCE lower bound on I(A; B) from a critic score matrix (van den Oord et al. 2018).

    Args:
        scores: (B, B) critic values ``f(a_i, b_j)``; the diagonal holds the paired samples.

    Returns:
        Scalar ``log B + mean_i [ f(a_i, b_i) - logsumexp_j f(a_i, b_j) ]`` (≤ log B).
    """
    batch = scores.shape[0]
    return math.log(batch) + (scores.diagonal() - scores.logsumexp(dim=1)).mean()


def club_upper_bound(scores: Tensor) -> Tensor:
    """NCE-CLUB upper bound on I(A; B) (Cheng et al. 2020 as used by FactorCL, Liang et al.
    NeurIPS 2023): the mean critic value on paired samples minus its mean over all pairs.

    The critic is trained separately (to maximise :func:`nce_lower_bound` on detached inputs);
    the encoders minimise this bound.

    Args:
        scores: (B, B) critic values ``f(a_i, b_j)``.

    Returns:
        Scalar ``mean_i f(a_i, b_i) - mean_{i,j} f(a_i, b_j)``.
    """
    return scores.diagonal().mean() - scores.mean()
