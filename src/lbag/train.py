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

The run folder and the checkpoint format are :mod:`lbag.rundir`'s.
"""

from __future__ import annotations

import csv
import math
import os
import random
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from .accel import bf16_supported, resolve_device
from .atomic import write_text
from .config import ConfigError, TrainConfig, config_to_dict
from .models import CheckpointError, MIMOUNet, build_model, init_from_mimo_unet_plus
from .models.checkpoints import load_state_dict
from .rundir import Checkpoint, RunDir, latest_checkpoint, load_training_state, rng_state

__all__ = ["Checkpoint", "RunProgress", "StepOutcome", "StepSampler", "TrainResult", "TrainingDiverged",
           "latest_checkpoint", "load_training_state", "train", "train_step"]


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


def _rank_device(name: str) -> torch.device:
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
    from .data.layout import has_split

    root = Path(cfg.data.root)
    if cfg.data.synth is None or has_split(root, cfg.data.train_split):
        return
    if dd.main:
        from .data.synth import generate
        s = cfg.data.synth
        print(f"lbag train: {root} holds no dataset; generating {s.scenes} synthetic scenes "
              f"({s.width}x{s.height}, seed {s.seed})", flush=True)
        generate(root, scenes=s.scenes, size=(s.width, s.height), seed=s.seed)
    if dd.world > 1:
        dist.barrier()


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


# --- one step -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepOutcome:
    """What :func:`train_step` did.

    Attributes:
        skipped: the loss was NaN/inf (on any rank): no parameter update.
        loss: the total loss of this rank.
        terms: the values a taken step adds to the logged means: ``loss/total``, ``loss/<term>`` for every
            term the loss kept, ``loss/nan_terms``; empty for a skipped step.
    """

    skipped: bool
    loss: float
    terms: dict[str, float]


def train_step(model: torch.nn.Module, criterion: torch.nn.Module, optimizer, scheduler, batch: dict, *,
               device: torch.device, memory_format=torch.contiguous_format, bf16: bool = False,
               grad_clip: float | None = None, world: int = 1) -> StepOutcome:
    """One optimisation step on ``batch``: forward (bf16 autocast when ``bf16``), the loss in float32,
    backward and update unless the loss is non-finite on any rank, then one scheduler step either way."""
    blur = batch["blur"].to(device, non_blocking=True, memory_format=memory_format)
    sharp = batch["sharp"].to(device, non_blocking=True)
    mask = batch["mask"].to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(blur)
    # The loss runs in float32: SSIM/FFT of bf16 images lose too much precision.
    out = type(out)([o.float() for o in out.images], [None if m is None else m.float() for m in out.masks])
    result = criterion(out, sharp, mask)
    # The loss drops NaN terms itself; the step is bad when nothing finite is left.
    surviving = [k for k in result.terms if k != "total"]
    finite = (torch.isfinite(result.total.detach()) & torch.tensor(bool(surviving))).float()
    if world > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    optimizer.zero_grad(set_to_none=True)
    loss, terms = float(result.total.detach()), {}
    if finite.item() >= 1:
        result.total.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        terms = {"loss/total": loss, **{f"loss/{k}": float(result.terms[k]) for k in surviving},
                 "loss/nan_terms": float(result.n_nan)}
    scheduler.step()
    return StepOutcome(not terms, loss, terms)


@dataclass
class RunProgress:
    """Where a run stands: the step, the best PSNR_w, skipped steps and the current run of bad ones."""

    step: int = 0
    best: float | None = None
    skipped: int = 0
    bad_run: int = 0
    last_ckpt: Path | None = None

    def record(self, outcome: StepOutcome, max_bad_steps: int, warn: bool = True) -> None:
        """Count one step; a skipped one is warned about, and ``max_bad_steps`` in a row stop the run.

        Raises:
            TrainingDiverged: naming the last good checkpoint.
        """
        if outcome.skipped:
            self.bad_run += 1
            self.skipped += 1
            if warn:
                warnings.warn(f"step {self.step + 1}: non-finite loss ({outcome.loss}); step skipped "
                              f"({self.bad_run} in a row)", stacklevel=2)
            if self.bad_run >= max_bad_steps:
                raise TrainingDiverged(
                    f"{self.bad_run} consecutive steps with a NaN/inf loss at step {self.step + 1}; stopping. "
                    f"Last good checkpoint: {self.last_ckpt or 'none written yet'}. Lower optim.lr or check "
                    "the data.")
        else:
            self.bad_run = 0
        self.step += 1

    def checkpoint_due(self, every: int, max_steps: int) -> bool:
        """A checkpoint at this step? Never inside a run of bad steps: the last good one stays the newest."""
        return (self.step % every == 0 or self.step == max_steps) and self.bad_run == 0


class _Meter:
    """Means of the loss terms over each logging interval, for the log and the progress bar."""

    def __init__(self, cfg: TrainConfig, step: int, bar: bool):
        self.every, self.max_steps = cfg.train.log_every, cfg.optim.max_steps
        self.sums: dict[str, float] = defaultdict(float)
        self.n, self.t0, self.final_loss = 0, time.perf_counter(), None
        self.bar = None
        if bar:
            from tqdm import tqdm
            self.bar = tqdm(total=self.max_steps, initial=step, desc="train", unit="step", dynamic_ncols=True)

    def add(self, outcome: StepOutcome, lr: float) -> None:
        for k, v in outcome.terms.items():
            self.sums[k] += v
        self.n += bool(outcome.terms)
        if self.bar is not None:
            self.bar.update(1)
            if self.n:
                post = {k.split("/", 1)[1]: f"{v / self.n:.4f}" for k, v in self.sums.items()}
                post["lr"] = f"{lr:.2e}"
                self.bar.set_postfix(post, refresh=False)

    def log(self, logger: _Logger, step: int, lr: float, skipped: int) -> None:
        """At the end of an interval (and at the last step): log the means and start a new interval."""
        if step % self.every and step != self.max_steps:
            return
        dt = time.perf_counter() - self.t0
        vals = {k: v / max(self.n, 1) for k, v in self.sums.items()}
        vals["lr"] = lr
        vals["it_per_s"] = self.every / dt if step % self.every == 0 else float("nan")
        vals["skipped_steps"] = float(skipped)
        self.final_loss = vals.get("loss/total", self.final_loss)
        logger.log(step, vals)
        self.sums.clear()
        self.n, self.t0 = 0, time.perf_counter()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --- the pieces of a run --------------------------------------------------------------------------
def _training_device(cfg: TrainConfig) -> torch.device:
    """The device of this process, after refusing a ``gan`` section under torchrun."""
    if cfg.gan is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("gan: DeblurGAN-v2 trains in a single process (as its official trainer does); under "
                          "torchrun its discriminators, RaGAN pools and discriminator Adam would drift apart "
                          "on every rank (they are not synchronised). Run `lbag train` without torchrun.")
    try:
        return _rank_device(cfg.train.device)
    except ValueError as exc:
        raise ConfigError(f"train.device: {exc}") from None


def _check_resume(run: RunDir, resume: bool, main: bool) -> None:
    if resume and run.latest() is None:
        raise FileNotFoundError(f"{run.ckpt_dir}: --resume given but no checkpoint found")
    if not resume and main and run.latest() is not None:
        warnings.warn(f"{run.root} already holds checkpoints; starting a new run over them "
                      "(use --resume to continue)", stacklevel=3)


def _init_model(cfg: TrainConfig, resume: bool, dd: _Dist, log) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """The network (LBAG+ init on a fresh run) and the DeblurGAN-v2 criterion if any, then the seeds."""
    seed = cfg.train.seed
    # Same seed on every rank: identical initial weights; per-rank offset for dropout afterwards.
    torch.manual_seed(seed)
    model = build_from_config(cfg)
    if cfg.model.init and not resume:
        skipped = init_from_mimo_unet_plus(model, cfg.model.init)
        if dd.main:
            log(f"lbag train: initialised from {cfg.model.init} (kept fresh: {', '.join(skipped)})")
    gan_criterion = _gan_criterion(cfg, model, resume, dd.main, log)  # its discriminators: same seed
    torch.manual_seed(seed + 1 + dd.rank)
    np.random.seed((seed + 1 + dd.rank) % 2 ** 32)
    random.seed(seed + 1 + dd.rank)
    return model, gan_criterion


def _objective(cfg: TrainConfig, model: torch.nn.Module, gan_criterion, device: torch.device) -> torch.nn.Module:
    """DeblurGAN-v2's objective whatever loss.kind says; else LBAG's multi-scale loss or a baseline's."""
    from .baseline_losses import baseline_loss
    from .losses import MultiScaleLoss

    if gan_criterion is not None:
        return gan_criterion.to(device).train()
    if cfg.loss.kind == "lbag":
        gated = getattr(getattr(model, "config", None), "gated", False)  # baselines have no gate
        return MultiScaleLoss(l1=cfg.loss.l1, ssim=cfg.loss.ssim, fft=cfg.loss.fft,
                              mask=cfg.loss.mask if gated else 0.0, shift=cfg.loss.shift)
    return baseline_loss(cfg.loss.kind)  # a Table 1 baseline's published objective


