"""DeepDeblur: the multi-scale residual network of Nah et al., "Deep Multi-scale Convolutional Neural
Network for Dynamic Scene Deblurring", CVPR 2017, as released in PyTorch (MSResNet, SeungjunNah/
DeepDeblur-PyTorch): 3 scales, 19 residual blocks of 64 channels with 5x5 kernels per scale.

State-dict keys, their order and shapes are the official ones, so the published GoPro weights
(``{'G': state_dict}``) load with ``strict=True``. Every convention of the official pipeline lives
inside :class:`DeepDeblur`; callers give RGB in [0, 1] of any size and get [0, 1] back:

* the image is edge-padded bottom/right to a multiple of 4 (the official demo does this);
* it is scaled to [0, 255] (float, not rounded) and a 3-level Gaussian pyramid is built like
  ``skimage.transform.pyramid_gaussian(img, 2, channel_axis=-1)``: per level a Gaussian blur
  (sigma 2/3, radius 3, symmetric borders) then bilinear halving with pixel-centre alignment;
* the network subtracts 127.5, runs coarse to fine (each coarser output is upsampled by a conv +
  pixel shuffle and concatenated with the next finer input), and adds 127.5 back;
* the outputs are divided by 255 and cropped to ceil(H / s) x ceil(W / s) at scale 1/s.

The network has no normalisation and no global skip, so tiny input differences grow through the
3 x 19 blocks: the pyramid is built in (at least) float32 even under autocast.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from .mimo_unet import DeblurOutput

__all__ = ["DeepDeblur", "deepdeblur", "gaussian_pyramid", "MODELS", "INFO", "PAD_MULTIPLE"]

PAD_MULTIPLE = 4  # 2 ** (n_scales - 1): every pyramid level halves exactly
# Theoretical receptive field of a full-resolution output pixel, in input pixels: the pyramid
# (7-tap blur + 2-tap halving, twice) reaches 22 px, each of the 40 5x5 convs of a scale adds 4 px
# times that scale's stride (4, 2, 1), each upsampling conv 4 px times its stride:
# 22 + 40*4*4 + 4*4 + 40*4*2 + 4*2 + 40*4 = 1166.
RECEPTIVE_FIELD = 1166

_PYRAMID_SIGMA = 2.0 / 3.0  # skimage pyramid_reduce default for downscale 2: 2 * downscale / 6
_PYRAMID_TRUNCATE = 4.0  # scipy.ndimage.gaussian_filter default


# --- the Gaussian pyramid ---------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _gaussian_taps(sigma: float, truncate: float) -> tuple[float, ...]:
    """Normalised 1-D Gaussian taps over [-r, r], r = int(truncate * sigma + 0.5) (scipy's radius)."""
    radius = int(truncate * sigma + 0.5)
    taps = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-radius, radius + 1)]
    total = sum(taps)
    return tuple(t / total for t in taps)


def _symmetric_index(n: int, radius: int, device: torch.device) -> torch.Tensor:
    """Indices of an axis of length n extended by ``radius`` on each side with half-sample symmetric
    reflection (d c b a | a b c d | d c b a), valid for any n >= 1 (scipy's 'reflect')."""
    idx = torch.arange(-radius, n + radius, device=device) % (2 * n)
    return torch.where(idx >= n, 2 * n - 1 - idx, idx)


