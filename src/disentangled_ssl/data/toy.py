"""Small generated data sets of the non-vector modality kinds, with planted shared and specific
factors (for tests, examples and the docs).

Each returns :class:`~disentangled_ssl.data.synthetic.PairedData` whose labels are the planted
factors: ``shared`` (carried by both modalities), ``specific1`` (only in modality 1) and
``specific2`` (only in modality 2), so a linear probe tells which code holds which factor.
"""

from __future__ import annotations

import numpy as np

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.data.synthetic import PairedData

__all__ = ["make_image_captions", "make_sequence_pair"]


def _check(n: int, what: str, low: int) -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < low:
        raise DSSLError(f"{what} must be an integer >= {low}, got {n!r}")


def make_sequence_pair(n_samples: int = 2048, steps: int = 16, features: int = 4,
                       noise: float = 0.3, seed: int = 0) -> PairedData:
    """Two sequence modalities (n, steps, features) whose factors live in the temporal order.

    Every feature of every row is a ramp of random amplitude that rises or falls over time (the
    direction is the signal) plus Gaussian noise, centred so that every row's time average of
    every feature is exactly zero: the time average carries nothing, mean-pooling the input
    cannot beat chance, only an encoder that reads the order can. Feature 0 of both modalities
    follows the ``shared`` factor; feature 1 of modality i follows ``specific<i>``; the other
    features are ramps in random directions (distractors).
    """
    _check(n_samples, "n_samples", 2)
    _check(steps, "steps", 3)
    _check(features, "features", 2)
    rng = np.random.default_rng(seed)
    shared = rng.integers(0, 2, n_samples)
    specific = [rng.integers(0, 2, n_samples) for _ in range(2)]
    ramp = np.linspace(-1.0, 1.0, steps, dtype=np.float64)  # mean 0 over time
    views = []
    for i in range(2):
        sign = rng.choice([-1.0, 1.0], (n_samples, features))
        sign[:, 0] = 2.0 * shared - 1.0
        sign[:, 1] = 2.0 * specific[i] - 1.0
        amplitude = rng.uniform(0.5, 1.5, (n_samples, features))
        x = (sign * amplitude)[:, None, :] * ramp[None, :, None]
        x = x + noise * rng.standard_normal(x.shape)
        views.append((x - x.mean(axis=1, keepdims=True)).astype(np.float32))
    labels = {"shared": shared, "specific1": specific[0], "specific2": specific[1]}
    return PairedData(views[0], views[1], labels)


#: Shapes drawn in :func:`make_image_captions` (each symmetric under a horizontal flip).
SHAPES = ("square", "cross", "ring", "bar")
COLOURS = ("red", "blue")
MOODS = ("calm", "busy")


def _shape_mask(kind: int, size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2.0
    r = size / 2.0
    if kind == 0:  # filled square
        return (np.abs(yy) < r * 0.8) & (np.abs(xx) < r * 0.8)
    if kind == 1:  # plus sign
        return ((np.abs(yy) < r * 0.3) | (np.abs(xx) < r * 0.3)) & (np.maximum(
            np.abs(yy), np.abs(xx)) < r)
    if kind == 2:  # ring
        d = np.sqrt(yy ** 2 + xx ** 2)
        return (d < r * 0.95) & (d > r * 0.55)
    return (np.abs(yy) < r * 0.3) & (np.abs(xx) < r)  # horizontal bar


def make_image_captions(n_samples: int = 2048, image_size: int = 16, max_words: int = 8,
                        seed: int = 0) -> tuple[PairedData, list[str]]:
    """Images (n, 3, size, size) in [0, 1] and captions (n, max_words) of token ids.

    ``shared`` (4 classes) is the shape drawn (square, cross, ring, bar), at a random position:
    it is in the image and named in the caption. ``specific1`` is the shape's colour (red or
    blue), only in the image; ``specific2`` is a mood word (calm or busy) only in the caption.
    A caption is the shape word, the mood word and 1-4 filler words in random order, padded
    with id 0 at the end.

    Returns:
        The paired data and the vocabulary (``vocabulary[id]`` is the word; id 0 is padding).
    """
    _check(n_samples, "n_samples", 2)
    _check(image_size, "image_size", 8)
    _check(max_words, "max_words", 6)
    rng = np.random.default_rng(seed)
    fillers = ["a", "the", "small", "picture", "of", "with", "some", "shape"]
    vocabulary = ["<pad>", *SHAPES, *MOODS, *fillers]
    shape_id = {w: k for k, w in enumerate(vocabulary)}
    shared = rng.integers(0, len(SHAPES), n_samples)
    colour = rng.integers(0, 2, n_samples)
    mood = rng.integers(0, 2, n_samples)
    size = image_size
    glyph = max(4, size // 2)
    masks = [_shape_mask(k, glyph) for k in range(len(SHAPES))]
    images = rng.uniform(0.0, 0.25, (n_samples, 3, size, size))
    top = rng.integers(0, size - glyph + 1, n_samples)
    left = rng.integers(0, size - glyph + 1, n_samples)
    rgb = np.array([[0.9, 0.15, 0.1], [0.1, 0.2, 0.9]])
    for k in range(n_samples):  # data generation, once
        window = images[k, :, top[k]:top[k] + glyph, left[k]:left[k] + glyph]
        window[:, masks[shared[k]]] = rgb[colour[k]][:, None]
    captions = np.zeros((n_samples, max_words), dtype=np.int64)
    for k in range(n_samples):
        words = [SHAPES[shared[k]], MOODS[mood[k]],
                 *rng.choice(fillers, rng.integers(1, max_words - 1), replace=False)]
        ids = [shape_id[w] for w in words][:max_words]
        captions[k, :len(ids)] = rng.permutation(ids)
    labels = {"shared": shared, "specific1": colour, "specific2": mood}
    return PairedData(images.astype(np.float32), captions, labels), vocabulary
