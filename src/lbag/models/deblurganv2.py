"""DeblurGAN-v2 generators: FPN-InceptionResNetV2 and FPN-MobileNetV2.

Kupyn, Martyniuk, Wu and Wang, "DeblurGAN-v2: Deblurring (Orders-of-Magnitude) Faster and Better",
ICCV 2019. Written from the paper and from the facts of the official implementation
(VITA-Group/DeblurGANv2, BSD-3; backbone as in Cadene's pretrainedmodels and the MobileNetV2 of the
official repository): layer order, paddings, constants and the state_dict layout, so the published
``fpn_inception.h5`` / ``fpn_mobilenet.h5`` weights load with ``strict=True``.

Official conventions kept inside the model (callers only see RGB in [0, 1]):

* the network works in [-1, 1] and predicts ``clamp(tanh(out) + input, -1, 1)``;
* the input is zero-padded bottom/right (in [-1, 1] space, i.e. mid-grey) to the size ``predict.py``
  uses, ``(n // 32 + 1) * 32``, and the result is cropped back. In training mode the padding is only
  what a multiple of 32 needs (the official trainer feeds 256x256 crops unpadded);
* ``predict.py`` runs the generator in *train* mode, so every normalisation layer (the backbone's
  BatchNorm too) uses the statistics of the image being deblurred. Here ``model.eval()`` does the same
  per image (an image's result never depends on the rest of the batch, and no running statistic is
  touched); ``set_inference_stats("running")`` switches to the stored running statistics instead;
* the Inception backbone needs >= 128 px (its valid convolutions), the MobileNet one >= 64 px: smaller
  inputs are padded further.

The backbone modules are registered twice, as in the official FPN: under ``fpn.inception`` (or
``fpn.features``) and again under ``fpn.enc0`` ... ``fpn.enc4``. Both names are in the state_dict and
point at the same tensors; :func:`sum` over ``parameters()`` counts each once. The classifier end of
the backbone (InceptionResNetV2 ``repeat_2``/``block8``/``conv2d_7b``/``last_linear``, MobileNetV2
``features.16``-``18``) is registered but unused in the forward pass, as in the official model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .mimo_unet import DeblurOutput

__all__ = ["INFO", "MODELS", "DeblurGANv2", "DeblurGANv2Config", "InceptionResNetV2", "MobileNetV2",
           "deblurganv2", "deblurganv2_inception", "deblurganv2_mobilenet", "load_backbone_weights"]

BACKBONES = ("inception", "mobilenet")


# --- normalisation layers that can use each image's own statistics at inference --------------------
class _BatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d; in eval mode (by default) normalised with the statistics of each image.

    That is what the official ``predict.py`` gets by running a batch of one image in train mode, minus
    the update of the running buffers.
    """

    image_stats = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not self.image_stats:
            return super().forward(x)
        return F.instance_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class _InstanceNorm2d(nn.InstanceNorm2d):
    """InstanceNorm2d(affine=False, track_running_stats=True), the generator's ``norm_layer``; in eval
    mode (by default) it keeps using each image's statistics instead of the running ones."""

    image_stats = True

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=False, track_running_stats=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not self.image_stats:
            return super().forward(x)
        return F.instance_norm(x, None, None, None, None, True, 0.0, self.eps)


# --- InceptionResNetV2 (Szegedy et al. 2017, in the layout of Cadene's pretrainedmodels) ------------
class _ConvBNReLU(nn.Module):
    """Bias-free conv, BatchNorm (eps 1e-3, the TensorFlow value) and ReLU; keys ``conv.*``, ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = _BatchNorm2d(cout, eps=1e-3, momentum=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _chain(cin: int, *layers: tuple) -> nn.Sequential:
    """A Sequential of :class:`_ConvBNReLU`; each layer is ``(cout, kernel[, stride[, padding]])``."""
    mods = []
    for cout, *rest in layers:
        mods.append(_ConvBNReLU(cin, cout, *rest))
        cin = cout
    return nn.Sequential(*mods)


class _Branches(nn.Module):
    """Parallel branches ``branch0``, ``branch1``, ... concatenated along the channels."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        for i, branch in enumerate(branches):
            self.add_module(f"branch{i}", branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.children()], dim=1)


