"""Two sequence modalities (rows × time steps × features), padded to different lengths.

Generated data (``disentangled_ssl.data.make_sequence_pair``) whose factors live only in the
temporal order: every feature is a rising or falling ramp, centred so that its time average
is exactly zero. The shared factor sets the direction of feature 0 in both modalities; each
modality's own factor sets its feature 1. Rows get random lengths (padding past them), passed
as ``(values, lengths)``. A mean-pooled vector MLP cannot beat chance here; the sequence
kind's Transformer (positions, masked padding, pooled output) recovers each factor in its
code. About a minute on 2 CPU cores.

Run: ``python examples/two_sequences.py``
"""

from __future__ import annotations

import numpy as np
import torch

from disentangled_ssl import DisentangledSSL, Sequence, linear_probe, pack_sequences
from disentangled_ssl.data import make_sequence_pair


def ragged(x: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Each row cut to a random length of 8..T steps and centred again over the steps it
    keeps, so that its time average stays exactly zero (a list of (T_k, d) arrays)."""
    rows = [row[: int(rng.integers(8, x.shape[1] + 1))] for row in x]
    return [row - row.mean(axis=0) for row in rows]


def main() -> None:
    torch.set_num_threads(1)  # small Transformer batches: one thread is as fast on 2 cores
    rng = np.random.default_rng(0)
    data = make_sequence_pair(3000, steps=12, features=4, seed=0)
    train, test = data.split(0.25, seed=0)
    tr = [pack_sequences(ragged(x, rng)) for x in (train.x1, train.x2)]  # (values, lengths)
    te = [pack_sequences(ragged(x, rng)) for x in (test.x1, test.x2)]
    print("modality 1:", tr[0][0].shape, "lengths", tr[0][1].min(), "..", tr[0][1].max())
    model = DisentangledSSL(modalities=Sequence(d_model=32, n_layers=1), shared_dim=16,
                            specific_dim=16, hidden_dim=64, shared_epochs=10,
                            specific_epochs=8, batch_size=128, lr=1e-3, random_state=0,
                            verbose=False).fit(tr)
    a, b = model.transform(tr), model.transform(te)
    for code, label in [("shared1", "shared"), ("shared2", "shared"),
                        ("specific1", "specific1"), ("specific2", "specific2"),
                        ("specific1", "specific2")]:
        acc = linear_probe(getattr(a, code), train.labels, getattr(b, code), test.labels)[label]
        print(f"  {label:<9} from {code:<9} {acc:.3f}")
    values, lengths = tr[0]
    mean = max(float(np.abs(v[:n].mean(axis=0)).max()) for v, n in zip(values, lengths))
    print(f"largest time average of any feature of any row (real steps): {mean:.1e}")


if __name__ == "__main__":
    main()
