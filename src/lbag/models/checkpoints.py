"""Reading and writing model weights of every architecture in :mod:`lbag.models.registry`.

Understood files:

* our own format: ``.safetensors`` whose metadata names the architecture (``lbag_config`` for the
  MIMO-UNet family, ``lbag_arch`` for the others), so the file alone rebuilds the model;
* the published PyTorch containers: the LBAG release (``{'state_dict': {'model': sd}, ...}``), MIMO-UNet
  and DeblurGAN-v2 (``{'model': sd}``, DeblurGAN-v2's keys prefixed ``module.``), DeepDeblur
  (``{'G': sd}``), HINet and NAFNet (BasicSR ``{'params': sd}``) and bare state_dicts, read with
  ``torch.load(weights_only=True)``; the architecture is recognised from the keys and shapes;
* SRN-DeblurNet's TensorFlow checkpoint: the checkpoint prefix where ``tensorflow`` is importable, or
  a ``.npz`` of its variables (TF name -> array) anywhere.

Every failure raises :class:`CheckpointError` naming the file and what did not match.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_path
from .mimo_unet import MIMOUNet, MIMOUNetConfig

__all__ = ["CheckpointError", "load_model", "save_model", "load_state_dict", "read_weights", "Weights", "identify",
           "infer_config", "load_weights_into", "init_from_mimo_unet_plus", "HEAD_PREFIXES"]

# The three output head convs: the only tensors whose shapes differ between LBAG and MIMO-UNet+.
HEAD_PREFIXES = ("feat_extract.5.", "ConvsOut.0.", "ConvsOut.1.")
CONFIG_KEY = "lbag_config"
ARCH_KEY = "lbag_arch"
ALIASES_KEY = "lbag_aliases"
# Where the published containers keep the network's state_dict, tried in this order after the object
# itself: LBAG release, MIMO-UNet / DeblurGAN-v2, DeepDeblur ('D' is its discriminator), BasicSR.
CONTAINERS = (("state_dict", "model"), ("state_dict",), ("model",), ("G",), ("params",), ("params_ema",))


class CheckpointError(ValueError):
    """A weights file could not be read or does not fit the model."""


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _container_text(keys: tuple[str, ...]) -> str:
    text = "..."
    for k in reversed(keys):
        text = f"{{{k!r}: {text}}}"
    return text


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Find the model's state_dict inside any of the published containers."""
    candidates = [obj]
    for keys in CONTAINERS:
        cand = obj
        for k in keys:
            cand = cand.get(k) if isinstance(cand, Mapping) else None
        candidates.append(cand)
    for cand in candidates:
        if _is_state_dict(cand):
            # Weights saved from a DataParallel/DDP wrapper carry a 'module.' prefix.
            return {k[7:] if k.startswith("module.") else k: v for k, v in cand.items()}
    keys = list(obj.keys())[:8] if isinstance(obj, Mapping) else type(obj).__name__
    expected = ", ".join(_container_text(ks) for ks in CONTAINERS)
    raise CheckpointError(f"{path}: no model state_dict found (expected a bare state_dict or one of {expected}; "
                          f"top level holds {keys})")


@dataclass
class Weights:
    """The tensors of a weights file and what the file says about its architecture.

    Attributes:
        state_dict: key -> tensor (container and 'module.' prefix removed).
        config: the stored MIMO-UNet-family topology (our safetensors files), else None.
        arch: the stored registry name (our safetensors files of other networks, SRN TF files), else None.
    """

    state_dict: dict[str, torch.Tensor]
    config: MIMOUNetConfig | None = None
    arch: str | None = None


def _read_safetensors(path: Path) -> Weights:
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises several private error types
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    config = None
    try:
        if CONFIG_KEY in meta:
            config = MIMOUNetConfig(**json.loads(meta[CONFIG_KEY]))
        for alias, kept in json.loads(meta.get(ALIASES_KEY, "{}")).items():
            sd[alias] = sd[kept]  # a tensor registered under two names is stored once
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: invalid architecture metadata ({type(exc).__name__}: {exc})") from exc
    return Weights(sd, config, meta.get(ARCH_KEY))


def _read_npz(path: Path) -> Weights:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # zipfile / numpy raise several types for damaged files
        raise CheckpointError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from exc
    if arrays and all("/" in k for k in arrays):  # TensorFlow variable names: SRN-DeblurNet
        from .srn import state_dict_from_tf

        return Weights(state_dict_from_tf(arrays, source=str(path)), arch="srn_deblur")
    return Weights({k: torch.from_numpy(v) for k, v in arrays.items()})


