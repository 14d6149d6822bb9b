"""MIMO-UNet, MIMO-UNet+ and LBAG as one configurable network.

MIMO-UNet: Cho et al., "Rethinking Coarse-to-Fine Approach in Single Image Deblurring", ICCV 2021.
LBAG: Li et al., "Real-World Deep Local Motion Deblurring", AAAI 2023 — MIMO-UNet+ whose three output
heads predict 4 channels: a gate (the blur mask, ``sigmoid`` clamped to at least ``gate_min``) and a
residual that is added to the input only where the gate is open.

The three variants differ only in constructor arguments; each is a factory function below.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import AFF, FAM, SCM, BasicConv, ResStage

__all__ = ["MIMOUNetConfig", "DeblurOutput", "MIMOUNet", "mimo_unet", "mimo_unet_plus", "lbag",
           "lbag_small", "build_model", "PRESETS"]


@dataclass(frozen=True)
class MIMOUNetConfig:
    """Topology of the network; everything needed to rebuild it from a weights file.

    Attributes:
        num_res: residual blocks per encoder/decoder stage (MIMO-UNet 8, MIMO-UNet+ and LBAG 20).
        width: channels at full scale; 2x and 4x at 1/2 and 1/4 scale (published: 32).
        gated: LBAG gate heads (4 output channels) instead of plain 3-channel residual heads.
        dropout: Dropout2d probability on the two AFF outputs (MIMO-UNet+ and LBAG: 0.1; 0 disables).
        gate_min: lower clamp of the gate, applied in training and inference (published: 0.1).
    """

    num_res: int = 20
    width: int = 32
    gated: bool = True
    dropout: float = 0.1
    gate_min: float = 0.1

    def __post_init__(self) -> None:
        if self.num_res < 1:
            raise ValueError(f"num_res must be >= 1, got {self.num_res}")
        if self.width < 8 or self.width % 4:
            raise ValueError(f"width must be a multiple of 4 and >= 8, got {self.width}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.gate_min < 1.0:
            raise ValueError(f"gate_min must be in [0, 1), got {self.gate_min}")

    def to_dict(self) -> dict:
        return asdict(self)


class DeblurOutput(NamedTuple):
    """What the network returns.

    Attributes:
        images: deblurred images at 1/4, 1/2 and full scale, each (B, 3, ceil(H/s), ceil(W/s)).
        masks: gate masks in the same order, each (B, 1, ceil(H/s), ceil(W/s)) with values in
            [gate_min, 1]; ``[None, None, None]`` for ungated models.
    """

    images: list[torch.Tensor]
    masks: list[torch.Tensor | None]


class MIMOUNet(nn.Module):
    """Multi-input multi-output U-Net with optional LBAG gate heads.

    Shape:
        input: (B, 3, H, W), float, any H and W (reflect-padded to a multiple of 4, cropped back).
        output: :class:`DeblurOutput`.
    """

    def __init__(self, config: MIMOUNetConfig | None = None, **kwargs) -> None:
        super().__init__()
        if config is None:
            config = MIMOUNetConfig(**kwargs)
        elif kwargs:
            raise TypeError("pass either a MIMOUNetConfig or keyword arguments, not both")
        self.config = config
        c, n = config.width, config.num_res
        out_ch = 4 if config.gated else 3

        self.Encoder = nn.ModuleList([ResStage(c, n), ResStage(2 * c, n), ResStage(4 * c, n)])
        self.feat_extract = nn.ModuleList([
            BasicConv(3, c, 3, relu=True),
            BasicConv(c, 2 * c, 3, stride=2, relu=True),
            BasicConv(2 * c, 4 * c, 3, stride=2, relu=True),
            BasicConv(4 * c, 2 * c, 4, stride=2, relu=True, transpose=True),
            BasicConv(2 * c, c, 4, stride=2, relu=True, transpose=True),
            BasicConv(c, out_ch, 3, relu=False),  # full-scale head
        ])
        self.Decoder = nn.ModuleList([ResStage(4 * c, n), ResStage(2 * c, n), ResStage(c, n)])
        self.Convs = nn.ModuleList([BasicConv(4 * c, 2 * c, 1, relu=True), BasicConv(2 * c, c, 1, relu=True)])
        # 1/4- and 1/2-scale heads.
        self.ConvsOut = nn.ModuleList([BasicConv(4 * c, out_ch, 3, relu=False),
                                       BasicConv(2 * c, out_ch, 3, relu=False)])
        self.AFFs = nn.ModuleList([AFF(7 * c, c), AFF(7 * c, 2 * c)])
        self.FAM1 = FAM(4 * c)
        self.SCM1 = SCM(4 * c)
        self.FAM2 = FAM(2 * c)
        self.SCM2 = SCM(2 * c)
        # The "+" variants regularise the fused skip features (no parameters, so keys are unchanged).
        self.drop1 = nn.Dropout2d(config.dropout) if config.dropout > 0 else nn.Identity()
        self.drop2 = nn.Dropout2d(config.dropout) if config.dropout > 0 else nn.Identity()

    # --- gate head --------------------------------------------------------------------------------
    def _head(self, feat: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.config.gated:
            return feat + image, None
        mask = torch.sigmoid(feat[:, :1]).clamp_min(self.config.gate_min)
        return feat[:, 1:] * mask + image, mask

    def forward(self, x: torch.Tensor) -> DeblurOutput:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected input of shape (B, 3, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        x = _pad_to_multiple(x, 4)

        x_2 = F.interpolate(x, scale_factor=0.5)  # nearest, as published
        x_4 = F.interpolate(x_2, scale_factor=0.5)
        z2 = self.SCM2(x_2)
        z4 = self.SCM1(x_4)

        # Encoder
        res1 = self.Encoder[0](self.feat_extract[0](x))
        z = self.FAM2(self.feat_extract[1](res1), z2)
        res2 = self.Encoder[1](z)
        z = self.FAM1(self.feat_extract[2](res2), z4)
        z = self.Encoder[2](z)

        # AFF: every skip sees all three scales
        z12 = F.interpolate(res1, scale_factor=0.5)
        z21 = F.interpolate(res2, scale_factor=2.0)
        z42 = F.interpolate(z, scale_factor=2.0)
        z41 = F.interpolate(z42, scale_factor=2.0)
        res2 = self.drop2(self.AFFs[1](z12, res2, z42))
        res1 = self.drop1(self.AFFs[0](res1, z21, z41))

        # Decoder with a head at each scale
        z = self.Decoder[0](z)
        out4, mask4 = self._head(self.ConvsOut[0](z), x_4)
        z = self.feat_extract[3](z)
        z = self.Decoder[1](self.Convs[0](torch.cat([z, res2], dim=1)))
        out2, mask2 = self._head(self.ConvsOut[1](z), x_2)
        z = self.feat_extract[4](z)
        z = self.Decoder[2](self.Convs[1](torch.cat([z, res1], dim=1)))
        out1, mask1 = self._head(self.feat_extract[5](z), x)

        images, masks = [], []
        for scale, img, mask in ((4, out4, mask4), (2, out2, mask2), (1, out1, mask1)):
            hs, ws = math.ceil(h / scale), math.ceil(w / scale)
            images.append(img[..., :hs, :ws])
            masks.append(None if mask is None else mask[..., :hs, :ws])
        return DeblurOutput(images, masks)


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom/right to a multiple of ``multiple``: reflect where the image allows it, else replicate."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


# --- factories ------------------------------------------------------------------------------------
def mimo_unet(**kwargs) -> MIMOUNet:
    """MIMO-UNet: 8 residual blocks per stage, plain heads, no dropout (6,807,171 parameters)."""
    return MIMOUNet(MIMOUNetConfig(**{"num_res": 8, "gated": False, "dropout": 0.0, **kwargs}))


def mimo_unet_plus(**kwargs) -> MIMOUNet:
    """MIMO-UNet+: 20 residual blocks per stage, Dropout2d(0.1), plain heads (16,107,651 parameters)."""
    return MIMOUNet(MIMOUNetConfig(**{"num_res": 20, "gated": False, "dropout": 0.1, **kwargs}))


def lbag(**kwargs) -> MIMOUNet:
    """LBAG: MIMO-UNet+ with gated 4-channel heads, gate clamp 0.1 (16,109,670 parameters)."""
    return MIMOUNet(MIMOUNetConfig(**{"num_res": 20, "gated": True, "dropout": 0.1, "gate_min": 0.1, **kwargs}))


def lbag_small(**kwargs) -> MIMOUNet:
    """LBAG with 2 residual blocks per stage and width 16: a CPU preset for tests, the demo and quick
    training. Not a published model."""
    return lbag(**{"num_res": 2, "width": 16, **kwargs})


PRESETS = {"mimo_unet": mimo_unet, "mimo_unet_plus": mimo_unet_plus, "lbag": lbag, "lbag_small": lbag_small}


def build_model(name: str, **kwargs) -> MIMOUNet:
    """Build a preset by name (used by configs); ``kwargs`` override its topology."""
    try:
        factory = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(PRESETS)}") from None
    return factory(**kwargs)
