"""Full-resolution inference for MIMO-UNet / LBAG: padded, tiled, blended.

Li et al., "Real-World Deep Local Motion Deblurring" (AAAI 2023) evaluate LBAG on the full 2152x1436
ReLoBlur images (~7.1 TMAC, several GB of activations). To run any image size on bounded memory the
image is cut into overlapping tiles, each tile goes through the network on its own, and the outputs
are blended with raised-cosine weights over the overlaps, so no seam is visible.

Why the result matches the untiled output closely: the network downsamples with nearest
interpolation, which keeps every 2nd / 4th pixel. Tiles therefore start on multiples of 4, so every
tile sees exactly the pixel grid the whole image would; what remains is the limited context at tile
borders, and the blending weights give those border pixels (almost) no say. The default overlap was
chosen by ``benchmarks/bench_infer.py`` (tiled vs untiled PSNR; see README "Measured figures").

The per-tile network call is one swappable callable, ``forward(x) -> DeblurOutput`` (default: the
model itself), so an optimised path of :mod:`lbag.accel` (channels_last, bf16, torch.compile) plugs in
as ``forward=prepare(model, device)``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .models import DeblurOutput

__all__ = [
    "DEFAULT_OVERLAP",
    "DeblurJob",
    "DeblurResult",
    "apply_exif_orientation",
    "auto_tile_size",
    "available_memory",
    "blend_weights",
    "bundled_weights_path",
    "model_banner",
    "bytes_per_pixel",
    "collect_inputs",
    "deblur_files",
    "deblur_tensor",
    "check_outputs",
    "load_for_inference",
    "output_paths",
    "read_input_image",
    "tile_starts",
    "tiling",
]

# Overlap between neighbouring tiles, in full-resolution pixels (a multiple of 4). Measured with
# benchmarks/bench_infer.py: see README "Measured figures" for the tiled-vs-untiled PSNR per overlap.
DEFAULT_OVERLAP = 64
# Alignment of tile origins: the network's coarsest scale is 1/4 (nearest downsampling).
ALIGN = 4

@dataclass(frozen=True)
class DeblurResult:
    """Output of :func:`deblur_tensor`.

    Attributes:
        image: deblurred image (B, 3, H, W), clamped to [0, 1], on the CPU.
        mask: predicted blur mask (B, 1, H, W) in [gate_min, 1] for gated models, else None.
        tiles: number of tiles the image was cut into (1 = untiled).
        tile: tile side used (0 = whole image).
    """

    image: torch.Tensor
    mask: torch.Tensor | None
    tiles: int
    tile: int


# --- tiling geometry ------------------------------------------------------------------------------
def tile_starts(length: int, tile: int, overlap: int, align: int = ALIGN) -> list[int]:
    """Origins of the tiles along one axis: evenly spread, aligned to ``align``, covering ``length``.

    Args:
        length: axis length (a multiple of ``align``).
        tile: tile side (a multiple of ``align``).
        overlap: minimum overlap wanted between neighbours (pixels).

    Returns:
        Sorted origins; the first is 0 and the last is ``length - tile`` (``[0]`` when one tile covers it).
    """
    if tile >= length:
        return [0]
    if overlap >= tile:
        raise ValueError(f"overlap ({overlap}) must be smaller than the tile ({tile})")
    n = math.ceil((length - overlap) / (tile - overlap))
    n = max(n, 2)
    last = length - tile
    starts = sorted({(round(i * last / (n - 1)) // align) * align for i in range(n)} | {last})
    return starts


def _ramp(n: int, device=None) -> torch.Tensor:
    """Raised-cosine rise over ``n`` samples, with the outer quarter at exactly zero.

    The outer quarter of an overlap is where a tile lacks context, so it gets no weight at all; the
    middle half is a raised cosine, whose mirror image sums with it to exactly one.
    """
    if n <= 0:
        return torch.ones(0, device=device)
    i = torch.arange(n, dtype=torch.float64, device=device)
    lo, hi = n / 4.0, 3.0 * n / 4.0
    t = ((i + 0.5 - lo) / (hi - lo)).clamp(0.0, 1.0)
    return (0.5 - 0.5 * torch.cos(math.pi * t)).float()


def blend_weights(size: int, before: int, after: int, device=None) -> torch.Tensor:
    """1-D blending weights of a tile of ``size`` px overlapping ``before`` px with its previous
    neighbour and ``after`` px with its next one (0 = image border: full weight up to the edge)."""
    w = torch.ones(size, device=device)
    if before > 0:
        w[:before] = _ramp(before, device)
    if after > 0:
        w[size - after:] = torch.minimum(w[size - after:], _ramp(after, device).flip(0))
    # Never exactly zero: keeps the normaliser positive even for degenerate overlaps.
    return w.clamp_min(1e-6)


def _axis_plan(length: int, tile: int, overlap: int, align: int = ALIGN) -> list[tuple[int, torch.Tensor]]:
    starts = tile_starts(length, tile, overlap, align)
    size = min(tile, length)
    plan = []
    for k, s in enumerate(starts):
        before = (starts[k - 1] + size - s) if k > 0 else 0
        after = (s + size - starts[k + 1]) if k + 1 < len(starts) else 0
        plan.append((s, blend_weights(size, before, after)))
    return plan


# --- memory ---------------------------------------------------------------------------------------
def available_memory(device: torch.device) -> int:
    """Free memory in bytes on ``device`` (CUDA: free device memory; CPU: MemAvailable)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:  # other POSIX systems
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def bytes_per_pixel(model: torch.nn.Module) -> int:
    """Peak inference memory per input pixel, float32, with a 1.5x safety margin.

    Measured with benchmarks/bench_infer.py (peak RSS growth of an untiled ``inference_mode`` forward on
    the CPU): ~100 bytes per pixel per unit of width (lbag_small, width 16: 1.6 KB/px at 512x512 and
    1024x1024; LBAG, width 32: 3.1 KB/px). Every activation's channel count scales with the width.
    """
    width = getattr(getattr(model, "config", None), "width", 32)
    return int(150 * width)


