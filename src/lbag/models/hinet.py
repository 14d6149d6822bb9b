"""HINet: Chen et al., "HINet: Half Instance Normalization Network for Image Restoration", CVPRW 2021
(megvii-model/HINet), in its GoPro configuration: width 64, depth 5, LeakyReLU 0.2, half instance
normalisation in encoder levels 3 and 4.

Two U-Nets in a row. Stage 1 restores the image; a supervised attention module (SAM) turns its
last features and its image into attention-weighted features for stage 2, whose encoder also receives
stage 1's encoder and decoder features at every level (cross-stage feature fusion, CSFF). Both stages
predict a residual added to the input. In a HIN block the first half of the channels after the first
3x3 conv goes through an affine InstanceNorm, the other half is left alone.

State-dict keys, their order and shapes are the official ones, so the published GoPro weights
(BasicSR ``{'params': state_dict}``) load with ``strict=True``. Input RGB in [0, 1]; the four 2x
downsamplings need a multiple of 16, so the image is reflect-padded bottom/right (replicate where the
image is too small to reflect; an image within 16x16 is widened to 16x32, as instance normalisation
needs more than one pixel at the coarsest level) and both outputs are cropped back. The official test pipeline runs the
network on 256x256 crops instead (``val.grids``); that is tiled inference, which the caller chooses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mimo_unet import DeblurOutput, _pad_to_multiple

__all__ = ["HINet", "hinet", "MODELS", "INFO", "PAD_MULTIPLE"]

PAD_MULTIPLE = 16  # 2 ** (depth - 1)
# Theoretical receptive field of the convolutions, in input pixels. One U-Net: the 3x3 convs of level l
# add 2 px times the stride 2^l (two per encoder block, two per decoder block), each 4x4/2 downsampling
# 3 px times its input stride, the 2x2/2 transposed convs nothing: 3 + 229 = 232 for stage 1; SAM adds
# 4, stage 2 another 229 and the last conv 2: 467 (measured by gradients with the norm off: 444-460
# depending on the pixel's phase). The half instance norms of levels 3-4 normalise with statistics of
# the whole feature map, so every output also depends, weakly, on the whole image: tiles of at least
# the 256 px the network was trained on keep those statistics close to the untiled ones.
RECEPTIVE_FIELD = 467


class _ConvBlock(nn.Module):
    """UNetConvBlock: two 3x3 convs with LeakyReLU, a 1x1 identity branch, optional half instance norm
    after the first conv, optional CSFF convs (stage 2 encoder) and optional 4x4/2 downsampling."""

    def __init__(self, cin: int, cout: int, downsample: bool, slope: float, csff: bool = False,
                 hin: bool = False) -> None:
        super().__init__()
        # Registration order = the official state-dict order.
        self.identity = nn.Conv2d(cin, cout, 1)
        self.conv_1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv_2 = nn.Conv2d(cout, cout, 3, padding=1)
        if downsample and csff:
            self.csff_enc = nn.Conv2d(cout, cout, 3, padding=1)
            self.csff_dec = nn.Conv2d(cout, cout, 3, padding=1)
        self.norm = nn.InstanceNorm2d(cout // 2, affine=True) if hin else None
        self.downsample = nn.Conv2d(cout, cout, 4, stride=2, padding=1, bias=False) if downsample else None
        self.slope = slope

    def forward(self, x: torch.Tensor, enc: torch.Tensor | None = None,
                dec: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns (downsampled output or None, full-resolution output)."""
        out = self.conv_1(x)
        if self.norm is not None:
            half, rest = torch.chunk(out, 2, dim=1)
            out = torch.cat([self.norm(half), rest], dim=1)
        out = F.leaky_relu(out, self.slope)
        out = F.leaky_relu(self.conv_2(out), self.slope) + self.identity(x)
        if enc is not None and dec is not None:
            out = out + self.csff_enc(enc) + self.csff_dec(dec)
        return (self.downsample(out) if self.downsample is not None else None), out


class _UpBlock(nn.Module):
    """2x2/2 transposed conv, concatenation with the skip, then a conv block without downsampling."""

    def __init__(self, cin: int, cout: int, slope: float) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.conv_block = _ConvBlock(cin, cout, False, slope)

    def forward(self, x: torch.Tensor, bridge: torch.Tensor) -> torch.Tensor:
        return self.conv_block(torch.cat([self.up(x), bridge], dim=1))[1]


