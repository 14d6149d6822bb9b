"""The training loop of Li et al., "Real-World Deep Local Motion Deblurring" (AAAI 2023).

Single process or PyTorch DDP (launched with ``torchrun``; NCCL on GPUs, Gloo on CPU). What it does:

* builds the network of the config (LBAG, MIMO-UNet(+), ablations), optionally initialised from a
  MIMO-UNet+ checkpoint (LBAG+);
* feeds blur-aware 256x256 patches in a deterministic order: sample ``k`` of the run is item
  ``perm_e[k mod N]`` of epoch ``e = k // N``, drawn with epoch ``e``'s augmentation stream, so the data
  position is a function of the step alone and ``--resume`` continues exactly where the run stopped;
* minimises the multi-scale loss with Adam (lr 1e-4 halved every 100k steps), bf16 autocast and
  channels_last on CUDA; a Table 1 baseline its published objective (``loss.kind``), DeblurGAN-v2 (a
  ``gan`` section) content + perceptual + RaGAN-LS with its discriminator step inside the criterion;
  that criterion's state (discriminators, RaGAN pools, their Adam) rides in every ``.state.pt``. It
  runs in one process only: the discriminators are not synchronised across DDP ranks; a step skipped
  for a non-finite generator loss has already updated them;
* skips a step whose loss is NaN/inf (all ranks agree) and stops after ``max_bad_steps`` in a row;
* validates every ``val_every`` steps on full-resolution images with the full metric set;
* writes checkpoints atomically (weights as safetensors via :func:`lbag.models.save_model`, the
  optimizer/scheduler/RNG/data position as a torch file), keeps the last K and the best by PSNR_w;
* logs to a tqdm bar, TensorBoard and a CSV of every logged value (``metrics.csv``).

Run folder layout::

    OUT/config.yaml                      the resolved config
    OUT/checkpoints/step_00001000.safetensors + step_00001000.state.pt
    OUT/best.safetensors                 best validation PSNR_w so far
    OUT/metrics.csv                      step,time,key,value (long format)
    OUT/tb/                              TensorBoard events
"""

from __future__ import annotations

import csv
import math
import os
import pickle
import random
import re
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.utils.data import DataLoader, Dataset, Sampler

from .accel import bf16_supported, resolve_device
from .atomic import atomic_path, check_output_dir, remove_stale_temps, write_text
from .config import ConfigError, TrainConfig, config_to_dict
from .models import CheckpointError, MIMOUNet, build_model, init_from_mimo_unet_plus, save_model
from .models.checkpoints import load_state_dict, load_weights_into

__all__ = ["Checkpoint", "StepSampler", "TrainResult", "TrainingDiverged", "latest_checkpoint", "train"]

_CKPT_RE = re.compile(r"^step_(\d+)\.state\.pt$")
_STATE_VERSION = 2  # 2: RNG states as tensors (1: numpy/Python tuples)