def auto_tile_size(model: torch.nn.Module, device: torch.device, fraction: float = 0.5,
                   max_tile: int | None = None, min_tile: int = 128, align: int = ALIGN) -> int:
    """Largest square tile (multiple of ``align``) whose forward pass fits ``fraction`` of the free memory.

    ``max_tile`` defaults to 512 on the CPU, where benchmarks/bench_infer.py measured 512 px tiles
    1.3-2x faster than one untiled pass and ~2.3x faster than 2048 px tiles at 2152x1436 (two runs on a
    shared 2-core machine; cache locality), and to 2048 on GPUs.
    """
    if max_tile is None:
        max_tile = 512 if device.type == "cpu" else 2048
    budget = available_memory(device) * fraction
    side = int(math.sqrt(max(budget, 0) / bytes_per_pixel(model)))
    side = max(min_tile, min(max_tile, side))
    return max(side - side % align, align)


def model_tiling(model: torch.nn.Module) -> tuple[int, int, int, bool]:
    """How to tile ``model`` (see :mod:`lbag.models.registry`): (tile alignment = lcm(4, its pad
    multiple), default overlap, smallest automatic tile, keep the whole image when memory allows).
    The MIMO-UNet family and unknown networks: (4, DEFAULT_OVERLAP, 128, False)."""
    from .models.registry import spec_of

    spec = spec_of(model)
    if spec is None:
        return ALIGN, DEFAULT_OVERLAP, 128, False
    return spec.tile_align, spec.tile_overlap, spec.min_tile, spec.whole_image


