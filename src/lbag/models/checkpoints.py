"""Reading and writing model weights.

Two families of files are understood:

* our own format: a ``.safetensors`` file whose metadata holds the architecture config (key
  ``lbag_config``), so the file alone rebuilds the model;
* the published PyTorch pickles: the LBAG release (``{'state_dict': {'model': sd}, 'global_step': ...}``),
  the MIMO-UNet releases (``{'model': sd}``) and bare state_dicts. Their architecture is inferred from
  the tensor shapes.

Every failure raises :class:`CheckpointError` naming the file and what did not match.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ..atomic import atomic_path
from .mimo_unet import MIMOUNet, MIMOUNetConfig

__all__ = ["CheckpointError", "load_model", "save_model", "load_state_dict", "infer_config",
           "load_weights_into", "init_from_mimo_unet_plus", "HEAD_PREFIXES"]

# The three output head convs: the only tensors whose shapes differ between LBAG and MIMO-UNet+.
HEAD_PREFIXES = ("feat_extract.5.", "ConvsOut.0.", "ConvsOut.1.")
CONFIG_KEY = "lbag_config"


class CheckpointError(ValueError):
    """A weights file could not be read or does not fit the model."""


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Find the model's state_dict inside any of the published containers."""
    candidates = [obj]
    if isinstance(obj, Mapping):
        sd = obj.get("state_dict")
        if isinstance(sd, Mapping):
            candidates.append(sd.get("model"))
            candidates.append(sd)
        candidates.append(obj.get("model"))
    for cand in candidates:
        if _is_state_dict(cand):
            # Weights saved from a DataParallel/DDP wrapper carry a 'module.' prefix.
            return {k[7:] if k.startswith("module.") else k: v for k, v in cand.items()}
    keys = list(obj.keys())[:8] if isinstance(obj, Mapping) else type(obj).__name__
    raise CheckpointError(
        f"{path}: no model state_dict found (expected a bare state_dict, {{'model': ...}} or "
        f"{{'state_dict': {{'model': ...}}}}; top level holds {keys})")


def load_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], MIMOUNetConfig | None]:
    """Read the tensors of any supported weights file.

    Returns:
        (state_dict, config): ``config`` is the stored architecture for our safetensors files, else None.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(16)
    # safetensors starts with an 8-byte little-endian header length followed by '{'.
    if path.suffix == ".safetensors" or head[8:9] == b"{":
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                sd = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # safetensors raises several private error types
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
        config = None
        if CONFIG_KEY in meta:
            try:
                config = MIMOUNetConfig(**json.loads(meta[CONFIG_KEY]))
            except (TypeError, ValueError) as exc:
                raise CheckpointError(f"{path}: invalid architecture metadata ({exc})") from exc
        return sd, config
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    return _unwrap(obj, path), None


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


def load_model(path: str | os.PathLike, config: MIMOUNetConfig | None = None,
               map_location: str | torch.device = "cpu") -> MIMOUNet:
    """Build a model from a weights file and load it with ``strict=True``.

    Args:
        path: our ``.safetensors`` file or a published ``.pth``/``.pkl``/``.pt`` checkpoint.
        config: force this architecture (otherwise: the stored one, or inferred from shapes).
        map_location: device for the returned model.

    Returns:
        The model in eval mode.
    """
    sd, stored = load_state_dict(path)
    cfg = config or stored or infer_config(sd, path)
    model = MIMOUNet(cfg)
    load_weights_into(model, sd, path)
    return model.to(map_location).eval()


def save_model(model: MIMOUNet, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> Path:
    """Write weights + architecture as safetensors, atomically (a crash never leaves half a file).

    Args:
        model: the network (a DDP/compiled wrapper is unwrapped).
        path: destination; ``.safetensors`` is the expected suffix.
        metadata: extra string key/values stored in the header (e.g. training step).
    """
    from safetensors.torch import save_file

    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)
    path = Path(path)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta[CONFIG_KEY] = json.dumps(model.config.to_dict())
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
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