def _tf_prefix(path: Path) -> Path | None:
    """The checkpoint prefix when ``path`` names a TensorFlow checkpoint (prefix or its .index file)."""
    if path.suffix == ".index" and path.is_file():
        return path.with_suffix("")
    if not path.exists() and Path(f"{path}.index").is_file():
        return path
    return None


def read_weights(path: str | os.PathLike) -> Weights:
    """Read any supported weights file (see the module docstring)."""
    path = Path(path)
    prefix = _tf_prefix(path)
    if prefix is not None:
        from .srn import read_tf_checkpoint, state_dict_from_tf

        return Weights(state_dict_from_tf(read_tf_checkpoint(str(prefix)), source=str(prefix)), arch="srn_deblur")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(16)
    # safetensors starts with an 8-byte little-endian header length followed by '{'.
    if path.suffix == ".safetensors" or head[8:9] == b"{":
        return _read_safetensors(path)
    if path.suffix == ".npz":
        return _read_npz(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    return Weights(_unwrap(obj, path))


def load_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], MIMOUNetConfig | None]:
    """Read the tensors of any supported weights file.

    Returns:
        (state_dict, config): ``config`` is the stored architecture for our safetensors files of the
        MIMO-UNet family, else None (:func:`read_weights` also gives the architecture name of others).
    """
    w = read_weights(path)
    return w.state_dict, w.config


def infer_config(sd: Mapping[str, torch.Tensor], path: str | os.PathLike = "<state_dict>") -> MIMOUNetConfig:
    """Recover the topology of a published state_dict from its tensor shapes."""
    try:
        width = sd["feat_extract.0.main.0.weight"].shape[0]
        out_ch = sd["feat_extract.5.main.0.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"{path}: missing key {exc.args[0]!r}; this is not a MIMO-UNet/LBAG "
                              "state_dict") from None
    pat = re.compile(r"Encoder\.0\.layers\.(\d+)\.")
    blocks = {int(m.group(1)) for k in sd if (m := pat.match(k))}
    if not blocks:
        raise CheckpointError(f"{path}: no 'Encoder.0.layers.*' tensors; not a MIMO-UNet/LBAG state_dict")
    if out_ch not in (3, 4):
        raise CheckpointError(f"{path}: output head has {out_ch} channels; expected 3 (MIMO-UNet) or 4 (LBAG)")
    num_res = max(blocks) + 1
    # Dropout leaves no trace in the weights: the 20-block releases (MIMO-UNet+, LBAG) use it.
    return MIMOUNetConfig(num_res=num_res, width=int(width), gated=out_ch == 4,
                          dropout=0.1 if num_res >= 20 else 0.0)


def _describe_mismatch(model: torch.nn.Module, sd: Mapping[str, torch.Tensor]) -> str:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and sd[k].shape != own[k].shape]
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:5])}{more}")
    return "; ".join(parts)


def load_weights_into(model: torch.nn.Module, sd: Mapping[str, torch.Tensor],
                      path: str | os.PathLike = "<state_dict>") -> None:
    """``load_state_dict(strict=True)`` with an error that names the file and every kind of mismatch."""
    problem = _describe_mismatch(model, sd)
    if problem:
        raise CheckpointError(f"{path}: weights do not fit the model: {problem}")
    model.load_state_dict(sd, strict=True)


def _is_mimo_state_dict(sd: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith(("feat_extract.", "Encoder.", "Decoder.")) for k in sd)


def _build_for(w: Weights, path: Path, config: MIMOUNetConfig | None, arch: str | None) -> nn.Module:
    """The network a weights file needs: forced, stored in the file, or recognised from its keys."""
    from . import registry

    if config is not None:
        return MIMOUNet(config)
    name = arch or (None if w.config is not None else w.arch)
    if name is None:
        if w.config is not None:
            return MIMOUNet(w.config)
        if _is_mimo_state_dict(w.state_dict):
            return MIMOUNet(infer_config(w.state_dict, path))
        name, why = registry.detect_architecture(w.state_dict)
        if name is None:
            raise CheckpointError(f"{path}: not a checkpoint of any `lbag models` architecture: {why}")
    try:
        return registry.build(name)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def identify(path: str | os.PathLike) -> str:
    """The registry name of the architecture a weights file holds, without building the network.

    A MIMO-UNet-family file whose topology is no preset is reported as ``"mimo_unet family (num_res=N,
    width=W, gated=G)"``.

    Raises:
        CheckpointError: unreadable, or no architecture fits (the message names the closest one).
    """
    from . import registry

    path = Path(path)
    w = read_weights(path)
    if w.config is None and w.arch is not None:
        return w.arch
    if w.config is not None or _is_mimo_state_dict(w.state_dict):
        cfg = w.config or infer_config(w.state_dict, path)
        for name in ("mimo_unet", "mimo_unet_plus", "lbag", "lbag_small"):
            ref = registry.meta_config(name)
            if (ref.num_res, ref.width, ref.gated) == (cfg.num_res, cfg.width, cfg.gated):
                return name
        return f"mimo_unet family (num_res={cfg.num_res}, width={cfg.width}, gated={cfg.gated})"
    name, why = registry.detect_architecture(w.state_dict)
    if name is None:
        raise CheckpointError(f"{path}: not a checkpoint of any `lbag models` architecture: {why}")
    return name


