"""Augmentations, vectorised over the batch.

Vectors (:func:`augment_vectors`, :class:`VectorAugment`): each row independently gets one
of: Gaussian noise (std ``noise_std``), zeroing of a random ``drop_fraction`` of its features,
or identity, each with probability 1/3 (the augmentation of the DisentangledSSL authors,
without their per-row Python loop).

Sequences (:class:`SequenceAugment`, FactorCL's permute / noise / zero steps / identity),
images (:class:`ImageAugment`, per-image resized crop, flip and colour jitter) and tokens
(:class:`TokenAugment`, mask / drop / identity) follow the layouts of the modality kinds:
(B, T, d) [+ a mask channel], (B, C, H, W) and (B, L) int ids.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError


def augment_vectors(
    x: Tensor,
    noise_std: float = 0.01,
    drop_fraction: float = 0.1,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Return an augmented copy of a batch.

    Args:
        x: batch of shape (B, D), or (B, ...) (e.g. images), augmented as its flattened rows.
        noise_std: std of the additive Gaussian noise of the "noise" branch.
        drop_fraction: fraction of features zeroed in the "drop" branch (``int(D * f)`` features,
            chosen without replacement per row).
        generator: random generator on ``x``'s device; None uses torch's global RNG.

    Returns:
        Tensor of the shape of ``x``.
    """
    shape = x.shape
    flat = x.reshape(shape[0], -1)
    batch, dim = flat.shape
    device = flat.device
    n_drop = int(dim * drop_fraction)
    choice = torch.randint(0, 3, (batch,), device=device, generator=generator)
    if device.type != "cpu":
        # No host sync on accelerators: draw for every row, keep the rows' own branch.
        noise = torch.randn(flat.shape, dtype=flat.dtype, device=device, generator=generator)
        out = torch.where((choice == 0).unsqueeze(1), flat + noise * noise_std, flat)
        if n_drop > 0:
            # The n_drop largest of D uniforms per row index a uniformly random subset to zero.
            index = torch.rand(batch, dim, device=device, generator=generator).topk(
                n_drop, dim=1, sorted=False).indices
            drop = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, index, True)
            out = out.masked_fill(drop & (choice == 1).unsqueeze(1), 0.0)
        return out.reshape(shape)
    # On CPU the random draws dominate: draw them only for the rows of their branch (a third
    # each), ~3x cheaper than drawing (B, D) noise and uniforms for every row.
    out = flat.clone(memory_format=torch.contiguous_format)
    if noise_std > 0:
        rows = (choice == 0).nonzero().squeeze(1)
        noise = torch.randn(rows.shape[0], dim, dtype=flat.dtype, generator=generator)
        out.index_copy_(0, rows, noise.mul_(noise_std).add_(flat.index_select(0, rows)))
    if n_drop > 0:
        rows = (choice == 1).nonzero()  # (k, 1)
        index = torch.rand(rows.shape[0], dim, generator=generator).topk(
            n_drop, dim=1, sorted=False).indices
        out.view(-1).index_fill_(0, index.add_(rows, alpha=dim).view(-1), 0.0)
    return out.reshape(shape)