class TrainingDiverged(RuntimeError):
    """Too many consecutive NaN/inf losses; the last good checkpoint is left intact."""


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns (on every rank).

    Attributes:
        step: the last completed step.
        out_dir: the run folder.
        last_checkpoint: weights file of the last checkpoint (None if none was written).
        best_psnr_w: best validation PSNR_w (None without validation).
        skipped_steps: steps skipped for a non-finite loss.
        final_loss: mean total loss over the last logging interval.
        model: the trained network (unwrapped from DDP), in train mode.
    """

    step: int
    out_dir: Path
    last_checkpoint: Path | None
    best_psnr_w: float | None
    skipped_steps: int
    final_loss: float | None
    model: MIMOUNet | None = None


# --- distributed ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device: torch.device) -> _Dist:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    here = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        here = True
    return _Dist(rank, world, local, here)


def _resolve_device(name: str) -> torch.device:
    """``train.device`` through :func:`lbag.accel.resolve_device`; under torchrun each rank takes the GPU
    of its LOCAL_RANK. Raises ValueError when CUDA is asked for but missing."""
    device = resolve_device(name)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


# --- data order -----------------------------------------------------------------------------------
class StepSampler(Sampler):
    """Batch sampler whose position is a pure function of the step.

    Yields, for each step from ``start_step``, this rank's share of the global batch as keys
    ``(epoch, index)``: the global sample counter ``k`` maps to epoch ``k // n`` and to item
    ``perm_epoch[k % n]`` of a seeded permutation; rank ``r`` takes every ``world``-th sample.
    """

    def __init__(self, n: int, global_batch: int, seed: int, start_step: int = 0, rank: int = 0,
                 world: int = 1, max_steps: int | None = None):
        if global_batch % world:
            raise ValueError(f"optim.batch_size ({global_batch}) must be divisible by the number of "
                             f"processes ({world})")
        self.n, self.batch, self.seed = n, global_batch, seed
        self.start, self.rank, self.world, self.max_steps = start_step, rank, world, max_steps
        self._perm_cache: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perm_cache:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm_cache = {epoch: torch.randperm(self.n, generator=g).tolist()}
        return self._perm_cache[epoch]

    def batch_keys(self, step: int) -> list[tuple[int, int]]:
        """Keys of this rank's samples at ``step`` (0-based)."""
        keys = []
        for k in range(step * self.batch + self.rank, (step + 1) * self.batch, self.world):
            epoch = k // self.n
            keys.append((epoch, self._perm(epoch)[k % self.n]))
        return keys

    def __iter__(self):
        step = self.start
        while self.max_steps is None or step < self.max_steps:
            yield self.batch_keys(step)
            step += 1

    def __len__(self) -> int:
        return (self.max_steps - self.start) if self.max_steps is not None else 2 ** 62