def _data(cfg: TrainConfig, dd: _Dist, step: int, pin_memory: bool) -> tuple[DataLoader, Dataset | None]:
    """The training loader from ``step`` on and the validation set (None without validation)."""
    from .data import TrainDataset, ValDataset

    d, seed = cfg.data, cfg.train.seed
    train_set = TrainDataset(d.root, split=d.train_split, patch_size=d.patch_size, bapc=d.bapc,
                             bapc_prob=d.bapc_prob, hflip=d.hflip, vflip=d.vflip, seed=seed, cache_dir=d.cache_dir,
                             masks_root=d.masks_root, bapc_min_mask_mean=d.bapc_min_mask_mean)
    val_set = None
    if cfg.train.val_every > 0:
        val_set = ValDataset(d.root, split=d.val_split, masks_root=d.masks_root, max_images=d.val_max_images)
    sampler = StepSampler(len(train_set), cfg.optim.batch_size, seed=seed, start_step=step, rank=dd.rank,
                          world=dd.world, max_steps=cfg.optim.max_steps)
    # Its own generator: creating the iterator draws a worker base seed, which must not advance the
    # global RNG (dropout) differently in a resumed run than in an uninterrupted one.
    loader_rng = torch.Generator().manual_seed(seed * 7919 + step)
    loader = DataLoader(_EpochKeyed(train_set), batch_sampler=sampler, num_workers=d.num_workers,
                        pin_memory=pin_memory, persistent_workers=False, generator=loader_rng)
    return loader, val_set


