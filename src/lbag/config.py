"""Training configurations: frozen dataclasses loaded from YAML and validated on load.

The defaults reproduce the published recipe of Li et al., "Real-World Deep Local Motion Deblurring"
(AAAI 2023): LBAG, Adam 1e-4 halved every 100k steps, batch 12, 256x256 blur-aware patches (BAPC),
the multi-scale L1 + SSIM + FFT + mask loss with the shift-invariant operation, validation every 10k
steps on the full-resolution test set.

A YAML file has up to five sections (``model``, ``data``, ``loss``, ``optim``, ``train``), plus
``gan`` for the DeblurGAN-v2 baseline's adversarial objective; any key left out keeps its default. An unknown section or key, or a value of the wrong type, raises
:class:`ConfigError` naming the file and the key, so a typo fails at load time and not hours later.
``--set section.key=value`` overrides (parsed as YAML scalars) are applied after the file.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ConfigError",
    "DataConfig",
    "GANConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "SynthSection",
    "TrainConfig",
    "TrainLoopConfig",
    "config_to_dict",
    "load_config",
    "parse_overrides",
]


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class ModelConfig:
    """Which network to train.

    Attributes:
        name: preset of :mod:`lbag.models` (``lbag``, ``lbag_small``, ``mimo_unet``, ``mimo_unet_plus``).
        num_res, width, gated, dropout, gate_min: topology overrides of the preset (None keeps it).
        init: MIMO-UNet+ checkpoint to initialise from (LBAG+); every tensor but the heads is copied.
    """

    name: str = "lbag"
    num_res: int | None = None
    width: int | None = None
    gated: bool | None = None
    dropout: float | None = None
    gate_min: float | None = None
    init: str | None = None

    def topology(self) -> dict[str, Any]:
        """The non-None topology overrides, as keyword arguments of the preset factory."""
        keys = ("num_res", "width", "gated", "dropout", "gate_min")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass(frozen=True)
class SynthSection:
    """The ``data.synth`` section: synthetic data made by :func:`lbag.data.synth.generate` when ``data.root``
    holds no dataset yet (the generator's own settings are :class:`lbag.data.synth.SynthConfig`)."""

    scenes: int = 12
    width: int = 320
    height: int = 240
    seed: int = 0


@dataclass(frozen=True)
class DataConfig:
    """Where the pairs come from and how patches are cut (paper section 5).

    Attributes:
        root: dataset root in the published layout (``root/dataset/{train,test}/...``).
        masks_root: blur masks root (default: ``root/masks`` as in the published layout).
        train_split, val_split: split folder names.
        patch_size: side of the square training patches (published: 256).
        bapc, bapc_prob: blur-aware patch cropping on/off and the probability of a blur-centred crop.
        bapc_min_mask_mean: the authors' extra gate, off (null) by default: centre patches on blur only
            for masks whose stored values average above this (their code: 0.05 on the raw mask, which
            depends on masks being stored 0/1 or 0/255); see :class:`lbag.data.TrainDataset`.
        hflip, vflip: paired flip augmentations (published: horizontal only).
        num_workers: DataLoader worker processes per rank.
        val_max_images: validate on the first N test images only (None: all of them).
        cache_dir: optional decoded-image cache of the training set.
        synth: generate synthetic data into ``root`` when it holds no dataset (None: never).
    """

    root: str = "data/ReLoBlur"
    masks_root: str | None = None
    train_split: str = "train"
    val_split: str = "test"
    patch_size: int = 256
    bapc: bool = True
    bapc_prob: float = 0.5
    bapc_min_mask_mean: float | None = None
    hflip: bool = True
    vflip: bool = False
    num_workers: int = 4
    val_max_images: int | None = None
    cache_dir: str | None = None
    synth: SynthSection | None = None


@dataclass(frozen=True)
class LossConfig:
    """Weights of the multi-scale loss terms (paper section 4); 0 switches a term off (ablations).

    ``kind`` picks the objective: ``lbag`` (these weights) or a Table 1 baseline's published one
    (``deepdeblur``, ``srn``, ``hinet``, ``nafnet``: :mod:`lbag.baseline_losses`; the weights are unused).
    """

    l1: float = 1.0
    ssim: float = 1.0
    fft: float = 0.1
    mask: float = 0.1
    shift: bool = True
    kind: str = "lbag"


@dataclass(frozen=True)
class OptimConfig:
    """Adam with a step schedule (published: lr 1e-4, halved every 100k steps, batch 12).

    Attributes:
        batch_size: GLOBAL batch size; under DDP each of the N ranks takes ``batch_size / N``.
        grad_clip: max gradient norm (None: no clipping, as published).
    """

    lr: float = 1e-4
    lr_step: int = 100_000
    lr_gamma: float = 0.5
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    batch_size: int = 12
    max_steps: int = 300_000
    grad_clip: float | None = None


@dataclass(frozen=True)
class TrainLoopConfig:
    """Bookkeeping of a run.

    Attributes:
        out_dir: run folder (checkpoints, logs, TensorBoard events, CSV).
        seed: global seed (model init, data order, augmentations).
        val_every: steps between validations (published: 10k); 0 disables validation.
        ckpt_every: steps between checkpoints.
        keep_last: how many periodic checkpoints to keep (the best one is kept separately).
        log_every: steps between logged training values.
        amp: bf16 autocast of the network where bf16 is native (CUDA with bf16; CPUs with AVX512-BF16 or
            AMX); elsewhere float32. The loss is always float32.
        channels_last: channels-last memory format on CUDA, and on CPU together with ``amp``.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        max_bad_steps: consecutive NaN/inf-loss steps after which the run stops.
        progress: show the tqdm progress bar.
        val_aligned: include PSNR_a (ECC homography per image, ~18 s per full-resolution image on
            2 CPU cores) in validation.
        val_tile: tile side for validation inference (None: automatic, 0: untiled).
    """

    out_dir: str = "runs/lbag"
    seed: int = 0
    val_every: int = 10_000
    ckpt_every: int = 5_000
    keep_last: int = 3
    log_every: int = 50
    amp: bool = True
    channels_last: bool = True
    device: str = "auto"
    max_bad_steps: int = 10
    progress: bool = True
    val_aligned: bool = True
    val_tile: int | None = None


@dataclass(frozen=True)
class GANConfig:
    """The DeblurGAN-v2 objective (:class:`lbag.gan.DeblurGANv2Loss`); only the DeblurGAN-v2 baseline has it.

    Attributes:
        vgg19_weights: ImageNet VGG19 weights for the perceptual loss (torchvision ``vgg19`` state_dict
            ``.pth`` or ``.safetensors``); required, nothing is downloaded.
        backbone_weights: ImageNet weights of the generator's backbone (Cadene ``inceptionresnetv2`` or
            MobileNetV2 ``features.*``), as the official trainer starts from; null: random init.
        content, perceptual, adversarial: term weights (paper: 0.5, 0.006, 0.01; official code 0.001).
        pool_size: images in the RaGAN-LS average pools (official: 50).
        patch_layers, full_layers: strided layers of the patch and full-image discriminators (3, 5).
    """

    vgg19_weights: str | None = None
    backbone_weights: str | None = None
    content: float = 0.5
    perceptual: float = 0.006
    adversarial: float = 0.01
    pool_size: int = 50
    patch_layers: int = 3
    full_layers: int = 5


@dataclass(frozen=True)
class TrainConfig:
    """A complete training configuration."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    gan: GANConfig | None = None

    def __post_init__(self) -> None:
        _validate(self)


# --- validation -----------------------------------------------------------------------------------
def _validate(cfg: TrainConfig) -> None:
    """Value checks that types alone cannot express. Raises ValueError with the dotted key."""
    from .baseline_losses import KINDS
    from .models import architectures

    names = list(architectures())  # the MIMO-UNet family and every importable Table 1 baseline
    kinds = ["lbag", *KINDS]
    checks = [
        (cfg.model.name in names, "model.name", f"must be one of {names}, got {cfg.model.name!r}"),
        (cfg.loss.kind in kinds, "loss.kind", f"must be one of {kinds}, got {cfg.loss.kind!r}"),
        (cfg.data.patch_size >= 16 and cfg.data.patch_size % 4 == 0, "data.patch_size",
         f"must be a multiple of 4 and >= 16, got {cfg.data.patch_size}"),
        (0.0 <= cfg.data.bapc_prob <= 1.0, "data.bapc_prob", f"must be in [0, 1], got {cfg.data.bapc_prob}"),
        (cfg.data.bapc_min_mask_mean is None or cfg.data.bapc_min_mask_mean >= 0, "data.bapc_min_mask_mean",
         f"must be >= 0 or null, got {cfg.data.bapc_min_mask_mean}"),
        (cfg.data.num_workers >= 0, "data.num_workers", f"must be >= 0, got {cfg.data.num_workers}"),
        (all(getattr(cfg.loss, k) >= 0 for k in ("l1", "ssim", "fft", "mask")), "loss",
         "weights must be >= 0"),
        (cfg.loss.l1 + cfg.loss.ssim + cfg.loss.fft > 0, "loss", "at least one image term needs a weight > 0"),
        (cfg.optim.lr > 0, "optim.lr", f"must be > 0, got {cfg.optim.lr}"),
        (cfg.optim.lr_step > 0, "optim.lr_step", f"must be > 0, got {cfg.optim.lr_step}"),
        (0 < cfg.optim.lr_gamma <= 1, "optim.lr_gamma", f"must be in (0, 1], got {cfg.optim.lr_gamma}"),
        (cfg.optim.batch_size >= 1, "optim.batch_size", f"must be >= 1, got {cfg.optim.batch_size}"),
        (cfg.optim.max_steps >= 1, "optim.max_steps", f"must be >= 1, got {cfg.optim.max_steps}"),
        (cfg.optim.grad_clip is None or cfg.optim.grad_clip > 0, "optim.grad_clip", "must be > 0 or null"),
        (cfg.train.val_every >= 0, "train.val_every", f"must be >= 0, got {cfg.train.val_every}"),
        (cfg.train.ckpt_every >= 1, "train.ckpt_every", f"must be >= 1, got {cfg.train.ckpt_every}"),
        (cfg.train.keep_last >= 1, "train.keep_last", f"must be >= 1, got {cfg.train.keep_last}"),
        (cfg.train.log_every >= 1, "train.log_every", f"must be >= 1, got {cfg.train.log_every}"),
        (cfg.train.device in ("auto", "cpu", "cuda"), "train.device",
         f"must be auto, cpu or cuda, got {cfg.train.device!r}"),
        (cfg.train.max_bad_steps >= 1, "train.max_bad_steps", f"must be >= 1, got {cfg.train.max_bad_steps}"),
    ]
    if cfg.gan is not None:
        g = cfg.gan
        checks += [
            (all(getattr(g, k) >= 0 for k in ("content", "perceptual", "adversarial")), "gan",
             "weights must be >= 0"),
            (g.pool_size >= 1, "gan.pool_size", f"must be >= 1, got {g.pool_size}"),
            (g.patch_layers >= 1 and g.full_layers >= 1, "gan", "discriminator layers must be >= 1"),
        ]
    for ok, key, msg in checks:
        if not ok:
            raise ValueError(f"{key}: {msg}")
    if cfg.loss.kind == "lbag" and cfg.loss.ssim > 0 and cfg.data.patch_size < 44:
        # The 1/4-scale output of a P-px patch is P/4 px and SSIM's valid 11x11 window needs 11 of them.
        raise ValueError(f"data.patch_size: the SSIM loss needs patches of at least 44 px (1/4 scale >= 11), "
                         f"got {cfg.data.patch_size}")
    if cfg.model.init is not None and cfg.model.name not in ("lbag", "lbag_small"):
        raise ValueError(f"model.init: MIMO-UNet+ initialisation (LBAG+) needs a gated model, got "
                         f"{cfg.model.name!r}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (YAML gives ints for floats, lists for tuples)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ValueError(f"{key}: must not be null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0])
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a mapping, got {type(value).__name__}")
        return _build(tp, value, key)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ValueError(f"{key}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads '1e-4' (no dot) as a string; accept what Python reads as a number.
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{key}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported annotation {tp!r}")  # a bug in this module, not user input


def _build(cls: type, values: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    for key in values:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else key
            raise ValueError(f"unknown key {where!r} (valid keys{' in ' + prefix if prefix else ''}: "
                             f"{', '.join(sorted(names))})")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in values.items()}
    return cls(**kwargs)


# --- loading --------------------------------------------------------------------------------------
def parse_overrides(items: list[str] | None) -> dict:
    """Turn ``["optim.lr=2e-4", "data.root=/x"]`` into a nested dict; values are parsed as YAML."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        dotted, raw = item.split("=", 1)
        parts = dotted.strip().split(".")
        if len(parts) < 2 or not all(parts):
            raise ConfigError(f"--set {item!r}: the key must look like section.key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from None
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {p} is set both as a value and as a section")
        node[parts[-1]] = value
    return out


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | dict | None = None) -> TrainConfig:
    """Load and validate a configuration.

    Args:
        path: YAML file (None: the published defaults).
        overrides: ``section.key=value`` strings (as given to ``--set``) or a nested dict.

    Returns:
        The frozen :class:`TrainConfig`.

    Raises:
        ConfigError: unreadable file, unknown key, wrong type or out-of-range value; the message names
            the file (or ``--set``) and the dotted key.
    """
    source = str(path) if path is not None else "<defaults>"
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{source}: no such config file")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML ({exc})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: expected a mapping of sections at the top level, got "
                              f"{type(loaded).__name__}")
        raw = loaded
    extra = parse_overrides(overrides) if isinstance(overrides, list) else (overrides or {})
    if extra:
        source = f"{source} with --set {', '.join(overrides) if isinstance(overrides, list) else extra}"
    merged = _merge(raw, extra)
    for section, body in merged.items():
        if body is not None and not isinstance(body, dict):
            raise ConfigError(f"{source}: section {section!r} must be a mapping, got {type(body).__name__}")
    try:
        return _build(TrainConfig, {k: (v or {}) for k, v in merged.items()})
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def config_to_dict(cfg: TrainConfig) -> dict:
    """Plain-YAML-serialisable dict of a config (tuples become lists; an absent optional section such
    as ``gan`` is left out, so the dict loads back to an equal config)."""
    def conv(v: Any) -> Any:
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return {k: v for k, v in conv(dataclasses.asdict(cfg)).items() if v is not None}