class _ResidualBranches(nn.Module):
    """Inception-ResNet block: branches, a 1x1 conv ``conv2d`` back to the input width, scaled residual
    sum, then ReLU (except in the last Block8)."""

    def __init__(self, branches: Sequence[nn.Module], cat_ch: int, ch: int, scale: float, relu: bool = True):
        super().__init__()
        for i, branch in enumerate(branches):
            self.add_module(f"branch{i}", branch)
        self.n_branches = len(branches)
        self.conv2d = nn.Conv2d(cat_ch, ch, 1)
        self.scale, self.relu = scale, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.n_branches)], dim=1)
        y = self.conv2d(y) * self.scale + x
        return F.relu(y) if self.relu else y


def _block35() -> _ResidualBranches:
    return _ResidualBranches([_ConvBNReLU(320, 32, 1), _chain(320, (32, 1), (32, 3, 1, 1)),
                              _chain(320, (32, 1), (48, 3, 1, 1), (64, 3, 1, 1))], 128, 320, 0.17)


def _block17() -> _ResidualBranches:
    return _ResidualBranches([_ConvBNReLU(1088, 192, 1),
                              _chain(1088, (128, 1), (160, (1, 7), 1, (0, 3)), (192, (7, 1), 1, (3, 0)))],
                             384, 1088, 0.10)


def _block8(scale: float = 0.20, relu: bool = True) -> _ResidualBranches:
    return _ResidualBranches([_ConvBNReLU(2080, 192, 1),
                              _chain(2080, (192, 1), (224, (1, 3), 1, (0, 1)), (256, (3, 1), 1, (1, 0)))],
                             448, 2080, scale, relu)


class InceptionResNetV2(nn.Module):
    """InceptionResNetV2 with the module names of Cadene's ``pretrainedmodels`` (ImageNet, 1000 classes).

    Only :meth:`forward_features` up to any stage is used by the FPN; the classifier end exists so the
    official state_dict (which carries it) loads.
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv2d_1a = _ConvBNReLU(3, 32, 3, stride=2)
        self.conv2d_2a = _ConvBNReLU(32, 32, 3)
        self.conv2d_2b = _ConvBNReLU(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = _ConvBNReLU(64, 80, 1)
        self.conv2d_4a = _ConvBNReLU(80, 192, 3)
        self.maxpool_5a = nn.MaxPool2d(3, stride=2)
        self.mixed_5b = _Branches(
            _ConvBNReLU(192, 96, 1), _chain(192, (48, 1), (64, 5, 1, 2)),
            _chain(192, (64, 1), (96, 3, 1, 1), (96, 3, 1, 1)),
            nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), _ConvBNReLU(192, 64, 1)))
        self.repeat = nn.Sequential(*[_block35() for _ in range(10)])
        self.mixed_6a = _Branches(_ConvBNReLU(320, 384, 3, stride=2),
                                  _chain(320, (256, 1), (256, 3, 1, 1), (384, 3, 2)), nn.MaxPool2d(3, stride=2))
        self.repeat_1 = nn.Sequential(*[_block17() for _ in range(20)])
        self.mixed_7a = _Branches(_chain(1088, (256, 1), (384, 3, 2)), _chain(1088, (256, 1), (288, 3, 2)),
                                  _chain(1088, (256, 1), (288, 3, 1, 1), (320, 3, 2)), nn.MaxPool2d(3, stride=2))
        self.repeat_2 = nn.Sequential(*[_block8() for _ in range(9)])
        self.block8 = _block8(scale=1.0, relu=False)
        self.conv2d_7b = _ConvBNReLU(2080, 1536, 1)
        self.avgpool_1a = nn.AvgPool2d(8, count_include_pad=False)
        self.last_linear = nn.Linear(1536, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (input normalised with mean = std = 0.5, at least 299x299 as trained)."""
        for name, mod in self.named_children():
            if name == "last_linear":
                x = torch.flatten(x, 1)
            x = mod(x)
        return x