class VectorAugment(nn.Module):
    """Module form of :func:`augment_vectors` (identity when ``enabled`` is False).

    ``rowwise = True``: every row is augmented independently of the others, so one call on
    stacked batches equals separate calls in distribution (objectives use this to batch
    several views into one call).
    """

    rowwise = True

    def __init__(self, noise_std: float = 0.01, drop_fraction: float = 0.1, enabled: bool = True):
        super().__init__()
        if not (noise_std >= 0 and noise_std < float("inf")):
            raise DSSLError(f"noise_std must be >= 0 and finite, got {noise_std!r}")
        if not 0.0 <= drop_fraction < 1.0:
            raise DSSLError(f"drop_fraction must be in [0, 1), got {drop_fraction!r}")
        self.noise_std = float(noise_std)
        self.drop_fraction = float(drop_fraction)
        self.enabled = enabled

    def forward(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        return augment_vectors(x, self.noise_std, self.drop_fraction)


# ---------------------------------------------------------------------------- other kinds
# Augmentations of the sequence, image and token modality kinds. Like augment_vectors they
# are vectorised over the batch (no per-row Python loop, no host sync), draw from torch's
# global RNG on the input's device and augment every row independently (``rowwise = True``).


def _check_fraction(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0.0 <= value < 1.0):
        raise DSSLError(f"{owner}: {name} must be a number in [0, 1), got {value!r}")
    return float(value)


def _check_unit(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0.0 <= value <= 1.0):
        raise DSSLError(f"{owner}: {name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _round_counts(lengths: Tensor, fraction: float) -> Tensor:
    """``round(fraction · length)`` per row (round half to even, as Python's ``round``)."""
    dtype = torch.float32 if lengths.device.type == "mps" else torch.float64
    return torch.round(lengths.to(dtype) * fraction).long()


def _ranks(keys: Tensor) -> Tensor:
    """(B, T) -> (B, T) int64: the rank of every key within its row (0 = smallest)."""
    order = keys.argsort(dim=1)
    ar = torch.arange(keys.shape[1], device=keys.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, ar)


def _random_subset(valid: Tensor, counts: Tensor) -> Tensor:
    """(B, T) bool ``valid``, (B,) ``counts`` (<= valid steps per row) -> (B, T) bool marking
    ``counts[b]`` positions of row b drawn uniformly without replacement among its valid ones.
    """
    keys = torch.rand(valid.shape, device=valid.device).masked_fill(~valid, 2.0)
    return _ranks(keys) < counts.unsqueeze(1)


class SequenceAugment(nn.Module):
    """FactorCL's augmentations of sequences, (B, T, d) [or (B, T, d + 1) with the validity
    mask channel last when ``masked``] -> same shape.

    The operations (FactorCL, Liang et al. 2023, ``multibench_model.py``): 0 = permute the time
    steps, 1 = Gaussian noise (std ``noise_std``), 2 = zero all features of a random
    ``drop_fraction`` of the time steps, 3 = identity. FactorCL's ``augment`` draws, per row,
    two distinct operations and gives ONE to each of the two views. Here:

    - ``forward`` (``ops_per_view=1``, the default) gives every row one operation drawn
      uniformly from the four — each view has FactorCL's distribution, but two calls draw
      independently (the two views of a row share their operation with probability 1/4);
    - ``forward`` with ``ops_per_view=2`` applies two distinct operations to every row, in the
      order drawn (the reading "pick two of {...}" of the protocol text);
    - :meth:`pair` returns two views with distinct operations per row, FactorCL's joint draw.

    Padding (``masked``) is respected: the permutation shuffles a row's VALID steps among the
    valid positions (padding stays where it is), noise touches neither padded steps nor the
    mask channel, and zeroing picks ``round(drop_fraction · valid steps)`` valid steps
    (FactorCL: ``T // 5``; the same for T a multiple of 5) and never changes the mask.

    ``rowwise = True``: rows are augmented independently of each other.

    Args:
        noise_std: std of the noise (FactorCL: 0.1).
        drop_fraction: fraction of the valid steps zeroed (FactorCL: 0.2).
        masked: whether inputs carry the validity mask as their last channel.
        ops_per_view: 1 or 2 operations per row and call (see above).
        enabled: False makes ``forward`` the identity.
    """

    rowwise = True
    N_OPS = 4

    def __init__(self, noise_std: float = 0.1, drop_fraction: float = 0.2, masked: bool = False,
                 *, ops_per_view: int = 1, enabled: bool = True) -> None:
        super().__init__()
        if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or not (
                0.0 <= noise_std < float("inf")):
            raise DSSLError(f"SequenceAugment: noise_std must be >= 0 and finite, got "
                            f"{noise_std!r}")
        self.noise_std = float(noise_std)
        self.drop_fraction = _check_fraction("SequenceAugment", "drop_fraction", drop_fraction)
        if ops_per_view not in (1, 2) or isinstance(ops_per_view, bool):
            raise DSSLError(f"SequenceAugment: ops_per_view must be 1 or 2, got "
                            f"{ops_per_view!r}")
        self.masked, self.ops_per_view, self.enabled = bool(masked), ops_per_view, enabled

    def _check(self, x: Tensor) -> None:
        if x.dim() != 3 or not x.is_floating_point() or (self.masked and x.shape[-1] < 2):
            layout = "(B, T, d + 1) with the mask channel last" if self.masked else "(B, T, d)"
            raise DSSLError(f"SequenceAugment expects a floating-point batch of shape {layout},"
                            f" got {x.dtype} of shape {tuple(x.shape)}")

    def _valid(self, x: Tensor) -> Tensor:
        if self.masked:
            return x[..., -1] > 0.5
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)

    def _draw_pair(self, batch: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Two distinct operations per row, uniform over the 12 ordered pairs."""
        first = torch.randint(0, self.N_OPS, (batch,), device=device)
        second = (first + torch.randint(1, self.N_OPS, (batch,), device=device)) % self.N_OPS
        return first, second

    def apply(self, x: Tensor, ops: Tensor) -> Tensor:
        """Apply operation ``ops[b]`` (0 permute, 1 noise, 2 zero, 3 identity) to row b."""
        self._check(x)
        valid = self._valid(x)
        batch, steps, channels = x.shape
        out = x
        ar = torch.arange(steps, device=x.device)
        # 0: permutation of the valid steps among the valid positions. Sources: the valid
        # steps in random order, then the padded ones in order; destinations: the valid
        # positions in order, then the padded ones.
        keys = torch.rand(valid.shape, device=x.device).where(valid, 2.0 + ar)
        source_order = keys.argsort(dim=1)
        destination = (ar + steps * (~valid)).argsort(dim=1)
        source = torch.empty_like(source_order).scatter_(1, destination, source_order)
        permuted = x.gather(1, source.unsqueeze(-1).expand(batch, steps, channels))
        out = torch.where((ops == 0).view(-1, 1, 1), permuted, out)
        features = torch.ones(channels, dtype=torch.bool, device=x.device)
        if self.masked:
            features[-1] = False
        if self.noise_std > 0:
            where = (valid.unsqueeze(-1) & features).to(x.dtype)
            noise = torch.randn(x.shape, dtype=x.dtype, device=x.device) * where
            out = torch.where((ops == 1).view(-1, 1, 1), x + noise * self.noise_std, out)
        if self.drop_fraction > 0:
            counts = _round_counts(valid.sum(dim=1), self.drop_fraction)
            zero = _random_subset(valid, counts).unsqueeze(-1) & features
            out = torch.where((ops == 2).view(-1, 1, 1), x.masked_fill(zero, 0.0), out)
        return out

    def pair(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Two views of ``x`` whose operations differ in every row (FactorCL's ``augment``)."""
        first, second = self._draw_pair(x.shape[0], x.device)
        return self.apply(x, first), self.apply(x, second)

    def forward(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        if self.ops_per_view == 1:
            self._check(x)
            return self.apply(x, torch.randint(0, self.N_OPS, (x.shape[0],), device=x.device))
        first, second = self._draw_pair(x.shape[0], x.device)
        return self.apply(self.apply(x, first), second)


class ImageAugment(nn.Module):
    """SimCLR-style image augmentation with parameters drawn per image, (B, C, H, W) -> same.

    Per image: a random resized crop (area fraction in ``crop_scale``, aspect ratio
    log-uniform in [3/4, 4/3] narrowed to what fits in the image, uniform position, resized
    back to H×W bilinearly), a horizontal flip with probability ``flip_p`` — both in one
    ``F.affine_grid`` + ``F.grid_sample`` call — then colour jitter: brightness, contrast and
    saturation factors drawn in ``[1 - s, 1 + s]``, applied in that order (torchvision
    shuffles the order); saturation only for 3-channel images, contrast around the mean
    (luma for RGB) of each image. With ``clamp`` the jittered values are clipped after every
    jitter step to [0, 1] widened to the input batch's range (torchvision clips float images
    to [0, 1]; this does the same for images in [0, 1] and leaves 0..255-, 0..16- or
    standardised images their range instead of flattening them).

    Why not ``torchvision.transforms.v2``: applied to a batched tensor, v2 draws ONE set of
    random parameters for the whole batch, so every image of the batch gets the same crop
    and flip — wrong for contrastive learning, whose negatives would all share the view. A
    per-image torchvision pipeline can still be used in a user Dataset (then pass
    ``enabled=False`` here, or a custom augmentation).

    ``rowwise = True``: images are augmented independently of each other.

    Args:
        crop_scale: (min, max) area fraction of the crop, 0 < min <= max <= 1;
            (1, 1) disables cropping.
        flip_p: probability of the horizontal flip.
        brightness, contrast, saturation: jitter strengths s in [0, 1] (0 disables).
        clamp: clip jittered values to [0, 1] widened to the input batch's range.
        enabled: False makes ``forward`` the identity.
    """

    rowwise = True
    _RATIO = (3.0 / 4.0, 4.0 / 3.0)
    _LUMA = (0.299, 0.587, 0.114)

    def __init__(self, crop_scale: tuple[float, float] = (0.5, 1.0), flip_p: float = 0.5,
                 brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4, *,
                 clamp: bool = True, enabled: bool = True) -> None:
        super().__init__()
        try:
            low, high = (float(v) for v in crop_scale)
        except (TypeError, ValueError):
            raise DSSLError(f"ImageAugment: crop_scale must be a pair (min, max), got "
                            f"{crop_scale!r}") from None
        if not 0.0 < low <= high <= 1.0:
            raise DSSLError(f"ImageAugment: crop_scale must satisfy 0 < min <= max <= 1, got "
                            f"{crop_scale!r}")
        self.crop_scale = (low, high)
        self.flip_p = _check_unit("ImageAugment", "flip_p", flip_p)
        self.brightness = _check_unit("ImageAugment", "brightness", brightness)
        self.contrast = _check_unit("ImageAugment", "contrast", contrast)
        self.saturation = _check_unit("ImageAugment", "saturation", saturation)
        self.clamp, self.enabled = bool(clamp), enabled

    def _factor(self, strength: float, batch: int, x: Tensor) -> Tensor:
        """(B, 1, 1, 1) factors uniform in [1 - s, 1 + s]."""
        u = torch.rand(batch, 1, 1, 1, dtype=x.dtype, device=x.device)
        return 1.0 - strength + 2.0 * strength * u

    def _gray(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, 1, H, W): luma for RGB, the channel mean otherwise."""
        if x.shape[1] == 3:
            r, g, b = x.unbind(dim=1)
            return (self._LUMA[0] * r + self._LUMA[1] * g + self._LUMA[2] * b).unsqueeze(1)
        return x.mean(dim=1, keepdim=True)

    def _clip(self, x: Tensor, low: Tensor, high: Tensor) -> Tensor:
        return torch.minimum(torch.maximum(x, low), high) if self.clamp else x

    def forward(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        if x.dim() != 4 or not x.is_floating_point():
            raise DSSLError(f"ImageAugment expects a floating-point batch (B, C, H, W), got "
                            f"{x.dtype} of shape {tuple(x.shape)}")
        batch, _, height, width = x.shape
        opts = {"dtype": x.dtype, "device": x.device}
        low, high = self.crop_scale
        scale = low + (high - low) * torch.rand(batch, **opts)
        # Pixel aspect ratio r = (w_f · W) / (h_f · H) with w_f · h_f = scale; the crop fits
        # (w_f, h_f <= 1) iff scale · W/H <= r <= W / (scale · H).
        fit_low = torch.log(scale * (width / height))
        fit_high = torch.log((width / height) / scale)
        ratio_low = torch.minimum(torch.maximum(fit_low.new_tensor(math.log(self._RATIO[0])),
                                                fit_low), fit_high)
        ratio_high = torch.minimum(torch.maximum(fit_low.new_tensor(math.log(self._RATIO[1])),
                                                 fit_low), fit_high)
        ratio = torch.exp(ratio_low + (ratio_high - ratio_low) * torch.rand(batch, **opts))
        w_f = torch.sqrt(scale * ratio * (height / width)).clamp(max=1.0)
        h_f = torch.sqrt(scale / ratio * (width / height)).clamp(max=1.0)
        # Crop centre, in grid_sample's normalised [-1, 1] coordinates.
        tx = (1.0 - w_f) * (2.0 * torch.rand(batch, **opts) - 1.0)
        ty = (1.0 - h_f) * (2.0 * torch.rand(batch, **opts) - 1.0)
        flip = torch.where(torch.rand(batch, **opts) < self.flip_p, -1.0, 1.0).to(x.dtype)
        theta = torch.zeros(batch, 2, 3, **opts)
        theta[:, 0, 0] = w_f * flip
        theta[:, 0, 2] = tx
        theta[:, 1, 1] = h_f
        theta[:, 1, 2] = ty
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        # [0, 1] widened to the data's range (0-d tensors: no host sync).
        low, high = x.amin().clamp(max=0.0), x.amax().clamp(min=1.0)
        if self.brightness > 0:
            out = self._clip(out * self._factor(self.brightness, batch, out), low, high)
        if self.contrast > 0:
            mean = self._gray(out).mean(dim=(1, 2, 3), keepdim=True)
            c = self._factor(self.contrast, batch, out)
            out = self._clip(c * out + (1.0 - c) * mean, low, high)
        if self.saturation > 0 and out.shape[1] == 3:
            s = self._factor(self.saturation, batch, out)
            out = self._clip(s * out + (1.0 - s) * self._gray(out), low, high)
        return out


class TokenAugment(nn.Module):
    """Token-sequence augmentation, (B, L) int ids -> (B, L) int ids.

    Every row gets one of, with probability 1/3 each:

    - mask: ``round(mask_fraction · n)`` of its n non-pad tokens, drawn at random, become
      ``mask_id`` (default ``pad_id``, which the token encoder then ignores);
    - drop: ``round(drop_fraction · n)`` random non-pad tokens are removed; the remaining
      non-pad tokens move to the left in their order and the row is padded at the end
      (padding that sat inside the row moves to the end too);
    - identity.

    ``rowwise = True``: rows are augmented independently of each other.

    Args:
        pad_id: id of the padding token.
        mask_fraction: fraction of the non-pad tokens masked by the "mask" branch.
        drop_fraction: fraction of the non-pad tokens removed by the "drop" branch.
        mask_id: id written by the "mask" branch; None uses ``pad_id``.
        enabled: False makes ``forward`` the identity.
    """

    rowwise = True

    def __init__(self, pad_id: int = 0, mask_fraction: float = 0.15, drop_fraction: float = 0.1,
                 mask_id: int | None = None, *, enabled: bool = True) -> None:
        super().__init__()
        for name, value in {"pad_id": pad_id, "mask_id": mask_id}.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise DSSLError(f"TokenAugment: {name} must be a non-negative integer id, got "
                                f"{value!r}")
        self.pad_id = pad_id
        self.mask_id = pad_id if mask_id is None else mask_id
        self.mask_fraction = _check_fraction("TokenAugment", "mask_fraction", mask_fraction)
        self.drop_fraction = _check_fraction("TokenAugment", "drop_fraction", drop_fraction)
        self.enabled = enabled

    def forward(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        if x.dim() != 2 or x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise DSSLError(f"TokenAugment expects a (B, L) integer tensor of token ids, got "
                            f"{x.dtype} of shape {tuple(x.shape)}; convert ids with .long()")
        batch, length = x.shape
        device = x.device
        real = x != self.pad_id
        lengths = real.sum(dim=1)
        choice = torch.randint(0, 3, (batch,), device=device)
        # One set of random ranks serves both branches: a row takes only one of them.
        ranks = _ranks(torch.rand(x.shape, device=device).masked_fill(~real, 2.0))
        out = x
        if self.mask_fraction > 0:
            chosen = ranks < _round_counts(lengths, self.mask_fraction).unsqueeze(1)
            out = out.masked_fill(chosen & (choice == 0).unsqueeze(1), self.mask_id)
        if self.drop_fraction > 0:
            dropped = ranks < _round_counts(lengths, self.drop_fraction).unsqueeze(1)
            # Rows of other branches keep every position, so the stable sort leaves them as
            # they are; drop rows keep their unselected real tokens, in order, first.
            keep = torch.where((choice == 1).unsqueeze(1), real & ~dropped, True)
            order = (~keep).to(torch.int32).argsort(dim=1, stable=True)
            compact = out.gather(1, order)
            n_keep = keep.sum(dim=1, keepdim=True)
            tail = torch.arange(length, device=device) >= n_keep
            out = compact.masked_fill(tail, self.pad_id)
        return out
