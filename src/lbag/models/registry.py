"""Every network lbag can build, by name: factory, padding and tiling needs, published checkpoints and
the row of Table 1 of Li et al., "Real-World Deep Local Motion Deblurring" (AAAI 2023) it stands for.

The MIMO-UNet family (MIMO-UNet, MIMO-UNet+, LBAG) lives in :mod:`lbag.models.mimo_unet`; each Table 1
baseline has its own module (``srn``, ``deepdeblur``, ``deblurganv2``, ``hinet``, ``nafnet``) exposing
``MODELS = {name: factory}`` and ``INFO = {name: {"pad_multiple": int, "receptive_field": int}}``
(optional INFO keys: ``tile_overlap``, ``min_tile``, ``whole_image``). Those modules are imported
lazily and tolerantly: one that is missing or fails to import is listed by :func:`unavailable` and
leaves the rest usable.

Tiling contract (:func:`lbag.infer.deblur_tensor`): tiles start on and measure multiples of
``tile_align`` (the model's pad multiple, at least 4), so no tile is padded inside the network and
every tile sees the pixel grid of the whole image. The theoretical receptive field of each of these
multi-scale networks (hundreds to thousands of pixels) exceeds any practical tile, so it cannot set the
overlap directly: the overlap is 64 px for the MIMO-UNet family (measured, ``benchmarks/bench_infer.py``)
and ``min(receptive_field, 128)`` px for the others (twice the measured MIMO figure, unmeasured), and
the smallest automatic tile is 4x the overlap. ``--tile 0`` runs the whole image as the official code
does.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import torch
from torch import nn

from .mimo_unet import PRESETS, MIMOUNet, MIMOUNetConfig

__all__ = ["Checkpoint", "PaperRow", "ModelSpec", "PAPER_TABLE1", "BASELINE_MODULES", "architectures",
           "unavailable", "get_spec", "build", "spec_of", "meta_shapes", "detect_architecture",
           "paper_row_for", "tile_align", "BASE_OVERLAP", "mimo_receptive_field", "meta_config"]

# Modules of the Table 1 baselines (lbag.models.<module>), imported on first use.
BASELINE_MODULES = ("deepdeblur", "deblurganv2", "srn", "hinet", "nafnet")
# Tile overlap measured for the MIMO-UNet family (= lbag.infer.DEFAULT_OVERLAP).
BASE_OVERLAP = 64
MIMO_FAMILY = "MIMO-UNet"


@dataclass(frozen=True)
class Checkpoint:
    """A published weights file: what it is, where it comes from, how it is stored."""

    name: str
    source: str
    container: str
    trained_on: str = "GoPro"


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's Table 1 (ReLoBlur test set, full resolution)."""

    method: str
    psnr: float
    ssim: float
    psnr_w: float
    ssim_w: float
    psnr_a: float
    aliases: tuple[str, ...] = ()
    note: str = ""

    def metrics(self) -> dict[str, float]:
        return {"psnr": self.psnr, "ssim": self.ssim, "psnr_w": self.psnr_w, "ssim_w": self.ssim_w,
                "psnr_a": self.psnr_a}


PAPER_TABLE1 = (
    PaperRow("DeepDeblur", 33.05, 0.8946, 26.51, 0.8152, 33.70, ("deepdeblur", "msresnet")),
    PaperRow("DeblurGAN-v2", 33.85, 0.9027, 27.37, 0.8342, 34.30,
             ("deblurganv2", "deblurganv2fpninception", "deblurganv2inception"),
             "the paper does not name the backbone; filed under the InceptionResNet-v2 generator, "
             "DeblurGAN-v2's main model"),
    PaperRow("SRN-DeblurNet", 34.30, 0.9238, 27.48, 0.8570, 34.88, ("srn", "srndeblur", "srndeblurnet")),
    PaperRow("HINet", 34.36, 0.9151, 27.64, 0.8510, 34.95, ("hinet",)),
    PaperRow("MIMO-Unet", 34.52, 0.9250, 27.95, 0.8650, 35.42, ("mimounet", "mimounetplus"),
             "the paper writes MIMO-Unet; filed under MIMO-UNet+, the network LBAG+ starts from"),
    PaperRow("LBAG", 34.66, 0.9249, 28.25, 0.8692, 35.39, ("lbag",)),
    PaperRow("LBAG+", 34.85, 0.9257, 28.32, 0.8734, 35.53, ("lbagplus",),
             "LBAG initialised from the GoPro MIMO-UNet+ weights (configs/lbag_plus.yaml)"),
)
_ROW = {r.method: r for r in PAPER_TABLE1}