# --- inference ------------------------------------------------------------------------------------
def tiling(tile: int | None, overlap: int, align: int = ALIGN) -> tuple[int | None, int]:
    """The tile side and overlap :func:`deblur_tensor` actually uses: the tile rounded down to a multiple
    of ``align`` (4, or the model's pad multiple; at least 2 x align; None = automatic, 0 = untiled
    stay), the overlap rounded up to one.

    Raises:
        ValueError: a negative value, or an overlap that does not fit in the tile after rounding.
    """
    if tile is not None and tile < 0:
        raise ValueError(f"tile must be >= 0, got {tile}")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    overlap += (-overlap) % align
    if tile:
        tile = max(tile - tile % align, 2 * align)
        if overlap >= tile:
            raise ValueError(f"overlap ({overlap}) must be smaller than the tile ({tile}), both rounded to "
                             f"multiples of {align}")
    return tile, overlap


def _tiled(forward: Callable[[torch.Tensor], DeblurOutput], x: torch.Tensor, tile: int, overlap: int,
           align: int, dev: torch.device, progress: Callable[[int, int], None] | None
           ) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """Run ``forward`` over overlapping tiles of ``x`` (sides multiples of ``align``) and blend them.

    Returns:
        (image, mask or None, number of tiles), at the size of ``x``.
    """
    b, _, H, W = x.shape
    rows, cols = _axis_plan(H, tile, overlap, align), _axis_plan(W, tile, overlap, align)
    acc = torch.zeros(b, 3, H, W)
    acc_mask: torch.Tensor | None = None
    norm = torch.zeros(1, 1, H, W)
    total, done = len(rows) * len(cols), 0
    for y0, wy in rows:
        for x0, wx in cols:
            th, tw = wy.numel(), wx.numel()
            out = forward(x[..., y0:y0 + th, x0:x0 + tw].to(dev))
            weight = (wy[:, None] * wx[None, :])[None, None]
            acc[..., y0:y0 + th, x0:x0 + tw] += out.images[-1].float().cpu() * weight
            if out.masks[-1] is not None:
                if acc_mask is None:
                    acc_mask = torch.zeros(b, 1, H, W)
                acc_mask[..., y0:y0 + th, x0:x0 + tw] += out.masks[-1].float().cpu() * weight
            norm[..., y0:y0 + th, x0:x0 + tw] += weight
            done += 1
            if progress:
                progress(done, total)
    return acc / norm, None if acc_mask is None else acc_mask / norm, total