class _SAM(nn.Module):
    """Supervised attention: an image from the features (plus the input), and features gated by it."""

    def __init__(self, feats: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(feats, feats, 3, padding=1)
        self.conv2 = nn.Conv2d(feats, 3, 3, padding=1)
        self.conv3 = nn.Conv2d(3, feats, 3, padding=1)

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.conv2(x) + image
        return self.conv1(x) * torch.sigmoid(self.conv3(img)) + x, img


class HINet(nn.Module):
    """Two-stage HINet.

    Args:
        wf: channels at full resolution (published: 64), doubled per level.
        depth: U-Net levels (published: 5).
        relu_slope: LeakyReLU slope (published: 0.2).
        hin_position_left, hin_position_right: encoder levels (inclusive) with half instance
            normalisation (GoPro: 3 and 4).

    Shape:
        input: (B, 3, H, W) float in [0, 1], any H and W.
        output: :class:`DeblurOutput` with images [stage-1 result, final result], both (B, 3, H, W),
        input + residual, not clamped; masks None.
    """

    def __init__(self, wf: int = 64, depth: int = 5, relu_slope: float = 0.2, hin_position_left: int = 3,
                 hin_position_right: int = 4) -> None:
        super().__init__()
        if depth < 1 or wf < 2 or wf % 2:
            raise ValueError(f"invalid HINet topology: wf={wf} (even), depth={depth}")
        self.depth = depth
        self.pad_multiple = 2 ** (depth - 1)
        chans = [wf * 2 ** i for i in range(depth)]
        self.down_path_1 = nn.ModuleList()
        self.down_path_2 = nn.ModuleList()
        self.conv_01 = nn.Conv2d(3, wf, 3, padding=1)
        self.conv_02 = nn.Conv2d(3, wf, 3, padding=1)
        prev = wf
        for i, c in enumerate(chans):
            hin = hin_position_left <= i <= hin_position_right
            down = i + 1 < depth
            self.down_path_1.append(_ConvBlock(prev, c, down, relu_slope, hin=hin))
            self.down_path_2.append(_ConvBlock(prev, c, down, relu_slope, csff=down, hin=hin))
            prev = c
        levels = list(reversed(range(depth - 1)))  # decoder order: coarse -> fine
        self.up_path_1 = nn.ModuleList([_UpBlock(chans[i + 1], chans[i], relu_slope) for i in levels])
        self.up_path_2 = nn.ModuleList([_UpBlock(chans[i + 1], chans[i], relu_slope) for i in levels])
        self.skip_conv_1 = nn.ModuleList([nn.Conv2d(chans[i], chans[i], 3, padding=1) for i in levels])
        self.skip_conv_2 = nn.ModuleList([nn.Conv2d(chans[i], chans[i], 3, padding=1) for i in levels])
        self.sam12 = _SAM(wf)
        self.cat12 = nn.Conv2d(2 * wf, wf, 1)
        self.last = nn.Conv2d(wf, 3, 3, padding=1)

    def _unet(self, x: torch.Tensor, stage: int, encs_1: list[torch.Tensor] | None = None,
              decs_1: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """One stage's encoder-decoder; stage 2 fuses stage 1's encoder/decoder features (CSFF).

        Returns (last decoder features, encoder skips fine->coarse, decoder outputs coarse->fine)."""
        downs, ups, skips = ((self.down_path_1, self.up_path_1, self.skip_conv_1) if stage == 1
                             else (self.down_path_2, self.up_path_2, self.skip_conv_2))
        encs: list[torch.Tensor] = []
        for i, block in enumerate(downs):
            fuse = stage == 2 and i + 1 < self.depth
            down, full = block(x, encs_1[i] if fuse else None, decs_1[-i - 1] if fuse else None)
            if down is None:
                x = full
            else:
                x = down
                encs.append(full)
        decs: list[torch.Tensor] = []
        for i, (up, skip) in enumerate(zip(ups, skips)):
            x = up(x, skip(encs[-i - 1]))
            decs.append(x)
        return x, encs, decs

    def forward(self, x: torch.Tensor) -> DeblurOutput:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected input of shape (B, 3, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        image = _pad_to_multiple(x, self.pad_multiple)
        if image.shape[-2] * image.shape[-1] == self.pad_multiple ** 2 and self.depth > 1:
            # A single pixel at the coarsest level has no instance statistics: widen tiny inputs.
            image = F.pad(image, (0, self.pad_multiple, 0, 0), mode="replicate")
        feats, encs, decs = self._unet(self.conv_01(image), 1)
        sam_feats, out_1 = self.sam12(feats, image)
        x2 = self.cat12(torch.cat([self.conv_02(image), sam_feats], dim=1))
        feats, _, _ = self._unet(x2, 2, encs, decs)
        out_2 = self.last(feats) + image
        return DeblurOutput([out_1[..., :h, :w], out_2[..., :h, :w]], [None, None])


def hinet(**kwargs) -> HINet:
    """HINet as released for GoPro (wf 64, HIN in levels 3-4; 88,668,806 parameters)."""
    return HINet(**kwargs)


MODELS = {"hinet": hinet}
INFO = {"hinet": {"pad_multiple": PAD_MULTIPLE, "receptive_field": RECEPTIVE_FIELD}}
