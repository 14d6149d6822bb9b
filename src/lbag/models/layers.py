"""Building blocks of MIMO-UNet (Cho et al., "Rethinking Coarse-to-Fine Approach in Single Image
Deblurring", ICCV 2021), as used by LBAG (Li et al., "Real-World Deep Local Motion Deblurring",
AAAI 2023).

Attribute names (``main``, ``layers``, ``conv``, ``merge``) are those of the published checkpoints, so
their state_dicts load with ``strict=True``. Images are float NCHW tensors.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BasicConv", "ResBlock", "ResStage", "SCM", "FAM", "AFF"]


class BasicConv(nn.Module):
    """Conv (or transposed conv) with bias and an optional ReLU.

    Padding is ``k // 2`` for convs and ``k // 2 - 1`` for transposed convs, so a stride-2 transposed
    4x4 conv exactly doubles the size.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, relu: bool = True,
                 transpose: bool = False) -> None:
        super().__init__()
        if transpose:
            conv = nn.ConvTranspose2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2 - 1)
        else:
            conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2)
        layers: list[nn.Module] = [conv]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        # Published checkpoints nest the layers under ``main``.
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class ResBlock(nn.Module):
    """conv3x3 + ReLU, conv3x3, plus identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.main = nn.Sequential(BasicConv(channels, channels, 3, relu=True),
                                  BasicConv(channels, channels, 3, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + x


class ResStage(nn.Module):
    """``num_res`` residual blocks: one encoder (EBlock) or decoder (DBlock) stage."""

    def __init__(self, channels: int, num_res: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[ResBlock(channels) for _ in range(num_res)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


# --- SCM: shallow convolutional module ------------------------------------------------------------
class SCM(nn.Module):
    """Features of a downsampled input image: 3 -> c/4 -> c/2 -> c/2 -> c-3, concat the image, 1x1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.main = nn.Sequential(
            BasicConv(3, c // 4, 3, relu=True),
            BasicConv(c // 4, c // 2, 1, relu=True),
            BasicConv(c // 2, c // 2, 3, relu=True),
            BasicConv(c // 2, c - 3, 1, relu=True),
        )
        self.conv = BasicConv(c, c, 1, relu=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([image, self.main(image)], dim=1))


# --- FAM: feature attention module ----------------------------------------------------------------
class FAM(nn.Module):
    """``x1 + conv3x3(x1 * x2)``: merges encoder features with SCM features."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.merge = BasicConv(channels, channels, 3, relu=False)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return x1 + self.merge(x1 * x2)


# --- AFF: asymmetric feature fusion ---------------------------------------------------------------
class AFF(nn.Module):
    """Concat of the three scales' encoder features, 1x1 conv + ReLU, 3x3 conv."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(BasicConv(in_ch, out_ch, 1, relu=True),
                                  BasicConv(out_ch, out_ch, 3, relu=False))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, x4: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([x1, x2, x4], dim=1))