def _blur(x: torch.Tensor, sigma: float = _PYRAMID_SIGMA) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) with symmetric borders: rows (H) first, then columns."""
    taps = _gaussian_taps(sigma, _PYRAMID_TRUNCATE)
    r = len(taps) // 2
    c = x.shape[1]
    kernel = torch.tensor(taps, dtype=x.dtype, device=x.device)
    x = x.index_select(2, _symmetric_index(x.shape[2], r, x.device))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    x = x.index_select(3, _symmetric_index(x.shape[3], r, x.device))
    return F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def _reduce(x: torch.Tensor) -> torch.Tensor:
    """One pyramid_reduce step: blur, then bilinear resize to ceil(H/2) x ceil(W/2) (pixel centres
    aligned, no antialiasing; downscaling never reads outside the image, so no border mode)."""
    size = (math.ceil(x.shape[2] / 2), math.ceil(x.shape[3] / 2))
    return F.interpolate(_blur(x), size=size, mode="bilinear", align_corners=False)


def gaussian_pyramid(x: torch.Tensor, n_levels: int = 3) -> list[torch.Tensor]:
    """The Gaussian pyramid of ``skimage.transform.pyramid_gaussian(img, n_levels - 1, channel_axis=-1)``.

    Computed with autocast off in float32 (float64 for float64 input), returned in the input's dtype.

    Args:
        x: (B, C, H, W) image, any value range (the pyramid is linear).
        n_levels: number of levels, the input included.

    Returns:
        ``n_levels`` tensors, fine to coarse; level k is (B, C, ceil(H/2^k), ceil(W/2^k)).
    """
    with torch.autocast(x.device.type, enabled=False):
        levels = [x.to(torch.promote_types(x.dtype, torch.float32))]
        for _ in range(n_levels - 1):
            levels.append(_reduce(levels[-1]))
    return [level.to(x.dtype) for level in levels]


# --- the network ------------------------------------------------------------------------------------
def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class _ResBlock(nn.Module):
    """conv - ReLU - conv, plus the input (``body.0`` / ``body.2`` in the state dict)."""

    def __init__(self, feats: int, k: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(feats, feats, k), nn.ReLU(inplace=True), _conv(feats, feats, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class _ScaleNet(nn.Module):
    """One scale: head conv, ``n_blocks`` residual blocks, tail conv to 3 channels (no global skip)."""

    def __init__(self, cin: int, feats: int, k: int, n_blocks: int) -> None:
        super().__init__()
        layers = [_conv(cin, feats, k)] + [_ResBlock(feats, k) for _ in range(n_blocks)] + [_conv(feats, 3, k)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _UpConv(nn.Module):
    """Coarse output -> next finer scale: 5x5 conv to 12 channels, then pixel shuffle x2 (``uppath``)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.uppath = nn.Sequential(_conv(3, 12, k), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.uppath(x)


class DeepDeblur(nn.Module):
    """MSResNet (Nah et al. 2017) taking and returning RGB in [0, 1].

    Args:
        n_scales: pyramid levels (published: 3).
        n_resblocks: residual blocks per scale (published: 19).
        n_feats: channels (published: 64).
        kernel_size: conv kernel (published: 5).
        rgb_range: value range the network was trained in (published: 255); it subtracts half of it.

    Shape:
        input: (B, 3, H, W) float in [0, 1], any H and W.
        output: :class:`DeblurOutput`, images coarse to fine, each (B, 3, ceil(H/s), ceil(W/s)) for
        s = 2^(n_scales-1) ... 1; masks all None.
    """

    def __init__(self, n_scales: int = 3, n_resblocks: int = 19, n_feats: int = 64, kernel_size: int = 5,
                 rgb_range: float = 255.0) -> None:
        super().__init__()
        if n_scales < 1 or n_resblocks < 0 or n_feats < 1 or kernel_size % 2 == 0:
            raise ValueError(f"invalid DeepDeblur topology: n_scales={n_scales}, n_resblocks={n_resblocks}, "
                             f"n_feats={n_feats}, kernel_size={kernel_size} (odd)")
        self.n_scales = n_scales
        self.rgb_range = float(rgb_range)
        self.pad_multiple = 2 ** (n_scales - 1)
        # Index 0 is the finest scale (input + upsampled coarser output: 6 channels), the last the coarsest.
        self.body_models = nn.ModuleList(
            [_ScaleNet(6 if s < n_scales - 1 else 3, n_feats, kernel_size, n_resblocks) for s in range(n_scales)])
        # Index 0 has no upsampler (the official list holds None there; Identity has no tensors either).
        self.conv_end_models = nn.ModuleList([nn.Identity()] + [_UpConv(kernel_size) for _ in range(1, n_scales)])

    def forward(self, x: torch.Tensor) -> DeblurOutput:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected input of shape (B, 3, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.pad_multiple, (-w) % self.pad_multiple
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")  # the demo's np.pad(mode='edge')
        mean = self.rgb_range / 2
        pyramid = [level - mean for level in gaussian_pyramid(x * self.rgb_range, self.n_scales)]

        outputs: list[torch.Tensor] = [x] * self.n_scales  # placeholders, all overwritten
        inp = pyramid[-1]
        for s in reversed(range(self.n_scales)):
            outputs[s] = self.body_models[s](inp)
            if s > 0:
                inp = torch.cat([pyramid[s - 1], self.conv_end_models[s](outputs[s])], dim=1)

        images = []
        for s in reversed(range(self.n_scales)):  # coarse -> fine
            scale = 2 ** s
            # At least float32 for the shift back: under bf16 autocast, 127.5 + x would round again.
            img = (outputs[s].to(torch.promote_types(outputs[s].dtype, x.dtype)) + mean) / self.rgb_range
            images.append(img[..., :math.ceil(h / scale), :math.ceil(w / scale)])
        return DeblurOutput(images, [None] * self.n_scales)


def deepdeblur(**kwargs) -> DeepDeblur:
    """DeepDeblur as released for GoPro: 3 scales, 19 blocks, 64 features, 5x5 (11,721,321 parameters)."""
    return DeepDeblur(**kwargs)


MODELS = {"deepdeblur": deepdeblur}
INFO = {"deepdeblur": {"pad_multiple": PAD_MULTIPLE, "receptive_field": RECEPTIVE_FIELD}}