def load_model(path: str | os.PathLike, config: MIMOUNetConfig | None = None,
               map_location: str | torch.device = "cpu", arch: str | None = None) -> nn.Module:
    """Build a model from a weights file and load it with ``strict=True``.

    Args:
        path: our ``.safetensors`` file, a published checkpoint of any registered architecture
            (``.pth``/``.pkl``/``.pt``/``.h5`` pickles, SRN's TF checkpoint prefix or a ``.npz`` of it).
        config: force this MIMO-UNet-family topology (otherwise: the stored one, or inferred).
        map_location: device for the returned model.
        arch: force this registry architecture (``lbag models`` lists them) instead of recognising it.

    Returns:
        The model in eval mode.
    """
    path = Path(path)
    w = read_weights(path)
    model = _build_for(w, path, config, arch)
    load_weights_into(model, w.state_dict, path)
    return model.to(map_location).eval()


def _dedupe(sd: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors to store once each, and alias -> stored key for tensors registered under two names
    (safetensors refuses shared storage; DeblurGAN-v2 registers its backbone twice)."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for k, v in sd.items():
        ident = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), tuple(v.stride()), v.dtype)
        if v.numel() and ident in seen:
            aliases[k] = seen[ident]
            continue
        seen[ident] = k
        tensors[k] = v.detach().to("cpu").contiguous()
    return tensors, aliases


def save_model(model: nn.Module, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> Path:
    """Write weights + architecture as safetensors, atomically (a crash never leaves half a file).

    Args:
        model: any registered network (a DDP/compiled wrapper is unwrapped).
        path: destination; ``.safetensors`` is the expected suffix.
        metadata: extra string key/values stored in the header (e.g. training step).

    Raises:
        CheckpointError: the network is not one of :func:`lbag.models.registry.architectures`.
    """
    from safetensors.torch import save_file

    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)
    path = Path(path)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    if isinstance(model, MIMOUNet):
        meta[CONFIG_KEY] = json.dumps(model.config.to_dict())
    else:
        from .registry import spec_of

        spec = spec_of(model)
        if spec is None:
            raise CheckpointError(f"{path}: cannot save a {type(model).__name__}: not a registered architecture "
                                  "(see `lbag models`)")
        meta[ARCH_KEY] = spec.name
    tensors, aliases = _dedupe(model.state_dict())
    if aliases:
        meta[ALIASES_KEY] = json.dumps(aliases)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def init_from_mimo_unet_plus(model: MIMOUNet, path: str | os.PathLike) -> list[str]:
    """LBAG+ initialisation: copy every tensor of a MIMO-UNet+ checkpoint except the output heads.

    The head convs (``feat_extract.5``, ``ConvsOut.0``, ``ConvsOut.1``) have 3 output channels in
    MIMO-UNet+ and 4 in LBAG, so they keep their fresh initialisation. Any other mismatch is an error.

    Returns:
        The names of the tensors that were not copied (sorted).
    """
    sd, _ = load_state_dict(path)
    own = model.state_dict()
    skipped = sorted(k for k in own if k.startswith(HEAD_PREFIXES)
                     and (k not in sd or sd[k].shape != own[k].shape))
    body = {k: v for k, v in sd.items() if k not in skipped}
    missing = [k for k in own if k not in body and k not in skipped]
    unexpected = [k for k in body if k not in own]
    bad_shape = [k for k in body if k in own and body[k].shape != own[k].shape]
    if missing or unexpected or bad_shape:
        raise CheckpointError(
            f"{path}: not a MIMO-UNet+ body matching this model: "
            f"{len(missing)} missing {missing[:5]}, {len(unexpected)} unexpected {unexpected[:5]}, "
            f"{len(bad_shape)} shape mismatches {bad_shape[:5]}")
    model.load_state_dict(body, strict=False)
    return skipped
