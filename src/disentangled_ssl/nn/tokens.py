"""The default encoder of the "tokens" modality kind: embedding + a small Transformer.

A token batch is an int64 tensor (B, L) of ids in ``[0, vocab_size)``; ``pad_id`` marks
padding (anywhere; a row may be entirely padding).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.nn.sequence import TransformerPool, check_positive_ints

#: Standard deviation of the initial token embeddings of a bag of words (``n_layers=0``).
#: Small on purpose: an id that never occurs in the training rows gets no gradient and
#: keeps its initial vector, so at N(0, 1) (PyTorch's default) every unseen word of a
#: caption adds a random vector as large as a learned one; at 0.02 it barely moves the code
#: (the LayerNorm after the mean makes the overall scale irrelevant). With attention the
#: default N(0, 1) is kept: next to the unit-scale positional encoding, 0.02 embeddings
#: would hide the token ids.
EMBEDDING_STD = 0.02


def check_token_ids(x: Tensor, vocab_size: int, owner: str) -> None:
    """Raise :class:`DSSLError` unless ``x`` is a (B, L) integer tensor of ids in
    ``[0, vocab_size)``; the message gives the first offending id and its row. One fused
    reduction and one host sync per call."""
    if x.dim() != 2:
        raise DSSLError(f"{owner} expects a (B, L) tensor of token ids, got shape "
                        f"{tuple(x.shape)}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise DSSLError(f"{owner} expects integer token ids (int64), got dtype {x.dtype}; "
                        f"convert with .long() (token ids are indices, not features)")
    outside = (x < 0) | (x >= vocab_size)
    if x.numel() and bool(outside.any()):
        row, col = (int(i) for i in outside.nonzero()[0])
        raise DSSLError(
            f"token id {int(x[row, col])} at row {row} is outside the vocabulary of "
            f"{vocab_size} ids (0..{vocab_size - 1}); build {owner} with a larger vocab_size "
            f"or map unknown tokens to an id in range")


class TokenEncoder(nn.Module):
    """Transformer encoder of a token modality: (B, L) int ids -> (B, out_dim).

    ``nn.Embedding(vocab_size, d_model, padding_idx=pad_id)`` (for ``n_layers=0`` initialised
    N(0, 0.02²): :data:`EMBEDDING_STD`) → + sinusoidal positions →
    pre-LN Transformer encoder (keys with ``id == pad_id`` masked out) → mean over the
    non-pad tokens → LayerNorm → Linear to ``out_dim``. Positions are absolute indices in the
    row, so trailing padding never changes a row's output; a fully padded row gives a finite
    output (that of zero pooled features).

    Args:
        vocab_size: number of ids (ids run 0..vocab_size - 1, ``pad_id`` included).
        out_dim: output size.
        pad_id: id of the padding token.
        d_model, n_heads, n_layers, dim_feedforward, dropout: the Transformer's shape
            (``n_heads`` must divide ``d_model``).
        max_len: longest L accepted.
    """

    def __init__(self, vocab_size: int, out_dim: int, *, pad_id: int = 0, d_model: int = 64,
                 n_heads: int = 4, n_layers: int = 2, dim_feedforward: int = 128,
                 dropout: float = 0.0, max_len: int = 512) -> None:
        super().__init__()
        check_positive_ints("TokenEncoder", vocab_size=vocab_size, out_dim=out_dim)
        if isinstance(pad_id, bool) or not isinstance(pad_id, int) or not (
                0 <= pad_id < vocab_size):
            raise DSSLError(f"TokenEncoder: pad_id must be an id in 0..{vocab_size - 1}, got "
                            f"{pad_id!r}")
        self.vocab_size, self.out_dim, self.pad_id = vocab_size, out_dim, pad_id
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        if n_layers == 0:  # a bag of words: small start, unseen ids stay near zero
            with torch.no_grad():
                nn.init.normal_(self.embedding.weight, std=EMBEDDING_STD)
                self.embedding.weight[pad_id].zero_()
        self.body = TransformerPool(d_model, n_heads, n_layers, dim_feedforward, dropout,
                                    max_len, owner="TokenEncoder")
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, out_dim)

    @property
    def max_len(self) -> int:
        return self.body.max_len

    def forward(self, x: Tensor) -> Tensor:
        """(B, L) int ids -> (B, out_dim)."""
        check_token_ids(x, self.vocab_size, "TokenEncoder")
        self.body.check_length(x.shape[1], "tokens")
        valid = x != self.pad_id
        return self.out(self.norm(self.body(self.embedding(x), valid)))