def _validation_round(model: torch.nn.Module, val_set: Dataset, cfg: TrainConfig, device: torch.device,
                      dd: _Dist, run: RunDir, logger: _Logger, progress: RunProgress, log) -> None:
    """Validate at this step, log the metrics and keep the weights when PSNR_w is the best so far."""
    tc, step = cfg.train, progress.step
    metrics = validate(model, val_set, device, aligned=tc.val_aligned, tile=tc.val_tile, rank=dd.rank, world=dd.world)
    logger.log(step, {f"val/{k}": v for k, v in metrics.items()})
    pw = metrics.get("psnr_w", float("nan"))
    if dd.main:
        log(f"\nstep {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        if math.isfinite(pw) and (progress.best is None or pw > progress.best):
            progress.best = pw
            run.save_best(model, step, pw)


def _adopt_schedule(optimizer, scheduler, oc, log) -> None:
    """On resume, the config's learning-rate schedule replaces the one saved in the checkpoint.

    The saved StepLR state carries its step size, gamma and base rate, and Adam's the current rate, so
    without this a resumed run would silently keep the old schedule after the config changed
    ``optim.lr``, ``optim.lr_step`` or ``optim.lr_gamma``. An unchanged schedule is left untouched (the
    resume stays bit-identical); a changed one takes effect from the resumed step, as if it had always
    been the schedule: lr = lr0 * gamma ** (step // lr_step).
    """
    old = (scheduler.base_lrs[0], scheduler.step_size, scheduler.gamma)
    new = (oc.lr, oc.lr_step, oc.lr_gamma)
    if old == new:
        return
    step = scheduler.last_epoch
    lr = oc.lr * oc.lr_gamma ** (step // oc.lr_step)
    scheduler.base_lrs = [oc.lr] * len(optimizer.param_groups)
    scheduler.step_size, scheduler.gamma = oc.lr_step, oc.lr_gamma
    for group in optimizer.param_groups:
        group["lr"], group["initial_lr"] = lr, oc.lr
    scheduler._last_lr = [lr] * len(optimizer.param_groups)
    log(f"lbag train: the config changes the learning-rate schedule (lr {old[0]:g} -> {oc.lr:g}, lr_step "
        f"{old[1]} -> {oc.lr_step}, lr_gamma {old[2]:g} -> {oc.lr_gamma:g}): lr {lr:g} from step {step}")


def _save_checkpoint(run: RunDir, cfg: TrainConfig, model: torch.nn.Module, optimizer, scheduler,
                     criterion: torch.nn.Module, progress: RunProgress, device: torch.device, dd: _Dist) -> Path | None:
    """Every rank joins the RNG gather; rank 0 writes the checkpoint of this step (None elsewhere)."""
    rng = [rng_state(device)]
    if dd.world > 1:
        rng = [None] * dd.world
        dist.all_gather_object(rng, rng_state(device))
    if not dd.main:
        return None
    at = progress.step
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng,
             "best_psnr_w": progress.best, "skipped_steps": progress.skipped,
             "samples_seen": at * cfg.optim.batch_size, "world_size": dd.world,
             "criterion": _criterion_state(criterion)}
    return run.save(at, model, state, cfg.train.keep_last)


# --- the recipe -----------------------------------------------------------------------------------
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
    tc, oc = cfg.train, cfg.optim
    device = _training_device(cfg)
    dd = _setup_distributed(device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(device)
    run = RunDir(tc.out_dir)
    if dd.main:
        run.prepare()  # a file in the way, no permission, read-only: before any work
    try:
        _prepare_data(cfg, dd)
        _check_resume(run, resume, dd.main)
        model, gan_criterion = _init_model(cfg, resume, dd, log)
        # bf16 autocast + channels_last wherever bf16 is native (CUDA, AVX512-BF16/AMX CPUs): 2.5-3.4x
        # faster CPU steps (benchmarks/bench_train.py); the loss stays float32 (see train_step).
        fast = tc.amp and bf16_supported(device)
        fmt = torch.channels_last if (tc.channels_last and (cuda or fast)) else torch.contiguous_format
        model = model.to(device, memory_format=fmt).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=oc.lr, betas=oc.betas, weight_decay=oc.weight_decay)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=oc.lr_step, gamma=oc.lr_gamma)
        criterion = _objective(cfg, model, gan_criterion, device)
        progress, resumed_at = RunProgress(), None
        if resume:
            ck, state = run.restore(model, optimizer, scheduler, device, dd.rank, dd.world, log,
                                    partial(_load_criterion_state, criterion))
            progress = RunProgress(state["step"], state.get("best_psnr_w"), state.get("skipped_steps", 0),
                                   last_ckpt=ck.weights)
            _adopt_schedule(optimizer, scheduler, oc, log if dd.main else (lambda *_: None))
            resumed_at = progress.step
        if dd.main:
            run.write_config(config_to_dict(cfg))
        net = model
        if dd.world > 1:
            net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
        loader, val_set = _data(cfg, dd, progress.step, pin_memory=cuda)
        logger = _Logger(run.root, dd.main, resumed_at)
        meter = _Meter(cfg, progress.step, bar=dd.main and tc.progress)
        for batch in loader:
            outcome = train_step(net, criterion, optimizer, scheduler, batch, device=device, memory_format=fmt,
                                 bf16=fast, grad_clip=oc.grad_clip, world=dd.world)
            progress.record(outcome, tc.max_bad_steps, warn=dd.main)
            lr = optimizer.param_groups[0]["lr"]
            meter.add(outcome, lr)
            meter.log(logger, progress.step, lr, progress.skipped)
            if val_set is not None and (progress.step % tc.val_every == 0 or progress.step == oc.max_steps):
                _validation_round(model, val_set, cfg, device, dd, run, logger, progress, log)
            if progress.checkpoint_due(tc.ckpt_every, oc.max_steps):
                saved = _save_checkpoint(run, cfg, model, optimizer, scheduler, criterion, progress, device, dd)
                progress.last_ckpt = saved or progress.last_ckpt
        meter.close()
        logger.close()
        return TrainResult(progress.step, run.root, progress.last_ckpt, progress.best, progress.skipped,
                           meter.final_loss, model)
    finally:
        if dd.initialised_here and dist.is_initialized():
            dist.destroy_process_group()