# --- MobileNetV2 (Sandler et al. 2018, in the layout of the official repository) -------------------
class _InvertedResidual(nn.Module):
    """Expansion 1x1 (unless t == 1), depthwise 3x3, linear 1x1 projection; residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = round(cin * expand)
        self.residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), _BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), _BatchNorm2d(hidden),
                   nn.ReLU6(inplace=True), nn.Conv2d(hidden, cout, 1, bias=False), _BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0) feature extractor: ``features.0`` ... ``features.18``.

    The official FPN keeps only ``features`` of the classification net, so there is no classifier here.
    """

    # (expansion t, output channels c, repeats n, first stride s), as in the paper's Table 2
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), _BatchNorm2d(32),
                                                 nn.ReLU6(inplace=True))]
        cin = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(_InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(nn.Sequential(nn.Conv2d(cin, 1280, 1, bias=False), _BatchNorm2d(1280), nn.ReLU6(inplace=True)))
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


# --- feature pyramids -------------------------------------------------------------------------------
def _top_down(ch: int) -> nn.Sequential:
    """3x3 conv + InstanceNorm + ReLU applied after each top-down merge (``td1`` ... ``td3``)."""
    return nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), _InstanceNorm2d(ch), nn.ReLU(inplace=True))


def _up(x: torch.Tensor, factor: int) -> torch.Tensor:
    return x if factor == 1 else F.interpolate(x, scale_factor=factor, mode="nearest")


