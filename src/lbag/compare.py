"""Visual comparison in the style of Fig. 6 of Li et al., "Real-World Deep Local Motion Deblurring"
(AAAI 2023): the same crops of one test image from every method's output folder, with the blurred
input, the ground truth and the local blur mask beside them.

Each crop is one row of labelled panels (input | method 1 | ... | ground truth | mask), drawn with
:func:`lbag.panels.comparison_picture`. Crops are given explicitly or centred on the largest blurred
regions of the mask.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .data.layout import ImageReadError, published_root, read_image, read_mask, write_image
from .metrics.evaluate import EvalItem, find_items
from .panels import comparison_picture, mask_to_rgb

__all__ = ["Crop", "auto_crops", "comparison_rows", "draw_comparison"]


@dataclass(frozen=True)
class Crop:
    """A square crop: top-left corner (x, y) and side, in full-resolution pixels."""

    x: int
    y: int
    size: int

    @classmethod
    def parse(cls, text: str) -> Crop:
        """``X,Y,SIZE`` (e.g. ``812,400,192``)."""
        try:
            x, y, size = (int(v) for v in text.split(","))
        except ValueError:
            raise ValueError(f"crop {text!r}: expected X,Y,SIZE (three integers)") from None
        if x < 0 or y < 0 or size < 8:
            raise ValueError(f"crop {text!r}: X and Y must be >= 0 and SIZE >= 8")
        return cls(x, y, size)

    def clipped(self, height: int, width: int) -> Crop:
        """The same crop moved (and shrunk if needed) to lie inside a height x width image."""
        size = min(self.size, height, width)
        return Crop(min(max(self.x, 0), width - size), min(max(self.y, 0), height - size), size)

    def take(self, img: np.ndarray) -> np.ndarray:
        return img[self.y:self.y + self.size, self.x:self.x + self.size]


def auto_crops(mask: np.ndarray | None, height: int, width: int, count: int = 2, size: int = 192) -> list[Crop]:
    """Crops centred on the ``count`` largest blurred regions of ``mask`` (the image centre without one)."""
    if mask is None or not mask.any():
        return [Crop(width // 2 - size // 2, height // 2 - size // 2, size).clipped(height, width)]
    n, _labels, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    order = sorted(range(1, n), key=lambda i: -stats[i, cv2.CC_STAT_AREA])[:count]
    return [Crop(int(centroids[i][0]) - size // 2, int(centroids[i][1]) - size // 2, size).clipped(height, width)
            for i in order]


def _pick_item(items: list[EvalItem], name: str | None) -> EvalItem:
    if name is not None:
        for it in items:
            if it.name == name or it.name == Path(name).with_suffix("").as_posix():
                return it
        raise ValueError(f"image {name!r} is not in the ground truth (first names: {[i.name for i in items[:5]]})")
    for it in items:  # the first image whose mask marks blur
        if it.mask is not None and it.mask.is_file():
            try:
                if read_mask(it.mask).any():
                    return it
            except ImageReadError:
                continue
    return items[0]


def comparison_rows(item: EvalItem, methods: list[tuple[str, Path]], crops: list[Crop] | None,
                    inputs: Path | None = None, zoom: int = 2, crop_count: int = 2, crop_size: int = 192
                    ) -> list[np.ndarray]:
    """One labelled row per crop: input | each method | ground truth | mask (input and mask when found).

    Raises:
        ValueError: a missing or unreadable file, or a prediction whose size differs from the ground truth.
    """
    try:
        gt = read_image(item.gt)
        blurred = item.blurred if item.blurred is not None else (inputs / f"{item.name}.png" if inputs else None)
        blur = read_image(blurred) if blurred is not None else None
        mask = read_mask(item.mask) if item.mask is not None and item.mask.is_file() else None
        preds = [(label, read_image(folder / f"{item.name}.png")) for label, folder in methods]
    except ImageReadError as exc:
        raise ValueError(str(exc)) from None
    h, w = gt.shape[:2]
    for label, img in preds + ([("input", blur)] if blur is not None else []):
        if img.shape[:2] != (h, w):
            raise ValueError(f"{label}: {item.name} is {img.shape[1]}x{img.shape[0]}, ground truth is {w}x{h}")
    if mask is not None and mask.shape != (h, w):
        mask = None
    crops = [c.clipped(h, w) for c in crops] if crops else auto_crops(mask, h, w, crop_count, crop_size)
    rows = []
    for crop in crops:
        panels = [("input", crop.take(blur))] if blur is not None else []
        panels += [(lab, crop.take(img)) for lab, img in preds]
        panels.append(("ground truth", crop.take(gt)))
        if mask is not None:
            panels.append(("mask", mask_to_rgb(crop.take(mask).astype(np.float32))))
        if zoom > 1:
            panels = [(lab, cv2.resize(p, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST))
                      for lab, p in panels]
        rows.append(comparison_picture(panels, max_width=1 << 16))
    return rows


def draw_comparison(gt: str | os.PathLike, methods: list[tuple[str, str | os.PathLike]], out: str | os.PathLike,
                    image: str | None = None, crops: list[Crop] | None = None, masks: str | os.PathLike | None = None,
                    split: str = "test", inputs: str | os.PathLike | None = None, zoom: int = 2,
                    crop_count: int = 2, crop_size: int = 192, gap: int = 8) -> Path:
    """Draw the Fig. 6-style comparison of one test image as a PNG (written atomically).

    Args:
        gt: ground truth as for ``lbag evaluate`` (dataset root, split folder, or flat folder).
        methods: (label, output folder) per method; predictions are ``<folder>/<name>.png``.
        out: the PNG to write.
        image: the test image (``scene/seq/idx`` or a flat name); default: the first one with blur in its mask.
        crops: explicit crops; default: ``crop_count`` crops of ``crop_size`` px on the largest blurred regions.
        masks, split: as for ``lbag evaluate``; inputs: folder of blurred inputs for a flat layout.
        zoom: nearest-neighbour magnification of the crops.
    """
    if not methods:
        raise ValueError("no method folders given")
    flat = published_root(gt, split) is None
    items = find_items(None, gt, masks, split, blurred=not flat)  # flat layouts take --inputs
    item = _pick_item(items, image)
    folders = [(label, Path(folder)) for label, folder in methods]
    for label, folder in folders:
        if not folder.is_dir():
            raise ValueError(f"{label}: {folder} is not a folder")
    rows = comparison_rows(item, folders, crops, Path(inputs) if inputs else None, zoom, crop_count, crop_size)
    width = max(r.shape[1] for r in rows)
    canvas = np.ones((sum(r.shape[0] for r in rows) + gap * (len(rows) - 1), width, 3), np.float32)
    y = 0
    for r in rows:
        canvas[y:y + r.shape[0], :r.shape[1]] = r
        y += r.shape[0] + gap
    return write_image(out, canvas, bits=8)
