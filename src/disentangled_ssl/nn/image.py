"""The default encoder of the "image" modality kind: a small residual CNN.

An image batch is a float tensor (B, C, H, W) with values roughly in [0, 1]; any H, W >= 8.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.nn.sequence import check_positive_ints

#: Smallest height and width accepted.
MIN_SIZE = 4


def group_norm(channels: int, max_groups: int = 8) -> nn.GroupNorm:
    """GroupNorm with the largest number of groups <= ``max_groups`` dividing ``channels``.

    GroupNorm normalises each image on its own: BatchNorm would mix the statistics of all the
    images of a batch, letting a contrastive model tell positives from negatives through the
    batch statistics (the objectives encode several views and modalities in one batch).
    """
    return nn.GroupNorm(math.gcd(channels, max_groups), channels)


class BasicBlock(nn.Module):
    """ResNet basic block: ``relu(x' + GN(conv3x3(relu(GN(conv3x3(x))))))``, x' = x or a
    strided 1x1 conv + GN when the shape changes. (B, c_in, H, W) -> (B, c_out, H/s, W/s)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.norm1 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.norm2 = group_norm(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                group_norm(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        h = self.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return self.relu(h + self.shortcut(x))


class ImageEncoder(nn.Module):
    """Residual CNN of an image modality: (B, C, H, W) -> (B, out_dim).

    stem conv3x3 (``width`` channels) + GroupNorm + ReLU → ``n_stages`` stages of
    ``blocks_per_stage`` :class:`BasicBlock` s with ``width · 2^k`` channels, the first block of
    every stage after the first with stride 2 → global average pooling → Linear. GroupNorm
    (at most 8 groups) instead of BatchNorm keeps every image's features independent of the
    rest of its batch. Works for any H, W >= 8 (e.g. 28×28, 32×32, 64×64); inputs are cast to
    the module's dtype.

    Args:
        in_channels: C.
        out_dim: output size.
        width: channels of the stem and the first stage.
        n_stages: stages (resolution halves between consecutive stages).
        blocks_per_stage: basic blocks per stage.
        pool: the final feature map is average-pooled to ``pool × pool`` cells and flattened;
            1 (global pooling) forgets where a feature is, more keeps the coarse layout (a
            flag's stripes, an arrow's direction) at ``pool²`` times the features.
    """

    def __init__(self, in_channels: int, out_dim: int, *, width: int = 32, n_stages: int = 3,
                 blocks_per_stage: int = 1, pool: int = 1) -> None:
        super().__init__()
        check_positive_ints("ImageEncoder", in_channels=in_channels, out_dim=out_dim,
                            width=width, n_stages=n_stages, blocks_per_stage=blocks_per_stage,
                            pool=pool)
        self.in_channels, self.out_dim = in_channels, out_dim
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                                  group_norm(width), nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        channels = width
        for stage in range(n_stages):
            target = width * 2**stage
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(BasicBlock(channels, target, stride))
                channels = target
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.out = nn.Linear(channels * pool * pool, out_dim)
        self.feature_dim = channels * pool * pool

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, out_dim)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise DSSLError(f"ImageEncoder expects a batch of shape (B, {self.in_channels}, H, "
                            f"W), got {tuple(x.shape)}; check in_channels (grayscale images "
                            f"need a channel axis: x.unsqueeze(1))")
        if x.shape[2] < MIN_SIZE or x.shape[3] < MIN_SIZE:
            raise DSSLError(f"ImageEncoder needs images of at least {MIN_SIZE}x{MIN_SIZE} "
                            f"pixels, got {x.shape[2]}x{x.shape[3]}; upsample them (e.g. "
                            f"torch.nn.functional.interpolate) or use a custom encoder")
        if not x.is_floating_point():
            raise DSSLError(f"ImageEncoder expects a floating-point tensor, got {x.dtype}; "
                            f"convert with .float() (and scale to [0, 1], e.g. / 255)")
        h = self.stages(self.stem(x.to(self.out.weight.dtype)))
        return self.out(self.pool(h).flatten(1))