class _FPN(nn.Module):
    """Top-down feature pyramid over five encoder levels ``enc0`` ... ``enc4`` (strides 2 ... 32).

    A subclass registers its backbone and ``enc*`` first, then calls :meth:`_add_pyramid`: the official
    state_dict order is backbone, encoders, ``td1`` ... ``td3``, ``lateral4`` ... ``lateral0``.
    ``PADS`` holds the reflection pads of the lateral maps at levels 4 ... 0 (None: no padding).
    """

    PADS: tuple = (None,) * 5

    def _add_pyramid(self, ch: int, lateral_in: tuple[int, int, int, int, int]) -> None:
        self.td1, self.td2, self.td3 = _top_down(ch), _top_down(ch), _top_down(ch)
        c4, c3, c2, c1, c0 = lateral_in
        self.lateral4 = nn.Conv2d(c4, ch, 1, bias=False)
        self.lateral3 = nn.Conv2d(c3, ch, 1, bias=False)
        self.lateral2 = nn.Conv2d(c2, ch, 1, bias=False)
        self.lateral1 = nn.Conv2d(c1, ch, 1, bias=False)
        self.lateral0 = nn.Conv2d(c0, ch // 2, 1, bias=False)

    def _lateral(self, level: int, e: torch.Tensor) -> torch.Tensor:
        m = getattr(self, f"lateral{level}")(e)
        pad = self.PADS[4 - level]
        return m if pad is None else F.pad(m, pad, mode="reflect")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        e0 = self.enc0(x)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        m4 = self._lateral(4, e4)
        m3 = self.td1(self._lateral(3, e3) + _up(m4, 2))
        m2 = self.td2(self._lateral(2, e2) + _up(m3, 2))
        m1 = self.td3(self._lateral(1, e1) + _up(m2, 2))
        return self._lateral(0, e0), m1, m2, m3, m4


class _FPNInception(_FPN):
    """FPN over InceptionResNetV2. Its valid (unpadded) convolutions leave odd sizes, which the official
    code re-aligns with reflection pads of the lateral maps: +1 on every side at 1/32, 1/16 and 1/4,
    (1, 2) at 1/8 and (0, 1) at 1/2, so an input of 32k (k >= 4) gives maps of exactly 16k ... k."""

    PADS = ((1, 1, 1, 1), (1, 1, 1, 1), (1, 2, 1, 2), (1, 1, 1, 1), (0, 1, 0, 1))

    def __init__(self, ch: int = 256) -> None:
        super().__init__()
        self.inception = net = InceptionResNetV2()
        # The same modules again, grouped by pyramid level (the official double registration).
        self.enc0 = net.conv2d_1a
        self.enc1 = nn.Sequential(net.conv2d_2a, net.conv2d_2b, net.maxpool_3a)
        self.enc2 = nn.Sequential(net.conv2d_3b, net.conv2d_4a, net.maxpool_5a)
        self.enc3 = nn.Sequential(net.mixed_5b, net.repeat, net.mixed_6a)
        self.enc4 = nn.Sequential(net.repeat_1, net.mixed_7a)
        self._add_pyramid(ch, (2080, 1088, 192, 64, 32))

    def backbone(self) -> nn.Module:
        return self.inception


class _FPNMobileNet(_FPN):
    """FPN over MobileNetV2 ``features.0`` ... ``features.15`` (strides 2, 4, 8, 16, 32)."""

    def __init__(self, ch: int = 128) -> None:
        super().__init__()
        self.features = MobileNetV2().features
        f = self.features
        self.enc0 = nn.Sequential(*f[0:2])
        self.enc1 = nn.Sequential(*f[2:4])
        self.enc2 = nn.Sequential(*f[4:7])
        self.enc3 = nn.Sequential(*f[7:11])
        self.enc4 = nn.Sequential(*f[11:16])
        self._add_pyramid(ch, (160, 64, 32, 24, 16))

    def backbone(self) -> nn.Module:
        return self.features


class _FPNHead(nn.Module):
    """Two bias-free 3x3 convs with ReLU on one pyramid level."""

    def __init__(self, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.block0 = nn.Conv2d(cin, mid, 3, padding=1, bias=False)
        self.block1 = nn.Conv2d(mid, cout, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.block1(F.relu(self.block0(x))))


# --- the generator ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeblurGANv2Config:
    """Which generator: ``backbone`` is ``inception`` (FPNInception) or ``mobilenet`` (FPNMobileNet)."""

    backbone: str = "inception"

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")

    def to_dict(self) -> dict:
        return {"arch": "deblurganv2", **asdict(self)}


# Per backbone: (FPN class, FPN channels, head channels, smallest padded side the backbone accepts).
_LAYOUT = {"inception": (_FPNInception, 256, 128, 128), "mobilenet": (_FPNMobileNet, 128, 64, 64)}
PAD_MULTIPLE = 32


class DeblurGANv2(nn.Module):
    """FPNInception / FPNMobileNet generator with the official state_dict layout.

    Shape:
        input: (B, 3, H, W) float RGB in [0, 1], any H and W.
        output: :class:`DeblurOutput` with ``images=[result]`` (B, 3, H, W) in [0, 1], ``masks=[None]``.
    """

    def __init__(self, config: DeblurGANv2Config | None = None, **kwargs) -> None:
        super().__init__()
        if config is None:
            config = DeblurGANv2Config(**kwargs)
        elif kwargs:
            raise TypeError("pass either a DeblurGANv2Config or keyword arguments, not both")
        self.config = config
        fpn_cls, ch_fpn, ch, self.min_side = _LAYOUT[config.backbone]
        self.fpn = fpn_cls(ch_fpn)
        self.head1, self.head2, self.head3, self.head4 = (_FPNHead(ch_fpn, ch, ch) for _ in range(4))
        self.smooth = nn.Sequential(nn.Conv2d(4 * ch, ch, 3, padding=1), _InstanceNorm2d(ch), nn.ReLU())
        self.smooth2 = nn.Sequential(nn.Conv2d(ch, ch // 2, 3, padding=1), _InstanceNorm2d(ch // 2), nn.ReLU())
        self.final = nn.Conv2d(ch // 2, 3, 3, padding=1)
        self.register_load_state_dict_pre_hook(_fill_aliases)

    def alias_groups(self) -> list[list[str]]:
        """state_dict names that are the same tensor (the doubly registered backbone), in key order."""
        groups: dict[int, list[str]] = {}
        for name, t in self.state_dict(keep_vars=True).items():
            groups.setdefault(id(t), []).append(name)
        return [g for g in groups.values() if len(g) > 1]

    # --- official-space forward ------------------------------------------------------------------
    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        """The official generator: ``x`` in [-1, 1], sides multiples of 32 (>= 128 for Inception)."""
        m0, m1, m2, m3, m4 = self.fpn(x)
        maps = [_up(self.head4(m4), 8), _up(self.head3(m3), 4), _up(self.head2(m2), 2), self.head1(m1)]
        y = _up(self.smooth(torch.cat(maps, dim=1)), 2)
        y = _up(self.smooth2(y + m0), 2)
        return torch.clamp(torch.tanh(self.final(y)) + x, -1.0, 1.0)

    def padded_size(self, h: int, w: int) -> tuple[int, int]:
        """The (H, W) the input is zero-padded to: predict.py's ``(n // 32 + 1) * 32`` at inference,
        the next multiple of 32 in training; never below the backbone's minimum."""
        def side(n: int) -> int:
            m = -(-n // PAD_MULTIPLE) if self.training else n // PAD_MULTIPLE + 1
            return max(m * PAD_MULTIPLE, self.min_side)
        return side(h), side(w)

    def forward(self, x: torch.Tensor) -> DeblurOutput:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected input of shape (B, 3, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        ph, pw = self.padded_size(h, w)
        z = F.pad(x * 2.0 - 1.0, (0, pw - w, 0, ph - h))  # zeros in [-1, 1] space, as predict.py
        y = self.forward_normalized(z)[..., :h, :w]
        return DeblurOutput([(y + 1.0) * 0.5], [None])

    # --- switches ---------------------------------------------------------------------------------
    def set_inference_stats(self, mode: str) -> DeblurGANv2:
        """``"image"`` (default, as predict.py: each image's own statistics in eval mode) or
        ``"running"`` (the stored running statistics, plain ``eval()`` semantics)."""
        if mode not in ("image", "running"):
            raise ValueError(f"mode must be 'image' or 'running', got {mode!r}")
        for m in self.modules():
            if isinstance(m, (_BatchNorm2d, _InstanceNorm2d)):
                m.image_stats = mode == "image"
        return self

    def backbone(self) -> nn.Module:
        """The ImageNet backbone (``fpn.inception`` or ``fpn.features``)."""
        return self.fpn.backbone()

    def set_backbone_trainable(self, trainable: bool) -> DeblurGANv2:
        """Freeze or unfreeze the backbone. The official trainer builds the generator with the backbone
        frozen and unfreezes it after ``warmup_num`` (3) epochs; here everything starts trainable."""
        for p in self.backbone().parameters():
            p.requires_grad_(trainable)
        return self


def _fill_aliases(module: DeblurGANv2, state_dict: dict, prefix: str, *args) -> None:
    """Load-time hook: a state_dict that holds only one name of an aliased tensor (e.g. written by a
    saver that drops shared tensors) gets the other names filled in, so ``strict=True`` still holds.
    When every name is present nothing changes (the last one in key order wins, as in the official)."""
    for group in module.alias_groups():
        keys = [prefix + name for name in group]
        present = [k for k in keys if k in state_dict]
        if present and len(present) < len(keys):
            for k in keys:
                state_dict.setdefault(k, state_dict[present[-1]])


def load_backbone_weights(model: DeblurGANv2, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load ImageNet weights into the backbone, as the official trainer starts from them.

    Accepts Cadene's ``inceptionresnetv2`` state_dict (1001 classes as published: the background row 0
    is dropped, as ``pretrainedmodels`` does for ``'imagenet'``) or a MobileNetV2 state_dict with
    ``features.*`` keys (``classifier.*`` is ignored). A ``module.`` prefix is stripped. Raises
    ``KeyError``/``ValueError`` naming what does not match.
    """
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    net = model.backbone()
    if model.config.backbone == "mobilenet":
        sd = {k.removeprefix("features."): v for k, v in sd.items() if k.startswith("features.")}
    elif sd.get("last_linear.weight") is not None and sd["last_linear.weight"].shape[0] == 1001:
        sd["last_linear.weight"], sd["last_linear.bias"] = sd["last_linear.weight"][1:], sd["last_linear.bias"][1:]
    own = net.state_dict()
    missing, unexpected = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    shapes = [k for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise ValueError(f"not a {model.config.backbone} backbone state_dict: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}, shape mismatches {shapes[:5]}")
    net.load_state_dict(sd, strict=True)


def deblurganv2(backbone: str = "inception") -> DeblurGANv2:
    """DeblurGAN-v2 generator: ``inception`` (FPN-InceptionResNetV2, 60,929,291 parameters) or
    ``mobilenet`` (FPN-MobileNetV2, 3,312,707 parameters), counted once each despite the aliases."""
    return DeblurGANv2(DeblurGANv2Config(backbone=backbone))


def deblurganv2_inception() -> DeblurGANv2:
    return deblurganv2("inception")


def deblurganv2_mobilenet() -> DeblurGANv2:
    return deblurganv2("mobilenet")


MODELS = {"deblurganv2_inception": deblurganv2_inception, "deblurganv2_mobilenet": deblurganv2_mobilenet}

# For tiled inference: tile origins on the 32-px grid. receptive_field is the side (px) of the
# convolutional support of one output pixel: the input pixels that get a gradient from one output pixel
# (4096x128 and 2048x64 inputs, activations made linear and max-pools averaging so no path is cut, the
# norms on their running statistics). With per-image statistics every output also depends on the whole
# image through the norm statistics, which no finite overlap captures.
INFO = {"deblurganv2_inception": {"pad_multiple": PAD_MULTIPLE, "receptive_field": 1663},
        "deblurganv2_mobilenet": {"pad_multiple": PAD_MULTIPLE, "receptive_field": 523}}