_GDRIVE = "https://drive.google.com/file/d/"
# Facts about each architecture that its module does not carry: family, paper, published weights.
_FACTS: dict[str, dict] = {
    "deepdeblur": dict(family="DeepDeblur", paper="Nah et al., CVPR 2017 (MSResNet)", rows=("DeepDeblur",),
                       checkpoints=(Checkpoint("GOPRO_L1 (experiment/GOPRO_L1/models/model-*.pt)",
                                               _GDRIVE + "1AfZhyUXEA8_UdZco9EdtpWjTBAb8BbWv",
                                               "{'G': state_dict} (+'D' when trained adversarially)"),)),
    "deblurganv2_fpn_inception": dict(
        family="DeblurGAN-v2", paper="Kupyn et al., ICCV 2019 (FPN, InceptionResNet-v2)", rows=("DeblurGAN-v2",),
        checkpoints=(Checkpoint("fpn_inception.h5",
                                "https://drive.google.com/uc?export=view&id=1UXcsRVW-6KF23_TNzxw-xC0SzaMfXOaR",
                                "{'model': DataParallel state_dict} ('module.' keys; a torch pickle despite .h5)"),)),
    "deblurganv2_fpn_mobilenet": dict(
        family="DeblurGAN-v2", paper="Kupyn et al., ICCV 2019 (FPN, MobileNetV2)", rows=(),
        checkpoints=(Checkpoint("fpn_mobilenet.h5",
                                "https://drive.google.com/uc?export=view&id=1JhnT4BBeKBBSLqTo6UsJ13HeBXevarrU",
                                "{'model': DataParallel state_dict} ('module.' keys; a torch pickle despite .h5)"),)),
    "srn_deblur": dict(
        family="SRN-DeblurNet", paper="Tao et al., CVPR 2018 (colour model)", rows=("SRN-DeblurNet",),
        checkpoints=(Checkpoint("srndeblur_models.zip: checkpoints/color/deblur.model-523000",
                                "http://www.xtao.website/shared_url/srndeblur_models.zip",
                                "TensorFlow 1 checkpoint (index/data): load the prefix where tensorflow is "
                                "importable, or a .npz of its variables"),)),
    "hinet": dict(family="HINet", paper="Chen et al., CVPRW 2021", rows=("HINet",),
                  checkpoints=(Checkpoint("HINet-GoPro.pth", _GDRIVE + "1dw8PKVkLfISzNtUu3gqGh83NBO83ZQ5n",
                                          "BasicSR {'params': state_dict}"),)),
    "nafnet_width32": dict(family="NAFNet", paper="Chen et al., ECCV 2022 (NAFNetLocal, width 32)", rows=(),
                           checkpoints=(Checkpoint("NAFNet-GoPro-width32.pth",
                                                   _GDRIVE + "1Fr2QadtDCEXg6iwWX8OzeZLbHOx2t5Bj",
                                                   "BasicSR {'params': state_dict}"),)),
    "nafnet_width64": dict(family="NAFNet", paper="Chen et al., ECCV 2022 (NAFNetLocal, width 64)", rows=(),
                           checkpoints=(Checkpoint("NAFNet-GoPro-width64.pth",
                                                   _GDRIVE + "1S0PVRbyTakYY9a82kujgZLbMihfNBLfC",
                                                   "BasicSR {'params': state_dict}"),)),
    "mimo_unet": dict(family=MIMO_FAMILY, paper="Cho et al., ICCV 2021", rows=(),
                      checkpoints=(Checkpoint("MIMO-UNet.pkl", _GDRIVE + "1EQJoQj3YMLFfzrbgzWMD3Xj96RqLdIlx",
                                              "{'model': state_dict}"),)),
    "mimo_unet_plus": dict(family=MIMO_FAMILY, paper="Cho et al., ICCV 2021", rows=("MIMO-Unet",),
                           checkpoints=(Checkpoint("MIMO-UNetPlus.pkl", _GDRIVE + "166sufeHcdDTgXHNbCRzTC4T6DzuflB5m",
                                                   "{'model': state_dict}"),)),
    "lbag": dict(family=MIMO_FAMILY, paper="Li et al., AAAI 2023", rows=("LBAG", "LBAG+"),
                 checkpoints=(Checkpoint("LBAG release (LeiaLi/ReLoBlur README)",
                                         "https://drive.google.com/drive/folders/1_T8Z7-T7i7BsaJhpq0rCNWLT65N_SslU",
                                         "{'state_dict': {'model': state_dict}, 'global_step', ...}",
                                         trained_on="ReLoBlur"),)),
    "lbag_small": dict(family=MIMO_FAMILY, paper="lbag CPU preset (not published)", rows=(),
                       checkpoints=(Checkpoint("lbag_small_synth.safetensors (bundled with lbag)", "lbag/weights/",
                                               "safetensors + lbag_config metadata", trained_on="synthetic"),)),
}
# The DeblurGAN-v2 module names its generators without "fpn_"; both spellings get the facts.
for _short in ("inception", "mobilenet"):
    _FACTS[f"deblurganv2_{_short}"] = _FACTS[f"deblurganv2_fpn_{_short}"]
