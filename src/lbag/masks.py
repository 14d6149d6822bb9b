"""LBFMG: local blur foreground mask generation by background subtraction.

Li et al., "Real-World Deep Local Motion Deblurring" (AAAI 2023) obtain the ground-truth blur mask of
a blurred image B_T with a Gaussian-mixture background model (Zivkovic 2004, OpenCV MOG2): every OTHER
image of the same scene (sharp and blurred) trains the background, then B_T is classified; the
foreground is the blurred region. The authors never published their parameters or post-processing,
so :class:`LBFMGParams` exposes them all; the defaults are the best found by
``benchmarks/tune_lbfmg.py`` against the exact masks of ``lbag synth``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .atomic import check_output_dir, remove_stale_temps
from .data.layout import ImageReadError, Pair, find_pairs, present_splits, read_image, write_mask
from .pixels import to_uint


@dataclass(frozen=True)
class LBFMGParams:
    """Parameters of LBFMG mask generation.

    Attributes:
        history: MOG2 history length (frames that shape the model).
        var_threshold: MOG2 squared Mahalanobis distance above which a pixel is foreground.
        detect_shadows: let MOG2 label shadows (value 127) separately.
        keep_shadows: count shadow-labelled pixels as blurred (only with ``detect_shadows``).
        learning_rate: MOG2 learning rate while training on the other images (-1 = automatic 1/n).
        include_own_sharp: also train on the target's own sharp frame (it shows the moving object at
            the start of the exposure, which then tends to be learnt as background).
        presmooth: Gaussian sigma (px at full resolution) applied before subtraction; suppresses
            sensor noise. 0 = off.
        scale: process at this fraction of the resolution (speed); the mask is resized back.
        open_radius, close_radius: radii (px at full resolution) of the elliptical opening (removes
            speckle) and closing (fills gaps in smooth blur) applied to the raw foreground.
        dilate_radius: final dilation radius (px) to cover faint blur tails the model misses.
        fill_holes: fill enclosed holes of each component.
        min_area: drop components smaller than this fraction of the image.
    """

    history: int = 500
    var_threshold: float = 3.0
    detect_shadows: bool = False
    keep_shadows: bool = True
    learning_rate: float = -1.0
    include_own_sharp: bool = True
    presmooth: float = 2.0
    scale: float = 0.5
    open_radius: float = 0.0
    close_radius: float = 8.0
    dilate_radius: float = 0.0
    fill_holes: bool = True
    min_area: float = 0.002

    def __post_init__(self):
        if self.history < 1:
            raise ValueError(f"history must be >= 1, got {self.history}")
        if self.var_threshold <= 0:
            raise ValueError(f"var_threshold must be > 0, got {self.var_threshold}")
        if not 0 < self.scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {self.scale}")
        for name in ("presmooth", "open_radius", "close_radius", "dilate_radius", "min_area"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (self.learning_rate == -1 or 0 <= self.learning_rate <= 1):
            raise ValueError(f"learning_rate must be -1 (automatic) or in [0, 1], got {self.learning_rate}")


def _prepare(img: np.ndarray, params: LBFMGParams) -> np.ndarray:
    """Float [0, 1] or uint8 (H, W, 3) -> the 8-bit, resized, smoothed frame MOG2 sees."""
    img = to_uint(img, bits=8)
    if params.scale < 1:
        h, w = img.shape[:2]
        img = cv2.resize(img, (max(1, round(w * params.scale)), max(1, round(h * params.scale))),
                         interpolation=cv2.INTER_AREA)
    sigma = params.presmooth * params.scale
    if sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    return img


def raw_foreground(target_blur: np.ndarray, other_images: list[np.ndarray], params: LBFMGParams) -> np.ndarray:
    """MOG2 output for the target after training on the others: uint8 (h, w) at the working scale,
    0 background, 127 shadow, 255 foreground."""
    mog = cv2.createBackgroundSubtractorMOG2(history=params.history, varThreshold=params.var_threshold,
                                             detectShadows=params.detect_shadows)
    for img in other_images:
        mog.apply(_prepare(img, params), learningRate=params.learning_rate)
    # learningRate 0: classify the target without letting it update the background.
    return mog.apply(_prepare(target_blur, params), learningRate=0)


def _disk(radius_px: float) -> np.ndarray | None:
    r = int(round(radius_px))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)) if r > 0 else None


def postprocess(raw: np.ndarray, shape: tuple[int, int], params: LBFMGParams) -> np.ndarray:
    """Threshold (shadow handling), morphology, hole filling, small-component removal, resize to
    ``shape`` (H, W). Returns bool (H, W)."""
    fg = (raw >= (127 if params.keep_shadows else 200)).astype(np.uint8)
    s = params.scale
    if (k := _disk(params.open_radius * s)) is not None:
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, k)
    if (k := _disk(params.close_radius * s)) is not None:
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, k)
    if params.fill_holes and fg.any():
        # Holes = background regions not connected to the border.
        inv = (1 - fg).astype(np.uint8)
        n, lab = cv2.connectedComponents(inv, connectivity=4)
        border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        hole = ~np.isin(lab, border) & (inv > 0)
        fg[hole] = 1
    if params.min_area > 0 and fg.any():
        n, lab, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        small = stats[:, cv2.CC_STAT_AREA] < params.min_area * fg.size
        small[0] = False
        fg[small[lab]] = 0
    if (k := _disk(params.dilate_radius * s)) is not None:
        fg = cv2.dilate(fg, k)
    h, w = shape
    if fg.shape != (h, w):
        fg = cv2.resize(fg, (w, h), interpolation=cv2.INTER_NEAREST)
    return fg > 0


def lbfmg_mask(target_blur: np.ndarray, other_images: list[np.ndarray],
               params: LBFMGParams = LBFMGParams()) -> np.ndarray:
    """The LBFMG blur mask of one blurred image.

    Args:
        target_blur: the blurred image, (H, W, 3) float in [0, 1] or uint8.
        other_images: the other images of the same scene (sharp and blurred), same size, in order.
        params: subtraction and post-processing parameters.

    Returns:
        bool (H, W): True = blurred (moving foreground).
    """
    if target_blur.ndim != 3 or target_blur.shape[2] != 3:
        raise ValueError(f"target_blur must be (H, W, 3), got {target_blur.shape}")
    if not other_images:
        raise ValueError("LBFMG needs at least one other image of the scene to learn the background")
    for i, o in enumerate(other_images):
        if o.shape != target_blur.shape:
            raise ValueError(f"other image {i} has shape {o.shape}, target has {target_blur.shape}")
    raw = raw_foreground(target_blur, other_images, params)
    return postprocess(raw, target_blur.shape[:2], params)


def scene_training_images(pair: Pair, scene_pairs: list[Pair], images: dict[Path, np.ndarray],
                          params: LBFMGParams) -> list[np.ndarray]:
    """The frames that train the background for ``pair``: every other image of its scene, each
    pair's sharp then blurred frame, in name order; unreadable ones are absent from ``images``."""
    out = []
    for q in scene_pairs:
        for path in (q.sharp, q.blur):
            if path == pair.blur or (path == pair.sharp and not params.include_own_sharp):
                continue
            if path in images:
                out.append(images[path])
    return out


