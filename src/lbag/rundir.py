"""The run folder of ``lbag train``: the one place that knows its layout and the checkpoint format.

Layout::

    OUT/config.yaml                      the resolved config
    OUT/checkpoints/step_00001000.safetensors + step_00001000.state.pt
    OUT/best.safetensors                 best validation PSNR_w so far
    OUT/metrics.csv                      step,time,key,value (long format)
    OUT/tb/                              TensorBoard events

A checkpoint is complete when both files of its step exist: the weights (safetensors, through
:func:`lbag.models.save_model`) and the training state (optimizer, scheduler, the RNG streams of every
rank, the data position, the criterion's own state), a torch file read back with ``weights_only=True``.
Both are written atomically, the weights first, so a crash never makes a half checkpoint the latest.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_path, check_output_dir, remove_stale_temps, write_text
from .models import CheckpointError, save_model
from .models.checkpoints import load_state_dict, load_weights_into

__all__ = ["STATE_VERSION", "Checkpoint", "RunDir", "latest_checkpoint", "load_training_state", "rng_state",
           "set_rng_state"]

_CKPT_RE = re.compile(r"^step_(\d+)\.state\.pt$")
STATE_VERSION = 2  # 2: RNG states as tensors (1: numpy/Python tuples)


@dataclass(frozen=True)
class Checkpoint:
    """A periodic checkpoint: the weights file and the training-state file of one step."""

    step: int
    weights: Path
    state: Path


# --- random streams -------------------------------------------------------------------------------
def rng_state(device: torch.device) -> dict:
    """Every random stream of this process as tensors and numbers (loadable with ``weights_only=True``)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                        "gauss_next": gauss_next}}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Put back what :func:`rng_state` returned (or a format-1 state file's numpy/Python tuples)."""
    torch.set_rng_state(state["torch"])
    n, py = state["numpy"], state["python"]
    if isinstance(n, dict):  # format 2; format 1 stored numpy's and Python's own tuples
        n = ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
        py = (py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"])
    np.random.set_state(n)
    random.setstate(py)
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# --- the state file -------------------------------------------------------------------------------
def _numpy_globals() -> list:
    """The numpy pieces a format-1 state file (numpy's RNG tuple) needs: plain arrays, nothing callable."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load_training_state(path: str | os.PathLike) -> dict:
    """Read a ``step_*.state.pt`` file with ``torch.load(weights_only=True)``: tensors, numbers and
    strings only (format 1 files also hold plain numpy arrays), never arbitrary objects.

    Raises:
        CheckpointError: naming the file: truncated, not a torch file, holding anything else (a crafted
            file is refused, not run), or missing a part of the training state.
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, unpickling refused, I/O: all mean "unusable"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        refused = isinstance(exc, pickle.UnpicklingError) and "weights only" in str(exc).lower()
        reason = ("holds objects other than tensors, numbers and strings; refused, not unpickled" if refused
                  else f"{type(exc).__name__}: {first}")
        raise CheckpointError(f"{path}: unreadable training state ({reason})") from None
    missing = [k for k in ("step", "optimizer", "scheduler", "rng") if not isinstance(state, dict) or k not in state]
    if missing or not isinstance(state["step"], int) or not isinstance(state["rng"], list) or not state["rng"]:
        raise CheckpointError(f"{path}: not a training state of lbag (missing or invalid: "
                              f"{', '.join(missing) or 'step/rng'})")
    return state


# --- the folder -----------------------------------------------------------------------------------
class RunDir:
    """One run folder: checkpoints (save, prune, latest, restore), the best weights and the config."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.ckpt_dir = self.root / "checkpoints"

    def prepare(self) -> None:
        """Fail now on a folder that cannot be written (a file in the way, no permission, read-only) and
        remove the half-written files of a killed run."""
        check_output_dir(self.ckpt_dir)
        for folder in (self.root, self.ckpt_dir):
            remove_stale_temps(folder)

    def checkpoints(self) -> list[Checkpoint]:
        """Complete checkpoints, oldest first (a state file without weights is ignored)."""
        found = []
        if self.ckpt_dir.is_dir():
            for p in self.ckpt_dir.iterdir():
                m = _CKPT_RE.match(p.name)
                if m:
                    w = p.with_name(f"step_{m.group(1)}.safetensors")
                    if w.is_file():
                        found.append(Checkpoint(int(m.group(1)), w, p))
        return sorted(found, key=lambda c: c.step)

    def latest(self) -> Checkpoint | None:
        """The most recent complete checkpoint, or None."""
        cks = self.checkpoints()
        return cks[-1] if cks else None

    def save(self, step: int, model: torch.nn.Module, state: dict, keep_last: int) -> Path:
        """Write the checkpoint of ``step``: the weights, then the state file (``version`` and ``step``
        followed by ``state``), then drop all but the newest ``keep_last``. Returns the weights file."""
        weights = self.ckpt_dir / f"step_{step:08d}.safetensors"
        save_model(model, weights, metadata={"step": str(step)})
        with atomic_path(self.ckpt_dir / f"step_{step:08d}.state.pt") as tmp:
            torch.save({"version": STATE_VERSION, "step": step, **state}, tmp)
        self.prune(keep_last)
        return weights

    def prune(self, keep_last: int) -> None:
        """Delete all but the newest ``keep_last`` checkpoints."""
        for old in self.checkpoints()[:-keep_last]:
            old.state.unlink(missing_ok=True)  # state first: a lone weights file is never "latest"
            old.weights.unlink(missing_ok=True)

    def save_best(self, model: torch.nn.Module, step: int, psnr_w: float) -> Path:
        return save_model(model, self.root / "best.safetensors", metadata={"step": str(step), "psnr_w": f"{psnr_w:.4f}"})

    def write_config(self, config: dict) -> Path:
        import yaml

        return write_text(self.root / "config.yaml", yaml.safe_dump(config, sort_keys=False))

    def restore(self, model: torch.nn.Module, optimizer, scheduler, device: torch.device, rank: int = 0,
                world: int = 1, log=print, load_extra: Callable[[dict, Path], None] | None = None,
                ) -> tuple[Checkpoint, dict]:
        """Load the newest usable checkpoint into the model, optimizer, scheduler, ``load_extra`` (the
        criterion's own state, e.g. DeblurGAN-v2's discriminators) and this rank's RNG.

        A newer checkpoint that cannot be used (truncated, refused by :func:`load_training_state`, weights
        that do not load) is skipped with a warning naming it, and the log line says which one was used.

        Raises:
            CheckpointError: no checkpoint is usable (every reason listed).
        """
        unusable: list[str] = []
        for ck in reversed(self.checkpoints()):
            try:
                state = load_training_state(ck.state)
                sd, _ = load_state_dict(ck.weights)
                load_weights_into(model, {k: v.to(device) for k, v in sd.items()}, ck.weights)
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
                if load_extra is not None:
                    load_extra(state, ck.state)
            except (CheckpointError, ValueError, KeyError, TypeError) as exc:
                unusable.append(str(exc) if isinstance(exc, CheckpointError) else f"{ck.state}: {type(exc).__name__}: {exc}")
                if rank == 0:
                    warnings.warn(f"cannot resume from step {ck.step}: {unusable[-1]}", stacklevel=3)
                continue
            rng = state["rng"]
            if len(rng) != world:
                warnings.warn(f"{ck.state}: saved with {len(rng)} process(es), resuming with {world}; "
                              "the random streams restart from the saved rank 0 state", stacklevel=3)
            set_rng_state(rng[rank] if rank < len(rng) else rng[0], device)
            if rank == 0:
                note = (f" (the {len(unusable)} newer checkpoint(s) are unusable: {'; '.join(unusable)})"
                        if unusable else "")
                log(f"lbag train: resumed from {ck.weights} at step {state['step']}{note}")
            return ck, state
        raise CheckpointError(f"{self.ckpt_dir}: no usable checkpoint to resume from: {'; '.join(unusable)}")


def latest_checkpoint(out_dir: str | os.PathLike) -> Checkpoint | None:
    """The most recent complete checkpoint of a run folder, or None."""
    return RunDir(out_dir).latest()