@torch.inference_mode()
def deblur_tensor(model: torch.nn.Module, x: torch.Tensor, tile: int | None = None,
                  overlap: int | None = None, forward: Callable[[torch.Tensor], DeblurOutput] | None = None,
                  device: torch.device | str | None = None, progress: Callable[[int, int], None] | None = None
                  ) -> DeblurResult:
    """Deblur images of any size at full resolution.

    Args:
        model: any network of :mod:`lbag.models` (put in eval mode here).
        x: blurred images (B, 3, H, W) or (3, H, W), float in [0, 1].
        tile: tile side in pixels (see :func:`tiling`); None = automatic from the free memory; 0 = never
            tile (whole image in one pass, padded by the network itself as its official code does).
        overlap: overlap between neighbouring tiles in pixels, rounded up to the model's tile alignment
            (None: the model's default, :func:`model_tiling`; DEFAULT_OVERLAP for MIMO-UNet / LBAG).
        forward: the per-tile call ``forward(x) -> DeblurOutput`` (default: ``model`` itself; pass an
            :class:`lbag.accel.InferencePath` for a faster path).
        device: where the network runs (default: the model's device). Results come back on the CPU.
        progress: called as ``progress(done, total)`` after each tile.

    Returns:
        :class:`DeblurResult` with the full-scale image (clamped to [0, 1]) and mask.

    Shape:
        x: (B, 3, H, W) -> image (B, 3, H, W), mask (B, 1, H, W).
    """
    squeeze = x.dim() == 3
    if squeeze:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W) or (3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected a float tensor in [0, 1], got {x.dtype}")
    align, default_overlap, min_tile, whole_image = model_tiling(model)
    tile, overlap = tiling(tile, default_overlap if overlap is None else overlap, align)
    model.eval()
    forward = forward or model
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    h, w = x.shape[-2:]
    x = x.float().cpu()
    if tile is None:
        tile = auto_tile_size(model, dev, min_tile=min_tile, align=align,
                              max_tile=max(h, w) + align if whole_image else None)
    # Tiles share the network's pixel grid: the image is padded bottom/right to the tile alignment.
    ph, pw = (-h) % align, (-w) % align
    if tile <= 0 or (tile >= h + ph and tile >= w + pw):
        tile, total = 0, 1
        out = forward(x.to(dev))  # the network pads (and crops back) itself
        image = out.images[-1].float().cpu()
        mask = None if out.masks[-1] is None else out.masks[-1].float().cpu()
        if progress:
            progress(1, 1)
    else:
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        image, mask, total = _tiled(forward, x, tile, overlap, align, dev, progress)
    image = image[..., :h, :w].clamp(0, 1)
    mask = None if mask is None else mask[..., :h, :w]
    if squeeze:
        image, mask = image[0], None if mask is None else mask[0]
    return DeblurResult(image, mask, total, tile)


# --- files ----------------------------------------------------------------------------------------
BUNDLED_WEIGHTS = "lbag_small_synth.safetensors"
# The target the bundled model was trained for: the sharp frame's place in the exposure (lbag synth --sharp-at).
BUNDLED_SHARP_AT = "middle"


def bundled_weights_path() -> Path:
    """The bundled model, shipped as package data in ``lbag/weights/`` (works from an installed wheel)."""
    from importlib.resources import files

    return Path(str(files("lbag") / "weights" / BUNDLED_WEIGHTS))


def model_banner(weights: str | os.PathLike | None, model: torch.nn.Module) -> list[str]:
    """What ``lbag deblur`` / ``lbag demo`` print about the model that runs: its architecture, size and
    file, and, for the bundled demonstration model, what it is and how to run the published LBAG."""
    cfg = getattr(model, "config", None)
    arch = type(model).__name__
    if cfg is not None and hasattr(cfg, "num_res"):
        arch += f" ({'LBAG, gated' if cfg.gated else 'MIMO-UNet'}, {cfg.num_res} blocks/stage, width {cfg.width})"
    n = sum(p.numel() for p in model.parameters())
    source = f"bundled weights {BUNDLED_WEIGHTS}" if weights is None else str(weights)
    lines = [f"model: {arch} ({n:,} parameters) from {source}"]
    if weights is None:
        lines.append("note: this is a small DEMONSTRATION model trained on CPU on synthetic blur made from "
                     "photos (weights/MODEL_CARD.md), not the paper's LBAG; for the published results pass "
                     "--weights with the authors' LBAG checkpoint (it loads strictly).")
    return lines


def load_for_inference(weights: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
    """Load ``weights`` (default: the bundled model) in eval mode on ``device``."""
    from .models import load_model

    path = Path(weights) if weights is not None else bundled_weights_path()
    return load_model(path, map_location=device)


@dataclass(frozen=True)
class DeblurJob:
    """One image to deblur: where it comes from and the output stem (relative to the output folder)."""

    source: Path
    stem: str


def collect_inputs(inputs: list[str], split: str = "test") -> tuple[list[DeblurJob], list[str]]:
    """Expand files, folders, globs and dataset roots/splits into jobs.

    * a file: ``<stem>``;
    * a folder of images: every image below it, ``<stem>`` (sub-folders kept: ``sub/<stem>``);
    * a dataset split folder (``<scene>/<seq>/<idx>_blur.png``) or a dataset root (``ROOT/dataset/<split>``):
      the blurred images only, as ``<scene>/<seq>/<idx>`` — the layout ``lbag evaluate`` reads;
    * a glob pattern (``*``, ``?``, ``[``): every image it matches.

    Returns:
        (jobs, problems): ``problems`` names inputs that matched nothing. Duplicate output stems are
        an error (ValueError naming both sources).
    """
    import glob

    from .data.layout import DATASET_FOLDER, IMAGE_SUFFIXES, dataset_dir, is_split_dir, list_images, pair_images

    jobs: list[DeblurJob] = []
    problems: list[str] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            split_dir = None
            if (p / DATASET_FOLDER).is_dir():
                split_dir = dataset_dir(p, split)
                if not split_dir.is_dir():
                    problems.append(f"{raw}: dataset root without a {split!r} split ({split_dir} missing)")
                    continue
            elif is_split_dir(p, "blur"):
                split_dir = p
            if split_dir is not None:
                jobs.extend(DeblurJob(b, name) for name, b in pair_images(split_dir, "blur"))
                continue
            found = list_images(p)
            if not found:
                problems.append(f"{raw}: no images (PNG/JPEG/TIFF/BMP) in this folder")
            for f in found:
                rel = f.relative_to(p).with_suffix("")
                jobs.append(DeblurJob(f, rel.as_posix()))
        elif p.is_file():
            jobs.append(DeblurJob(p, p.stem))
        elif any(ch in raw for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(raw, recursive=True))
            matches = [m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES]
            if not matches:
                problems.append(f"{raw}: the pattern matches no image")
            jobs.extend(DeblurJob(m, m.stem) for m in matches)
        else:
            problems.append(f"{raw}: no such file or folder")
    seen: dict[str, Path] = {}
    for j in jobs:
        if j.stem in seen and seen[j.stem] != j.source:
            raise ValueError(f"two inputs would write the same output {j.stem}.png: {seen[j.stem]} and "
                             f"{j.source}; deblur them into different folders")
        seen[j.stem] = j.source
    unique = list({j.stem: j for j in jobs}.values())
    return unique, problems


# EXIF orientation -> numpy transform (cv2.IMREAD_UNCHANGED, used by lbag.data.read_image, ignores EXIF).
_EXIF_ORIENTATION = 0x0112


def read_input_image(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an image for deblurring: float32 RGB (H, W, 3) in [0, 1], upright, and its bit depth.

    Grayscale becomes three equal channels and alpha is dropped (lbag.data.decode_image); 16-bit (and
    float TIFF) inputs report 16 bits so the output keeps the precision; the EXIF orientation of JPEG
    and TIFF files is applied here because the shared decoder does not.
    """
    from .data.layout import decode_image
    from .pixels import to_float01

    native = decode_image(path)
    bits = 8 if native.dtype == np.uint8 else 16
    img = to_float01(native)
    if Path(path).suffix.lower() in (".jpg", ".jpeg", ".tif", ".tiff"):
        try:
            from PIL import Image
            with Image.open(path) as im:
                orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
        except Exception:  # no readable EXIF: keep the pixels as stored
            orientation = 1
        img = apply_exif_orientation(img, orientation)
    return np.ascontiguousarray(img), bits


def apply_exif_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip an (H, W, C) array as EXIF orientation 1-8 prescribes (as PIL's exif_transpose)."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    return ops[orientation](img) if orientation in ops else img


def output_paths(job: DeblurJob, out_dir: str | os.PathLike, save_mask: bool = False,
                 compare: bool = False) -> list[Path]:
    """Every file :func:`deblur_files` writes for ``job``: ``<stem>.png`` [, ``_mask.png``, ``_compare.png``]."""
    out_dir = Path(out_dir)
    names = [f"{job.stem}.png"] + ([f"{job.stem}_mask.png"] if save_mask else []) \
        + ([f"{job.stem}_compare.png"] if compare else [])
    return [out_dir / n for n in names]


def check_outputs(jobs: list[DeblurJob], out_dir: str | os.PathLike, save_mask: bool = False,
                  compare: bool = False) -> None:
    """Refuse, before any work, outputs that would overwrite an input (same path or same file through a
    link) or each other.

    Raises:
        ValueError: listing the offending files.
    """
    inputs = {j.source.resolve(): j.source for j in jobs}
    inodes = {}
    for j in jobs:
        try:
            st = j.source.stat()
            inodes[(st.st_dev, st.st_ino)] = j.source
        except OSError:
            pass  # unreadable: reported when it is read
    clashes, owner = [], {}
    for j in jobs:
        for target in output_paths(j, out_dir, save_mask, compare):
            key = target.resolve()
            src = inputs.get(key)
            if src is None and target.exists():
                st = target.stat()
                src = inodes.get((st.st_dev, st.st_ino))
            if src is not None:
                clashes.append(f"{target} (the input {src})")
            elif key in owner and owner[key] != j.source:
                clashes.append(f"{target} (written for both {owner[key]} and {j.source})")
            owner.setdefault(key, j.source)
    if clashes:
        more = f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
        raise ValueError(f"refusing to overwrite {len(clashes)} file(s): {'; '.join(clashes[:5])}{more}; "
                         "choose another output folder")


def deblur_files(jobs: list[DeblurJob], out_dir: str | os.PathLike, model: torch.nn.Module,
                 tile: int | None = None, overlap: int | None = None, save_mask: bool = False,
                 compare: bool = False, device: str | torch.device = "cpu",
                 forward: Callable[[torch.Tensor], DeblurOutput] | None = None,
                 progress: bool = True, report=print) -> tuple[list[Path], list[str]]:
    """Deblur image files into ``out_dir`` (``<stem>.png``, 16-bit when the input was 16-bit).

    ``save_mask`` adds ``<stem>_mask.png`` (the predicted gate, 8-bit); ``compare`` adds
    ``<stem>_compare.png`` (blurred | deblurred | mask). Every file is written atomically; temporary
    files a killed run left in the output folders are removed first. An image that cannot be read or
    deblurred is reported through ``report`` and skipped; a file that cannot be written (full disk,
    no permission) stops the batch, keeping what was written.

    Returns:
        (written deblurred paths, problems).

    Raises:
        ValueError: an output would overwrite an input (:func:`check_outputs`), before any work.
    """
    from tqdm import tqdm

    from .atomic import WriteError, remove_stale_temps

    out_dir = Path(out_dir)
    check_outputs(jobs, out_dir, save_mask, compare)
    for folder in sorted({t.parent for j in jobs for t in output_paths(j, out_dir)}):
        remove_stale_temps(folder)
    written, problems = [], []
    for job in tqdm(jobs, desc="deblur", unit="img", disable=not progress):
        try:
            img, bits = read_input_image(job.source)
        except OSError as exc:
            problems.append(str(exc))
            report(f"skipped: {exc}")
            continue
        x = torch.from_numpy(img).permute(2, 0, 1)
        try:
            res = deblur_tensor(model, x, tile=tile, overlap=overlap, device=device, forward=forward)
        except RuntimeError as exc:  # e.g. out of memory on an absurdly large image
            problems.append(f"{job.source}: inference failed ({str(exc).splitlines()[0]})")
            report(f"skipped: {problems[-1]}")
            continue
        try:
            written.append(_write_outputs(job, out_dir, img, res, bits, save_mask, compare))
        except WriteError as exc:
            problems.append(f"stopped: {exc}; the {len(written)} image(s) written before are kept")
            report(problems[-1])
            break
    return written, problems


def _write_outputs(job: DeblurJob, out_dir: Path, img: np.ndarray, res: DeblurResult, bits: int,
                   save_mask: bool, compare: bool) -> Path:
    from .data.layout import write_image
    from .panels import comparison_picture, mask_to_rgb

    out = res.image.permute(1, 2, 0).numpy()
    target = out_dir / f"{job.stem}.png"
    write_image(target, out, bits=bits)
    mask = res.mask[0].numpy() if res.mask is not None else None
    if save_mask and mask is not None:
        write_image(out_dir / f"{job.stem}_mask.png", mask, bits=8)
    if compare:
        panels = [("blurred", img), ("deblurred", out)]
        if mask is not None:
            panels.append(("predicted blur mask", mask_to_rgb(mask)))
        write_image(out_dir / f"{job.stem}_compare.png", comparison_picture(panels), bits=8)
    return target