# Per-image instance-norm statistics at inference (predict.py): every output pixel depends on the whole
# image, so automatic tiling keeps the image whole when memory allows.
for _name in list(_FACTS):
    if _name.startswith("deblurganv2"):
        _FACTS[_name] = {**_FACTS[_name], "whole_image": True}
# Display order: Table 1 order, the extra baselines, then the MIMO-UNet family.
ORDER = ("deepdeblur", "deblurganv2_inception", "deblurganv2_fpn_inception", "deblurganv2_mobilenet",
         "deblurganv2_fpn_mobilenet", "srn_deblur", "hinet",
         "nafnet_width32", "nafnet_width64", "mimo_unet", "mimo_unet_plus", "lbag", "lbag_small")


@dataclass(frozen=True)
class ModelSpec:
    """One architecture.

    Attributes:
        name: registry name (``lbag models`` lists them).
        family: paper family (``DeepDeblur``, ``MIMO-UNet``, ...); ``module``: where it is defined.
        factory: builds the network (fresh weights).
        pad_multiple: the network pads its input to this multiple inside (and crops back).
        receptive_field: theoretical receptive field of the full-scale output, in input pixels.
        tile_overlap, min_tile: defaults of tiled inference (see the module docstring).
        whole_image: automatic tiling should keep the whole image when memory allows (models whose
            output depends on whole-image statistics).
        checkpoints: published weights; ``paper_rows``: Table 1 rows this architecture stands for.
    """

    name: str
    family: str
    module: str
    factory: Callable[..., nn.Module] = field(repr=False)
    pad_multiple: int
    receptive_field: int
    tile_overlap: int
    min_tile: int
    whole_image: bool = False
    paper: str = ""
    checkpoints: tuple[Checkpoint, ...] = ()
    paper_rows: tuple[PaperRow, ...] = ()

    @property
    def tile_align(self) -> int:
        return math.lcm(4, self.pad_multiple)


def mimo_receptive_field(num_res: int) -> int:
    """Theoretical receptive field of MIMO-UNet's full-scale output (3x3 ResBlocks at strides 1, 2, 4)."""
    # convs and FAMs outside the ResBlocks give 29 px; each ResBlock pair of 3x3 convs adds 4 px per
    # unit of stride, in 2 stages at full scale, 2 at 1/2 and 2 at 1/4 (encoder and decoder).
    return 29 + num_res * 4 * (1 + 2 + 4 + 4 + 2 + 1)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _make_spec(name: str, module: str, factory: Callable[..., nn.Module], info: Mapping) -> ModelSpec:
    facts = _FACTS.get(name, {})
    family = facts.get("family", module)
    pad = int(info.get("pad_multiple", 1))
    rf = int(info.get("receptive_field", 0))
    align = math.lcm(4, pad)
    if "tile_overlap" in info:
        overlap = _round_up(int(info["tile_overlap"]), align)
    elif family == MIMO_FAMILY:
        overlap = BASE_OVERLAP
    else:  # a receptive field <= 0 means unknown (e.g. whole-image statistics): the cap
        overlap = _round_up(min(rf, 2 * BASE_OVERLAP) if rf > 0 else 2 * BASE_OVERLAP, align)
    min_tile = int(info.get("min_tile", 128 if family == MIMO_FAMILY else max(128, 4 * overlap)))
    return ModelSpec(name=name, family=family, module=module, factory=factory, pad_multiple=pad,
                     receptive_field=rf, tile_overlap=overlap, min_tile=_round_up(min_tile, align),
                     whole_image=bool(info.get("whole_image", facts.get("whole_image", False))),
                     paper=facts.get("paper", ""),
                     checkpoints=facts.get("checkpoints", ()),
                     paper_rows=tuple(_ROW[r] for r in facts.get("rows", ())))


_FAILED: dict[str, str] = {}


def _baseline_specs() -> list[ModelSpec]:
    specs = []
    for module in BASELINE_MODULES:
        try:
            mod = importlib.import_module(f"{__package__}.{module}")
            models, info = mod.MODELS, getattr(mod, "INFO", {})
            specs += [_make_spec(name, module, factory, info.get(name, {})) for name, factory in models.items()]
            _FAILED.pop(module, None)
        except Exception as exc:  # a missing or broken baseline module must not break lbag
            _FAILED[module] = f"{type(exc).__name__}: {exc}"
    return specs


