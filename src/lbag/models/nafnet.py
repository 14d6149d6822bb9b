"""NAFNet: Chen et al., "Simple Baselines for Image Restoration", ECCV 2022 (megvii-research/NAFNet),
in its GoPro configuration (encoder blocks [1, 1, 1, 28], 1 middle block, decoder blocks [1, 1, 1, 1])
at width 32 or 64, with the test-time local statistics of NAFNetLocal.

A NAFBlock has no nonlinear activation: LayerNorm over channels, 1x1 conv (x2 channels), 3x3 depthwise
conv, SimpleGate (the two channel halves multiplied), simplified channel attention (SCA: channel
means through a 1x1 conv, multiplied in), 1x1 conv, added to the input scaled by a learned ``beta``;
then LayerNorm, 1x1 conv, SimpleGate, 1x1 conv, added scaled by ``gamma`` (both start at 0, so a
fresh block is the identity). The network is a 4-level U-Net around these blocks with 2x2/2 conv
downsampling, 1x1 conv + pixel-shuffle upsampling, additive skips and a global residual.

Test-time local statistics (NAFNetLocal; Chu et al., "Improving Image Restoration by Revisiting
Global Information Aggregation", ECCV 2022): in eval mode the SCA's global average is replaced by an
average over a window of 1.5x the training patch (384 px for 256 px patches; at a level of stride s,
384/s feature pixels), as in the official code with ``train_size`` (1, 3, 256, 256) and
``base_size`` = 1.5x ``train_size``. A feature map no larger than the window in both directions keeps
the global average, so images up to 384x384 get plain NAFNet; larger ones get the sliding-window mean
(valid windows only, replicate-padded back to the map size, as the official non-``fast_imp`` path).
In training mode the pooling is always global (the two agree on patches up to 384 px).

State-dict keys, their order and shapes are the official ones, so the published GoPro weights
(BasicSR ``{'params': state_dict}``) load with ``strict=True``. Input RGB in [0, 1]; the image is
zero-padded bottom/right to a multiple of 16 (as ``check_image_size`` does) and the output cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mimo_unet import DeblurOutput

__all__ = ["NAFNet", "nafnet", "LocalAvgPool", "MODELS", "INFO", "PAD_MULTIPLE"]

PAD_MULTIPLE = 16  # 2 ** len(enc_blk_nums)
# Theoretical receptive field (eval mode, 256 px training patches), in input pixels: at stride s a
# block adds 2s (3x3 depthwise conv) + (384/s - 1) s (its SCA window), i.e. 384 + s; 33 blocks plus
# the 3x3 intro/ending convs and the 2x2/2 downsamplings give 14,106 px -- more than any image, so
# every output pixel depends on the whole image and tiling always changes the result. In training
# mode (global SCA) it is the whole image by construction.
RECEPTIVE_FIELD = 14106
TRAIN_SIZE = 256  # the official train_size for GoPro: (1, 3, 256, 256)


def _box_mean(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Mean over every valid kh x kw window of (B, C, H, W): (B, C, H-kh+1, W-kw+1), via one running
    sum per axis in (at least) float32."""
    s = F.pad(x.to(torch.promote_types(x.dtype, torch.float32)).cumsum(dim=-1), (1, 0))
    s = s[..., kw:] - s[..., :-kw]
    s = F.pad(s.cumsum(dim=-2), (0, 0, 1, 0))
    return (s[..., kh:, :] - s[..., :-kh, :]) / (kh * kw)