def generate_masks(dataset_root: str | os.PathLike, out_root: str | os.PathLike, split: str | None = None,
                   params: LBFMGParams = LBFMGParams(), overwrite: bool = False, progress: bool = True
                   ) -> dict[str, list[str]]:
    """Write LBFMG masks for a dataset in the published mask layout ``OUT/<split>/<scene>/<seq>/<idx>.png``.

    Scenes are processed one at a time (their images decoded once). Existing masks are kept unless
    ``overwrite`` (so an interrupted run resumes). Unreadable images are reported and skipped.

    Returns:
        ``{'written': [names], 'skipped': [names], 'problems': [messages]}``.
    """
    from tqdm import tqdm

    splits = [split] if split else present_splits(dataset_root)
    result: dict[str, list[str]] = {"written": [], "skipped": [], "problems": []}
    out_root = check_output_dir(out_root)  # before the work: a file, no permission, read-only
    remove_stale_temps(out_root, recursive=True)  # what a killed run left (its masks are kept)
    for sp in splits:
        pairs = find_pairs(dataset_root, sp, masks_root=out_root)
        scenes: dict[str, list[Pair]] = defaultdict(list)
        for p in pairs:
            scenes[p.scene].append(p)
        bar = tqdm(total=len(pairs), desc=f"lbag masks {sp}", unit="img", disable=not progress)
        for scene, members in sorted(scenes.items()):
            todo = [p for p in members if overwrite or not (p.mask.is_file() and p.mask.stat().st_size > 0)]
            result["skipped"].extend(p.name for p in members if p not in todo)
            bar.update(len(members) - len(todo))
            if not todo:
                continue
            images: dict[Path, np.ndarray] = {}
            for p in members:
                for path in (p.sharp, p.blur):
                    try:
                        images[path] = read_image(path)
                    except ImageReadError as exc:
                        result["problems"].append(str(exc))
            for p in todo:
                bar.update(1)
                if p.blur not in images:
                    result["problems"].append(f"{p.name}: no mask written (blurred image unreadable)")
                    continue
                target = images[p.blur]
                others = [o for o in scene_training_images(p, members, images, params) if o.shape == target.shape]
                if not others:
                    result["problems"].append(f"{p.name}: no mask written (no other readable image of "
                                              f"scene {scene} of the same size to learn the background)")
                    continue
                write_mask(p.mask, lbfmg_mask(target, others, params))
                result["written"].append(p.name)
        bar.close()
    return result