class _EpochKeyed(Dataset):
    """Serve ``(epoch, index)`` keys from a dataset with ``set_epoch`` (each worker has its own copy)."""

    def __init__(self, base: Dataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        self.base.set_epoch(epoch)
        return self.base[index]


# --- checkpoints ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    """A periodic checkpoint: the weights file and the training-state file of one step."""

    step: int
    weights: Path
    state: Path


def _checkpoints(ckpt_dir: Path) -> list[Checkpoint]:
    """Complete checkpoints in ``ckpt_dir``, oldest first (a state file without weights is ignored)."""
    found = []
    if ckpt_dir.is_dir():
        for p in ckpt_dir.iterdir():
            m = _CKPT_RE.match(p.name)
            if m:
                w = p.with_name(f"step_{m.group(1)}.safetensors")
                if w.is_file():
                    found.append(Checkpoint(int(m.group(1)), w, p))
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(out_dir: str | os.PathLike) -> Checkpoint | None:
    """The most recent complete checkpoint of a run folder, or None."""
    cks = _checkpoints(Path(out_dir) / "checkpoints")
    return cks[-1] if cks else None


def _atomic_torch_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _rng_state(device: torch.device) -> dict:
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


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    n, py = state["numpy"], state["python"]
    if isinstance(n, dict):  # format 2; format 1 stored numpy's and Python's own tuples
        n = ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
        py = (py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"])
    np.random.set_state(n)
    random.setstate(py)
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


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


# --- logging --------------------------------------------------------------------------------------
class _Logger:
    """CSV (long format: step,time,key,value) + TensorBoard, on the main rank only."""

    def __init__(self, out_dir: Path, enabled: bool, resume_step: int | None):
        self.enabled = enabled
        self.csv_path = out_dir / "metrics.csv"
        self.tb = None
        if not enabled:
            return
        if resume_step is not None and self.csv_path.is_file():
            # Rows logged after the checkpoint we resume from belong to lost steps: drop them.
            with open(self.csv_path, newline="") as fh:
                rows = [r for r in csv.reader(fh)] or [["step", "time", "key", "value"]]
            kept = [rows[0]] + [r for r in rows[1:] if len(r) == 4 and r[0].isdigit() and int(r[0]) <= resume_step]
            write_text(self.csv_path, "".join(",".join(r) + "\n" for r in kept))
        elif not self.csv_path.is_file() or resume_step is None:
            write_text(self.csv_path, "step,time,key,value\n")
        self._fh = open(self.csv_path, "a", newline="")
        self._w = csv.writer(self._fh)
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(out_dir / "tb"), purge_step=resume_step)
        except Exception as exc:  # TensorBoard is optional at run time; the CSV is the record
            warnings.warn(f"TensorBoard logging disabled ({exc})", stacklevel=2)

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        now = f"{time.time():.3f}"
        for k, v in values.items():
            self._w.writerow([step, now, k, f"{v:.8g}"])
            if self.tb is not None and math.isfinite(v):
                self.tb.add_scalar(k, v, step)
        self._fh.flush()

    def close(self) -> None:
        if self.enabled:
            self._fh.close()
            if self.tb is not None:
                self.tb.close()


# --- validation -----------------------------------------------------------------------------------
def validate(model: torch.nn.Module, dataset: Dataset, device: torch.device, aligned: bool = True,
             tile: int | None = None, rank: int = 0, world: int = 1) -> dict[str, float]:
    """Full-resolution validation: deblur every image (tiled when needed) and average the metrics.

    Images are sharded over the DDP ranks and the per-image values gathered. Weighted metrics skip
    images with an empty mask (their count is reported as ``n_masked``).

    Returns:
        ``{'psnr', 'ssim', 'psnr_w', 'ssim_w', 'n_images', 'n_masked'}``, plus ``'psnr_a'`` and
        ``'n_ecc_failed'`` when ``aligned``.
    """
    from .data.layout import ImageReadError
    from .infer import deblur_tensor
    from .metrics import compute_metrics, summarize

    was_training = model.training
    model.eval()
    rows: list[dict[str, float]] = []
    try:
        for i in range(rank, len(dataset), world):
            try:
                item = dataset[i]
            except ImageReadError as exc:  # one bad file is that image's problem, not the run's
                warnings.warn(f"validation: image left out: {exc}", stacklevel=2)
                continue
            res = deblur_tensor(model, item["blur"][None], tile=tile, device=device)
            m = compute_metrics(res.image, item["sharp"][None], item["mask"][None], aligned=aligned)
            rows.append({k: float(v[0]) for k, v in m.items()})
    finally:
        model.train(was_training)
    if world > 1:
        gathered: list = [None] * world
        dist.all_gather_object(gathered, rows)
        rows = [r for part in gathered for r in part]
    summary = summarize(rows)  # the same means and counts as `lbag evaluate`
    keys = ("psnr", "ssim", "psnr_w", "ssim_w") + (("psnr_a",) if aligned else ())
    out = {k: math.nan if summary[k] is None else summary[k] for k in keys}
    out["n_images"] = float(summary["n_images"])
    out["n_masked"] = float(summary["n_images"] - summary["n_empty_mask"])
    if aligned:  # a count, not a mean: how many images fell back to identity alignment
        out["n_ecc_failed"] = float(summary["n_ecc_failed"])
    return out


# --- the loop -------------------------------------------------------------------------------------
def _prepare_data(cfg: TrainConfig, dd: _Dist) -> None:
    """Generate the synthetic dataset when the config asks for it and the root holds none."""
    root = Path(cfg.data.root)
    if cfg.data.synth is None or (root / "dataset" / cfg.data.train_split).is_dir():
        return
    if dd.main:
        from .data.synth import generate
        s = cfg.data.synth
        print(f"lbag train: {root} holds no dataset; generating {s.scenes} synthetic scenes "
              f"({s.width}x{s.height}, seed {s.seed})", flush=True)
        generate(root, scenes=s.scenes, size=(s.width, s.height), seed=s.seed)
    if dd.world > 1:
        dist.barrier()


def _restore(ckpt_dir: Path, model: torch.nn.Module, optimizer, scheduler, device: torch.device, dd: _Dist,
             log, criterion: torch.nn.Module | None = None) -> tuple[Checkpoint, dict]:
    """Load the newest usable checkpoint into the model, optimizer, scheduler, the criterion's own state
    (DeblurGAN-v2's discriminators) and this rank's RNG.

    A newer checkpoint that cannot be used (truncated, refused by :func:`load_training_state`, weights
    that do not load) is skipped with a warning naming it, and the log line says which one was used.

    Raises:
        CheckpointError: no checkpoint of ``ckpt_dir`` is usable (every reason listed).
    """
    unusable: list[str] = []
    for ck in reversed(_checkpoints(ckpt_dir)):
        try:
            state = load_training_state(ck.state)
            sd, _ = load_state_dict(ck.weights)
            load_weights_into(model, {k: v.to(device) for k, v in sd.items()}, ck.weights)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            _load_criterion_state(criterion, state, ck.state)
        except (CheckpointError, ValueError, KeyError, TypeError) as exc:
            unusable.append(str(exc) if isinstance(exc, CheckpointError) else f"{ck.state}: {type(exc).__name__}: {exc}")
            if dd.main:
                warnings.warn(f"cannot resume from step {ck.step}: {unusable[-1]}", stacklevel=3)
            continue
        rng = state["rng"]
        if len(rng) != dd.world:
            warnings.warn(f"{ck.state}: saved with {len(rng)} process(es), resuming with {dd.world}; "
                          "the random streams restart from the saved rank 0 state", stacklevel=3)
        _set_rng_state(rng[dd.rank] if dd.rank < len(rng) else rng[0], device)
        if dd.main:
            note = (f" (the {len(unusable)} newer checkpoint(s) are unusable: {'; '.join(unusable)})"
                    if unusable else "")
            log(f"lbag train: resumed from {ck.weights} at step {state['step']}{note}")
        return ck, state
    raise CheckpointError(f"{ckpt_dir}: no usable checkpoint to resume from: {'; '.join(unusable)}")


# --- the DeblurGAN-v2 objective -------------------------------------------------------------------
_FROZEN_VGG = "objective.vgg."  # the fixed ImageNet VGG19 comes from gan.vgg19_weights; never saved


def _gan_criterion(cfg: TrainConfig, model: torch.nn.Module, resume: bool, main: bool, log):
    """The DeblurGAN-v2 objective of a config with a ``gan`` section (None without one).

    On a fresh run the generator's backbone first gets the ImageNet weights of ``gan.backbone_weights``,
    as the official trainer starts from them; without that key the log says once that it starts from
    random weights. On resume the checkpoint holds every weight, so nothing is read.

    Raises:
        ConfigError: naming ``gan.vgg19_weights`` (missing or unusable VGG19 file) or
            ``gan.backbone_weights`` (unreadable, not this generator's backbone, a model without one).
    """
    if cfg.gan is None:
        return None
    from .gan import DeblurGANv2Criterion
    from .models.deblurganv2 import DeblurGANv2, load_backbone_weights

    criterion = DeblurGANv2Criterion.from_config(cfg)  # first: a missing VGG19 file stops the run here
    path = getattr(cfg.gan, "backbone_weights", None)
    if resume:
        return criterion
    if not path:
        if main:
            log(f"lbag train: gan.backbone_weights not set; the {cfg.model.name} backbone starts from random "
                "weights (the official DeblurGAN-v2 trainer starts from ImageNet ones)")
        return criterion
    if not isinstance(model, DeblurGANv2):
        raise ConfigError(f"gan.backbone_weights: {cfg.model.name} has no DeblurGAN-v2 backbone to load")
    try:
        sd, _ = load_state_dict(Path(path).expanduser())
        load_backbone_weights(model, sd)
    except CheckpointError as exc:
        raise ConfigError(f"gan.backbone_weights: {exc}") from None
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"gan.backbone_weights: {path}: {exc}") from None
    if main:
        log(f"lbag train: {cfg.model.name} backbone initialised from {path}")
    return criterion