def architectures() -> dict[str, ModelSpec]:
    """Every importable architecture, by name, in display order (Table 1 order, then the rest)."""
    mimo = {"mimo_unet": 8, "mimo_unet_plus": 20, "lbag": 20, "lbag_small": 2}
    specs = [_make_spec(n, "mimo_unet", PRESETS[n], {"pad_multiple": 4, "receptive_field": mimo_receptive_field(r)})
             for n, r in mimo.items()]
    specs += _baseline_specs()
    rank = {n: i for i, n in enumerate(ORDER)}
    specs.sort(key=lambda s: (rank.get(s.name, len(ORDER)), s.name))
    return {s.name: s for s in specs}


def unavailable() -> dict[str, str]:
    """Baseline modules that could not be imported: module -> error (after :func:`architectures`)."""
    architectures()
    return dict(_FAILED)


def get_spec(name: str) -> ModelSpec:
    """The spec of ``name``; ValueError listing the known names (and broken modules) otherwise."""
    specs = architectures()
    if name not in specs:
        broken = f"; not importable: {', '.join(f'{m} ({e})' for m, e in _FAILED.items())}" if _FAILED else ""
        raise ValueError(f"unknown architecture {name!r}; choose one of {list(specs)}{broken}")
    return specs[name]


def build(name: str, **kwargs) -> nn.Module:
    """A fresh network by registry name."""
    return get_spec(name).factory(**kwargs)


@lru_cache(maxsize=None)
def _meta_model(name: str) -> nn.Module:
    with torch.device("meta"):
        return build(name)


def meta_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of ``name``'s state_dict, from a model built on the meta device (no memory)."""
    return {k: tuple(v.shape) for k, v in _meta_model(name).state_dict().items()}


def meta_config(name: str) -> MIMOUNetConfig:
    """The topology of a MIMO-UNet-family preset (from its meta-device build)."""
    return _meta_model(name).config


def spec_of(model: nn.Module) -> ModelSpec | None:
    """The registry entry a model instance belongs to (None for an unknown network).

    MIMO-UNet-family models map to the preset with their topology (or to ``lbag`` / ``mimo_unet_plus``
    by gating when the topology is custom: same padding and tiling); others by class and shapes.
    """
    model = getattr(model, "_orig_mod", model)  # torch.compile wrapper
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    specs = architectures()
    if isinstance(model, MIMOUNet):
        for name in ("mimo_unet", "mimo_unet_plus", "lbag", "lbag_small"):
            if _meta_model(name).config == model.config:
                return specs[name]
        return specs["lbag" if model.config.gated else "mimo_unet_plus"]
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for name, spec in specs.items():
        if spec.family == MIMO_FAMILY:
            continue
        try:
            if type(_meta_model(name)) is type(model) and meta_shapes(name) == own:
                return spec
        except Exception:  # a factory that cannot build on meta: no match by shapes
            continue
    return None


def detect_architecture(sd: Mapping[str, torch.Tensor]) -> tuple[str | None, str]:
    """Which non-MIMO architecture a state_dict belongs to, from its keys and shapes.

    Returns:
        (name, "") on an exact match of every key and shape; otherwise (None, why): the closest
        architecture by shared keys and what differs, or that nothing is close.
    """
    own = {k: tuple(v.shape) for k, v in sd.items()}
    best, best_score = None, 0.0
    for name, spec in architectures().items():
        if spec.family == MIMO_FAMILY:
            continue
        try:
            ref = meta_shapes(name)
        except Exception:
            continue
        if ref == own:
            return name, ""
        score = len(ref.keys() & own.keys()) / len(ref.keys() | own.keys())
        if score > best_score:
            best, best_score = name, score
    if best is None or best_score < 0.5:
        return None, f"the keys match no known architecture (first keys: {list(own)[:4]})"
    ref = meta_shapes(best)
    missing = [k for k in ref if k not in own]
    extra = [k for k in own if k not in ref]
    shapes = [f"{k}: file {list(own[k])} vs model {list(ref[k])}" for k in ref if k in own and ref[k] != own[k]]
    parts = [f"{len(v)} {label}: {', '.join(v[:5])}" for label, v in
             (("missing keys", missing), ("unexpected keys", extra), ("shape mismatches", shapes)) if v]
    return None, f"closest architecture {best!r} ({best_score:.0%} of keys shared) does not fit: {'; '.join(parts)}"


def _normalise(label: str) -> str:
    return re.sub(r"[^a-z0-9]", "", label.lower().replace("+", "plus"))


def paper_row_for(label: str) -> PaperRow | None:
    """The Table 1 row a method label (``HINet``, ``srn_deblur``, ``LBAG+``, ...) refers to, if any."""
    key = _normalise(label)
    for row in PAPER_TABLE1:
        if key == _normalise(row.method) or key in row.aliases:
            return row
    return None


def tile_align(model: nn.Module) -> int:
    """Tile alignment for ``model``: lcm(4, its pad multiple); 4 for unknown networks."""
    spec = spec_of(model)
    return spec.tile_align if spec is not None else 4
