"""Padded sequences as one tensor: the validity mask rides as an extra last channel.

A sequence modality of rows with different lengths is given as ``(values, lengths)``:
``values`` (n, T, d) padded (anywhere past each row's length), ``lengths`` (n,) integers.
:func:`pack_lengths` turns the pair into (n, T, d + 1) whose last channel is 1 at a row's first
``lengths[k]`` steps and 0 after them; the sequence encoder and augmentation built with
``masked=True`` read that channel, and every other part of the library sees one tensor per
modality. :func:`pack_sequences` pads a list of (T_k, d) arrays into such a pair.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from disentangled_ssl._errors import DSSLError

__all__ = ["pack_lengths", "pack_sequences"]


def pack_lengths(values: object, lengths: object, name: str = "the sequences") -> Tensor:
    """(n, T, d) values and (n,) lengths -> (n, T, d + 1) float32 with the mask channel last.

    Raises:
        DSSLError: shapes that disagree, lengths outside 0..T or not integers.
    """
    v = values if isinstance(values, Tensor) else torch.from_numpy(np.ascontiguousarray(values))
    n = lengths if isinstance(lengths, Tensor) else torch.from_numpy(np.ascontiguousarray(lengths))
    if v.dim() != 3:
        raise DSSLError(f"{name}: values with lengths must be (rows, time steps, features), got "
                        f"shape {tuple(v.shape)}")
    if n.dim() != 1 or n.shape[0] != v.shape[0]:
        raise DSSLError(f"{name}: lengths must be one integer per row ({v.shape[0]}), got shape "
                        f"{tuple(n.shape)}")
    if n.is_floating_point() or n.dtype == torch.bool:
        raise DSSLError(f"{name}: lengths must be integers, got dtype {n.dtype}")
    if n.numel() and (int(n.min()) < 0 or int(n.max()) > v.shape[1]):
        raise DSSLError(f"{name}: lengths must be in 0..{v.shape[1]} (the padded length), got "
                        f"{int(n.min())}..{int(n.max())}")
    steps = torch.arange(v.shape[1], device=v.device)
    mask = (steps.unsqueeze(0) < n.to(v.device).unsqueeze(1)).unsqueeze(2)
    return torch.cat([v.float() * mask, mask.float()], dim=2)


def pack_sequences(sequences: Sequence[object], max_len: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Pad a list of (T_k, d) arrays at the end into ``(values (n, T, d), lengths (n,))``
    (T = the longest, or ``max_len``, truncating longer rows)."""
    arrays = [np.asarray(s, dtype=np.float32) for s in sequences]
    if not arrays:
        raise DSSLError("pack_sequences needs at least one sequence")
    bad = [k for k, a in enumerate(arrays) if a.ndim != 2 or a.shape[1] != arrays[0].shape[1]]
    if bad:
        raise DSSLError(f"sequence {bad[0]} has shape {arrays[bad[0]].shape}; every sequence must "
                        f"be (time steps, {arrays[0].shape[-1]} features)")
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    steps = int(max_len if max_len is not None else lengths.max())
    lengths = np.minimum(lengths, steps)
    values = np.zeros((len(arrays), steps, arrays[0].shape[1]), dtype=np.float32)
    for k, a in enumerate(arrays):  # once, at data preparation
        values[k, :lengths[k]] = a[:lengths[k]]
    return values, lengths