def _stateful(criterion: torch.nn.Module | None) -> bool:
    from .gan import DeblurGANv2Criterion

    return isinstance(criterion, DeblurGANv2Criterion)


def _criterion_state(criterion: torch.nn.Module | None) -> dict | None:
    """What a resumed run needs of the criterion: for DeblurGAN-v2 both discriminators, their RaGAN
    pools (lists of floats) and their Adam state, i.e. tensors, numbers and strings that
    :func:`load_training_state` reads with ``weights_only=True``; the frozen VGG19 is left out. None
    for the stateless losses."""
    if not _stateful(criterion):
        return None
    return {k: v for k, v in criterion.state_dict().items() if not k.startswith(_FROZEN_VGG)}


def _load_criterion_state(criterion: torch.nn.Module | None, state: dict, path: Path) -> None:
    """Put back what :func:`_criterion_state` saved.

    Raises:
        CheckpointError: naming ``path``: no criterion state (a checkpoint of another objective) or one
            that does not fit this criterion (other discriminator sizes).
    """
    if not _stateful(criterion):
        return
    saved = state.get("criterion")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: holds no DeblurGAN-v2 discriminator state (written by a run with "
                              "another objective?)")
    try:
        missing, unexpected = criterion.load_state_dict(saved, strict=False)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[:2]
        raise CheckpointError(f"{path}: the discriminator state does not fit: {' '.join(first)}") from None
    missing = [k for k in missing if not k.startswith(_FROZEN_VGG)]
    if missing or unexpected:
        raise CheckpointError(f"{path}: the discriminator state does not fit (missing {missing[:4]}, "
                              f"unexpected {unexpected[:4]})")