class LocalAvgPool(nn.Module):
    """SCA pooling: global average in training (and for maps within the window); in eval mode a
    ``kernel``-sized sliding mean, replicate-padded back to the input size (centred, the extra pixel
    at the bottom/right).

    Args:
        kernel: (kh, kw) window in feature pixels, or None for always-global pooling.
    """

    def __init__(self, kernel: tuple[int, int] | None) -> None:
        super().__init__()
        self.kernel = kernel

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.training or self.kernel is None or (self.kernel[0] >= h and self.kernel[1] >= w):
            return F.adaptive_avg_pool2d(x, 1)
        kh, kw = min(h, self.kernel[0]), min(w, self.kernel[1])
        with torch.autocast(x.device.type, enabled=False):
            out = _box_mean(x, kh, kw)
        dh, dw = h - out.shape[-2], w - out.shape[-1]
        out = F.pad(out, (dw // 2, (dw + 1) // 2, dh // 2, (dh + 1) // 2), mode="replicate")
        return out.to(x.dtype)


class _LayerNorm2d(nn.Module):
    """LayerNorm over the channels of (B, C, H, W), eps 1e-6 (``weight``, ``bias``)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


def _simple_gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return a * b


class _NAFBlock(nn.Module):
    """The NAFNet block (expansion 2 for both halves, no dropout)."""

    def __init__(self, c: int, pool_kernel: tuple[int, int] | None) -> None:
        super().__init__()
        # Registration order = the official state-dict order (beta/gamma come first there as direct
        # parameters of the block).
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.conv2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.conv3 = nn.Conv2d(c, c, 1)
        self.sca = nn.Sequential(LocalAvgPool(pool_kernel), nn.Conv2d(c, c, 1))
        self.conv4 = nn.Conv2d(c, 2 * c, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        self.norm1 = _LayerNorm2d(c)
        self.norm2 = _LayerNorm2d(c)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = _simple_gate(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        x = self.conv5(_simple_gate(self.conv4(self.norm2(y))))
        return y + x * self.gamma


class NAFNet(nn.Module):
    """NAFNet / NAFNetLocal.

    Args:
        width: channels at full resolution (published: 32 or 64), doubled per level.
        enc_blk_nums, middle_blk_num, dec_blk_nums: blocks per level (GoPro: [1, 1, 1, 28], 1, [1, 1, 1, 1]).
        train_size: side (or (H, W)) of the training patches the local-statistics window is derived from
            (official: 256); the window is 1.5x it.
        local: use the test-time local statistics in eval mode (NAFNetLocal); False gives plain NAFNet.

    Shape:
        input: (B, 3, H, W) float in [0, 1], any H and W.
        output: :class:`DeblurOutput` with images [input + residual], (B, 3, H, W), not clamped;
        masks [None].
    """

    def __init__(self, width: int = 32, enc_blk_nums: tuple[int, ...] = (1, 1, 1, 28), middle_blk_num: int = 1,
                 dec_blk_nums: tuple[int, ...] = (1, 1, 1, 1), train_size: int | tuple[int, int] = TRAIN_SIZE,
                 local: bool = True) -> None:
        super().__init__()
        if width < 1 or len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError(f"invalid NAFNet topology: width={width}, {len(enc_blk_nums)} encoder levels vs "
                             f"{len(dec_blk_nums)} decoder levels")
        levels = len(enc_blk_nums)
        self.pad_multiple = 2 ** levels
        kernels = _pool_kernels(train_size, levels, self.pad_multiple) if local else [None] * (levels + 1)
        chans = [width * 2 ** i for i in range(levels + 1)]

        def stage(level: int, n: int) -> nn.Sequential:
            return nn.Sequential(*[_NAFBlock(chans[level], kernels[level]) for _ in range(n)])

        # Registration order = the official state-dict order.
        self.intro = nn.Conv2d(3, width, 3, padding=1)
        self.ending = nn.Conv2d(width, 3, 3, padding=1)
        self.encoders = nn.ModuleList([stage(i, n) for i, n in enumerate(enc_blk_nums)])
        self.decoders = nn.ModuleList([stage(levels - 1 - i, n) for i, n in enumerate(dec_blk_nums)])
        self.middle_blks = stage(levels, middle_blk_num)
        self.ups = nn.ModuleList([nn.Sequential(nn.Conv2d(chans[i + 1], 2 * chans[i + 1], 1, bias=False),
                                                nn.PixelShuffle(2)) for i in reversed(range(levels))])
        self.downs = nn.ModuleList([nn.Conv2d(chans[i], chans[i + 1], 2, stride=2) for i in range(levels)])

    def forward(self, x: torch.Tensor) -> DeblurOutput:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected input of shape (B, 3, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        inp = F.pad(x, (0, (-w) % self.pad_multiple, 0, (-h) % self.pad_multiple))  # zeros
        feat = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            feat = encoder(feat)
            skips.append(feat)
            feat = down(feat)
        feat = self.middle_blks(feat)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            feat = decoder(up(feat) + skip)
        out = self.ending(feat) + inp
        return DeblurOutput([out[..., :h, :w]], [None])


def _pool_kernels(train_size: int | tuple[int, int], levels: int, multiple: int) -> list[tuple[int, int]]:
    """SCA windows per level (0 = full resolution ... ``levels`` = middle), as NAFNetLocal derives
    them: the map size of a (zero-padded) training patch at that level times base/train, base being
    int(1.5 x train)."""
    th, tw = (train_size, train_size) if isinstance(train_size, int) else train_size
    if th < 1 or tw < 1:
        raise ValueError(f"train_size must be positive, got {train_size}")
    ph, pw = -(-th // multiple) * multiple, -(-tw // multiple) * multiple
    bh, bw = int(th * 1.5), int(tw * 1.5)
    return [((ph >> lv) * bh // th, (pw >> lv) * bw // tw) for lv in range(levels + 1)]


def nafnet(width: int = 32, **kwargs) -> NAFNet:
    """NAFNet(Local) as released for GoPro: width 32 (17,111,907 parameters) or 64 (67,888,835)."""
    if width not in (32, 64):
        raise ValueError(f"the published NAFNet GoPro models have width 32 or 64, got {width}; "
                         "build NAFNet(width=...) directly for another width")
    return NAFNet(width=width, **kwargs)


def nafnet_width32(**kwargs) -> NAFNet:
    """NAFNet-GoPro-width32 (17,111,907 parameters)."""
    return nafnet(width=32, **kwargs)


def nafnet_width64(**kwargs) -> NAFNet:
    """NAFNet-GoPro-width64 (67,888,835 parameters)."""
    return nafnet(width=64, **kwargs)


MODELS = {"nafnet_width32": nafnet_width32, "nafnet_width64": nafnet_width64}
# The official GoPro test runs whole images (no grids) and every output pixel depends on the whole
# image: automatic tiling should keep it whole when memory allows.
INFO = {name: {"pad_multiple": PAD_MULTIPLE, "receptive_field": RECEPTIVE_FIELD, "whole_image": True}
        for name in MODELS}
