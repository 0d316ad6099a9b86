"""Images + captions: an image modality and a token-text modality, each with its kind's
default encoder (a small residual CNN; an embedding + Transformer over token ids).

Generated data with planted factors (``disentangled_ssl.data.make_image_captions``): the shape
drawn (4 classes) is in the image and named in the caption, so it is *shared*; the shape's
colour is only in the image, a mood word only in the caption (*specific*). The script fits
DisentangledSSL, probes which code holds which factor, retrieves captions from images, and
compares with the vector MLP on flattened pixels and ids. About a minute on 2 CPU cores.

Your own data: images as a float array (n, C, H, W) in [0, 1]; captions as integer ids
(n, L) padded with 0 (any tokenizer; ``Tokens(vocab_size=...)`` if test captions may hold ids
the training rows lack).

Run: ``python examples/images_and_captions.py``
"""

from __future__ import annotations

import numpy as np
import torch

from disentangled_ssl import DisentangledSSL, Image, Tokens, linear_probe, retrieval_metrics
from disentangled_ssl.data import make_image_captions


def probes(model: DisentangledSSL, train, test) -> dict[str, float]:
    a, b = model.transform([train.x1, train.x2]), model.transform([test.x1, test.x2])
    pick = {"shape from the image's shared code": ("shared1", "shared"),
            "shape from the caption's shared code": ("shared2", "shared"),
            "colour from the image's specific code": ("specific1", "specific1"),
            "mood from the caption's specific code": ("specific2", "specific2"),
            "colour from the image's shared code (should be low)": ("shared1", "specific1")}
    return {what: linear_probe(getattr(a, code), train.labels, getattr(b, code),
                               test.labels)[label] for what, (code, label) in pick.items()}


def main() -> None:
    torch.set_num_threads(1)  # small CNN/Transformer batches: one thread is as fast on 2 cores
    data, vocabulary = make_image_captions(3000, image_size=16, seed=0)
    train, test = data.split(0.25, seed=0)
    print("images", train.x1.shape, train.x1.dtype, "| captions", train.x2.shape,
          train.x2.dtype, "| e.g.", " ".join(vocabulary[i] for i in train.x2[0] if i))
    model = DisentangledSSL(
        modalities=(Image(cnn_width=16), Tokens(d_model=32, n_layers=1)),
        shared_dim=16, specific_dim=16, hidden_dim=64, shared_epochs=12, specific_epochs=8,
        batch_size=128, lr=1e-3, random_state=0, verbose=False,
    ).fit([train.x1, train.x2])
    print("kinds:", ", ".join(k.describe() for k in model.modalities_))
    for what, acc in probes(model, train, test).items():
        print(f"  {what:<54} {acc:.3f}")
    emb = model.transform([test.x1, test.x2])
    top = retrieval_metrics(emb.shared1, emb.shared2)
    print(f"image -> caption retrieval over {len(test)} test pairs: top-1 {top['top1']:.3f}, "
          f"top-10 {top['top10']:.3f} (chance top-1 {1 / len(test):.4f}; many captions name "
          "the same shape, so top-1 is bounded)")
    flat = [v.reshape(len(v), -1).astype(np.float32) for v in (train.x1, train.x2)]
    flat_test = [v.reshape(len(v), -1).astype(np.float32) for v in (test.x1, test.x2)]
    vector = DisentangledSSL(shared_dim=16, specific_dim=16, hidden_dim=64, shared_epochs=12,
                             specific_epochs=8, batch_size=128, lr=1e-3, random_state=0,
                             verbose=False).fit(flat)
    a, b = vector.transform(flat), vector.transform(flat_test)
    print("same budget, vector MLP on flattened pixels and ids: shape from the image's shared "
          f"code {linear_probe(a.shared1, train.labels, b.shared1, test.labels)['shared']:.3f}, "
          "mood from the caption's specific code "
          f"{linear_probe(a.specific2, train.labels, b.specific2, test.labels)['specific2']:.3f}")


if __name__ == "__main__":
    main()