def build_from_config(cfg: TrainConfig) -> torch.nn.Module:
    """The network a config describes (fresh initialisation; LBAG+ init is applied by :func:`train`):
    a MIMO-UNet / LBAG preset with the config's topology, or a Table 1 baseline by registry name."""
    from .models.mimo_unet import PRESETS
    from .models.registry import build

    if cfg.model.name in PRESETS:
        return build_model(cfg.model.name, **cfg.model.topology())
    return build(cfg.model.name)


def train(cfg: TrainConfig, resume: bool = False, log=print) -> TrainResult:
    """Train according to ``cfg``; with ``resume`` continue from the run folder's last checkpoint.

    Under ``torchrun`` (WORLD_SIZE > 1) every rank calls this; rank 0 writes logs and checkpoints.

    Raises:
        TrainingDiverged: ``train.max_bad_steps`` consecutive non-finite losses.
        ConfigError: ``gan.vgg19_weights`` / ``gan.backbone_weights`` unusable (before any step), or a
            ``gan`` section under torchrun.
        FileNotFoundError: no dataset (and no ``data.synth`` to generate one), or ``--resume`` without
            a checkpoint.
    """
    from .baseline_losses import baseline_loss
    from .data import TrainDataset, ValDataset
    from .losses import MultiScaleLoss

    tc, oc = cfg.train, cfg.optim
    if cfg.gan is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("gan: DeblurGAN-v2 trains in a single process (as its official trainer does); under "
                          "torchrun its discriminators, RaGAN pools and discriminator Adam would drift apart "
                          "on every rank (they are not synchronised). Run `lbag train` without torchrun.")
    try:
        device = _resolve_device(tc.device)
    except ValueError as exc:
        raise ConfigError(f"train.device: {exc}") from None
    dd = _setup_distributed(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    out_dir = Path(tc.out_dir)
    ckpt_dir = out_dir / "checkpoints"
    if dd.main:
        check_output_dir(ckpt_dir)  # a file in the way, no permission, read-only: before any work
        for folder in (out_dir, ckpt_dir):
            remove_stale_temps(folder)  # half-written files of a killed run
    try:
        _prepare_data(cfg, dd)
        if resume and latest_checkpoint(out_dir) is None:
            raise FileNotFoundError(f"{ckpt_dir}: --resume given but no checkpoint found")
        if not resume and dd.main and latest_checkpoint(out_dir) is not None:
            warnings.warn(f"{out_dir} already holds checkpoints; starting a new run over them "
                          "(use --resume to continue)", stacklevel=2)

        # Same seed on every rank: identical initial weights; per-rank offset for dropout afterwards.
        torch.manual_seed(tc.seed)
        model = build_from_config(cfg)
        if cfg.model.init and not resume:
            skipped = init_from_mimo_unet_plus(model, cfg.model.init)
            if dd.main:
                log(f"lbag train: initialised from {cfg.model.init} (kept fresh: {', '.join(skipped)})")
        gan_criterion = _gan_criterion(cfg, model, resume, dd.main, log)  # its discriminators: same seed
        torch.manual_seed(tc.seed + 1 + dd.rank)
        np.random.seed((tc.seed + 1 + dd.rank) % 2 ** 32)
        random.seed(tc.seed + 1 + dd.rank)

        cuda = device.type == "cuda"
        # bf16 autocast + channels_last wherever bf16 is native (CUDA, AVX512-BF16/AMX CPUs): 2.5-3.4x
        # faster CPU steps (benchmarks/bench_train.py); the loss stays float32 (see below).
        fast = tc.amp and bf16_supported(device)
        fmt = torch.channels_last if (tc.channels_last and (cuda or fast)) else torch.contiguous_format
        model = model.to(device, memory_format=fmt).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=oc.lr, betas=oc.betas, weight_decay=oc.weight_decay)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=oc.lr_step, gamma=oc.lr_gamma)
        if gan_criterion is not None:  # DeblurGAN-v2: its objective whatever loss.kind says
            criterion = gan_criterion.to(device).train()
        elif cfg.loss.kind == "lbag":
            gated = getattr(getattr(model, "config", None), "gated", False)  # baselines have no gate
            criterion = MultiScaleLoss(l1=cfg.loss.l1, ssim=cfg.loss.ssim, fft=cfg.loss.fft,
                                       mask=cfg.loss.mask if gated else 0.0, shift=cfg.loss.shift)
        else:  # a Table 1 baseline's published objective
            criterion = baseline_loss(cfg.loss.kind)

        step, best, skipped_total, bad_run = 0, None, 0, 0
        start = None
        if resume:
            start, state = _restore(ckpt_dir, model, optimizer, scheduler, device, dd, log, criterion)
            step, best = state["step"], state.get("best_psnr_w")
            skipped_total = state.get("skipped_steps", 0)

        if dd.main:
            write_text(out_dir / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        ddp_model = model
        if dd.world > 1:
            ddp_model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if cuda else None)

        train_set = TrainDataset(cfg.data.root, split=cfg.data.train_split, patch_size=cfg.data.patch_size,
                                 bapc=cfg.data.bapc, bapc_prob=cfg.data.bapc_prob, hflip=cfg.data.hflip,
                                 vflip=cfg.data.vflip, seed=tc.seed, cache_dir=cfg.data.cache_dir,
                                 masks_root=cfg.data.masks_root, bapc_min_mask_mean=cfg.data.bapc_min_mask_mean)
        val_set = None
        if tc.val_every > 0:
            val_set = ValDataset(cfg.data.root, split=cfg.data.val_split, masks_root=cfg.data.masks_root,
                                 max_images=cfg.data.val_max_images)
        sampler = StepSampler(len(train_set), oc.batch_size, seed=tc.seed, start_step=step, rank=dd.rank,
                              world=dd.world, max_steps=oc.max_steps)
        # Its own generator: creating the iterator draws a worker base seed, which must not advance the
        # global RNG (dropout) differently in a resumed run than in an uninterrupted one.
        loader_rng = torch.Generator().manual_seed(tc.seed * 7919 + step)
        loader = DataLoader(_EpochKeyed(train_set), batch_sampler=sampler, num_workers=cfg.data.num_workers,
                            pin_memory=cuda, persistent_workers=False, generator=loader_rng)

        logger = _Logger(out_dir, dd.main, step if start is not None else None)
        bar = None
        if dd.main and tc.progress:
            from tqdm import tqdm
            bar = tqdm(total=oc.max_steps, initial=step, desc="train", unit="step", dynamic_ncols=True)

        sums: dict[str, float] = defaultdict(float)
        n_logged, t_interval, final_loss = 0, time.perf_counter(), None
        last_ckpt = start.weights if start is not None else None

        def save_checkpoint(at: int) -> Path | None:
            # Every rank joins the RNG gather; only rank 0 writes.
            rng = [_rng_state(device)]
            if dd.world > 1:
                rng = [None] * dd.world
                dist.all_gather_object(rng, _rng_state(device))
            path = None
            if dd.main:
                path = ckpt_dir / f"step_{at:08d}.safetensors"
                save_model(model, path, metadata={"step": str(at)})
                _atomic_torch_save({"version": _STATE_VERSION, "step": at, "optimizer": optimizer.state_dict(),
                                    "scheduler": scheduler.state_dict(), "rng": rng, "best_psnr_w": best,
                                    "skipped_steps": skipped_total, "samples_seen": at * oc.batch_size,
                                    "world_size": dd.world, "criterion": _criterion_state(criterion)},
                                   ckpt_dir / f"step_{at:08d}.state.pt")
                for old in _checkpoints(ckpt_dir)[:-tc.keep_last]:
                    old.state.unlink(missing_ok=True)  # state first: a lone weights file is never "latest"
                    old.weights.unlink(missing_ok=True)
            return path

        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast)
        for batch in loader:
            blur = batch["blur"].to(device, non_blocking=True, memory_format=fmt)
            sharp = batch["sharp"].to(device, non_blocking=True)
            mask = batch["mask"].to(device, non_blocking=True)
            with autocast:
                out = ddp_model(blur)
            # The loss runs in float32: SSIM/FFT of bf16 images lose too much precision.
            out = type(out)([o.float() for o in out.images],
                            [None if m is None else m.float() for m in out.masks])
            result = criterion(out, sharp, mask)
            # The loss drops NaN terms itself; the step is bad when nothing finite is left.
            surviving = [k for k in result.terms if k != "total"]
            finite = (torch.isfinite(result.total.detach()) & torch.tensor(bool(surviving))).float()
            if dd.world > 1:
                dist.all_reduce(finite, op=dist.ReduceOp.MIN)
            optimizer.zero_grad(set_to_none=True)
            if finite.item() < 1:
                bad_run += 1
                skipped_total += 1
                if dd.main:
                    warnings.warn(f"step {step + 1}: non-finite loss ({result.total.item()}); step skipped "
                                  f"({bad_run} in a row)", stacklevel=2)
                if bad_run >= tc.max_bad_steps:
                    raise TrainingDiverged(
                        f"{bad_run} consecutive steps with a NaN/inf loss at step {step + 1}; stopping. "
                        f"Last good checkpoint: {last_ckpt or 'none written yet'}. Lower optim.lr or check "
                        "the data.")
            else:
                bad_run = 0
                result.total.backward()
                if oc.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), oc.grad_clip)
                optimizer.step()
                sums["loss/total"] += float(result.total.detach())
                for k in surviving:
                    sums[f"loss/{k}"] += float(result.terms[k])
                sums["loss/nan_terms"] += float(result.n_nan)
                n_logged += 1
            scheduler.step()
            step += 1

            if bar is not None:
                bar.update(1)
                if n_logged:
                    post = {k.split("/", 1)[1]: f"{v / n_logged:.4f}" for k, v in sums.items()}
                    post["lr"] = f"{optimizer.param_groups[0]['lr']:.2e}"
                    bar.set_postfix(post, refresh=False)
            if step % tc.log_every == 0 or step == oc.max_steps:
                dt = time.perf_counter() - t_interval
                vals = {k: v / max(n_logged, 1) for k, v in sums.items()}
                vals["lr"] = optimizer.param_groups[0]["lr"]
                vals["it_per_s"] = tc.log_every / dt if step % tc.log_every == 0 else float("nan")
                vals["skipped_steps"] = float(skipped_total)
                final_loss = vals.get("loss/total", final_loss)
                logger.log(step, vals)
                sums.clear()
                n_logged, t_interval = 0, time.perf_counter()
            if val_set is not None and (step % tc.val_every == 0 or step == oc.max_steps):
                metrics = validate(model, val_set, device, aligned=tc.val_aligned, tile=tc.val_tile,
                                   rank=dd.rank, world=dd.world)
                logger.log(step, {f"val/{k}": v for k, v in metrics.items()})
                pw = metrics.get("psnr_w", float("nan"))
                if dd.main:
                    log(f"\nstep {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
                    if math.isfinite(pw) and (best is None or pw > best):
                        best = pw
                        save_model(model, out_dir / "best.safetensors",
                                   metadata={"step": str(step), "psnr_w": f"{pw:.4f}"})
            # No checkpoint inside a run of bad steps: the last good one must stay the newest.
            if (step % tc.ckpt_every == 0 or step == oc.max_steps) and bad_run == 0:
                last_ckpt = save_checkpoint(step) or last_ckpt
        if bar is not None:
            bar.close()
        logger.close()
        return TrainResult(step, out_dir, last_ckpt, best, skipped_total, final_loss, model)
    finally:
        if dd.initialised_here and dist.is_initialized():
            dist.destroy_process_group()
