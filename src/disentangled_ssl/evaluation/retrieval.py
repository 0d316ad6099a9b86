"""Cross-modal retrieval: rank modality-2 items for each modality-1 query by cosine."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from disentangled_ssl._errors import DSSLError


def retrieval_metrics(
    queries: np.ndarray | torch.Tensor,
    items: np.ndarray | torch.Tensor,
    ks: tuple[int, ...] = (1, 5, 10),
    chunk_size: int = 4096,
) -> dict[str, float]:
    """Top-k accuracy and mean reciprocal rank of paired retrieval.

    Query row i's correct item is item row i; items are ranked by cosine similarity to the
    query; the rank is 1 + the number of items scoring strictly higher than the correct one,
    so ties count in the query's favour (identical candidates, e.g. one drug tested in k cell
    lines, all rank as high as the best of them: chance is then above k/n).

    Args:
        queries: (n, d) embeddings of modality 1.
        items: (n, d) embeddings of modality 2, paired row by row.
        ks: cut-offs for top-k accuracy.
        chunk_size: queries scored per block (bounds memory at chunk_size × n).

    Returns:
        ``{"top1": ..., "top5": ..., "top10": ..., "mrr": ...}``; chance is k/n and about
        ln(n)/n respectively.
    """
    q = torch.as_tensor(np.asarray(queries) if not torch.is_tensor(queries) else queries).float()
    v = torch.as_tensor(np.asarray(items) if not torch.is_tensor(items) else items).float()
    if q.ndim != 2 or v.ndim != 2 or q.shape != v.shape:
        raise DSSLError(
            f"queries and items must be paired 2-D arrays of equal shape, got {tuple(q.shape)} "
            f"and {tuple(v.shape)}"
        )
    if q.shape[0] == 0:
        raise DSSLError("retrieval needs at least one query")
    q, v = F.normalize(q, dim=-1), F.normalize(v, dim=-1)
    ranks = []
    for start in range(0, q.shape[0], chunk_size):
        block = q[start : start + chunk_size] @ v.T
        rows = torch.arange(block.shape[0])
        correct = block[rows, rows + start].unsqueeze(1)
        ranks.append((block > correct).sum(1) + 1)
    rank = torch.cat(ranks).double()
    out = {f"top{k}": float((rank <= k).double().mean()) for k in ks}
    out["mrr"] = float((1.0 / rank).mean())
    return out


def by_group_retrieval(queries: np.ndarray, items: np.ndarray, groups: np.ndarray,
                       min_size: int = 20, ks: tuple[int, ...] = (1, 5, 10)
                       ) -> dict[str, float]:
    """InfoCORE's "by batch" retrieval: within each group (batch / plate) of more than
    ``min_size`` items, rank that group's items for each of its queries; average over all
    queries (weighted by group size). Query = phenotype, items = molecules."""
    groups = np.asarray(groups).astype(str)
    totals: dict[str, float] = {}
    count = 0
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        if rows.size <= min_size:
            continue
        metrics = retrieval_metrics(queries[rows], items[rows], ks=ks)
        for k, v in metrics.items():
            totals[k] = totals.get(k, 0.0) + v * rows.size
        count += rows.size
    if count == 0:
        raise DSSLError(f"no group has more than {min_size} items")
    return {k: v / count for k, v in totals.items()}
