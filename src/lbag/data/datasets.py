"""Training and validation datasets over the ReLoBlur layout (Li et al., "Real-World Deep Local
Motion Deblurring", AAAI 2023).

``TrainDataset`` yields blur-aware patches (BAPC, section 5 of our spec) from a decode-once,
memory-mapped cache; ``ValDataset`` yields full-resolution images with their masks and names.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..pixels import hwc_to_chw, to_float01
from .cache import ArrayCache, default_cache_dir
from .crops import bapc_origin, blur_row_counts, crop_and_flip, paired_flips
from .layout import ImageReadError, Pair, decode_image, decode_stored, find_pairs, read_image, read_mask


def _usable_pairs(root, split, masks_root, need_mask: bool) -> tuple[list[Pair], list[str]]:
    """Pairs whose files exist and are non-empty; the reasons for the others."""
    problems: list[str] = []
    usable: list[Pair] = []
    for pair in find_pairs(root, split, masks_root):
        files = [("sharp", pair.sharp), ("blurred", pair.blur)]
        if need_mask:
            files.append(("mask", pair.mask))
        bad = []
        for what, path in files:
            if path is None:
                bad.append(f"no mask folder for {pair.name}")
            elif not path.is_file():
                bad.append(f"{path}: missing {what} file")
            elif path.stat().st_size == 0:
                bad.append(f"{path}: empty {what} file (0 bytes)")
        if bad:
            problems.extend(bad)
        else:
            usable.append(pair)
    return usable, problems


def _to_chw(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8/uint16/float -> float32 (3, H, W) in [0, 1]."""
    return hwc_to_chw(to_float01(img))


class TrainDataset(Dataset):
    """Blur-aware training patches.

    Each item is ``{'blur': (3, P, P), 'sharp': (3, P, P), 'mask': (1, P, P)}``, float32; images in
    [0, 1], mask in {0, 1}. Item ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``, so it is
    the same whatever DataLoader worker draws it; call :meth:`set_epoch` at the start of each epoch.

    Args:
        root: dataset root (``ROOT/dataset/<split>/...``).
        split: folder under ``dataset/``.
        patch_size: patch side P.
        bapc: blur-aware cropping on/off (off = always uniform; the paper's ablation).
        bapc_prob: probability of a blur-centred patch when ``bapc`` is on (paper: 0.5).
        hflip, vflip: paired random flips, p = 0.5 each.
        seed: base seed.
        cache_dir: where decoded arrays go; ``None`` = ``~/.cache/lbag/decoded``; ``False`` = no
            cache (every patch decodes its PNGs; for benchmarks only).
        masks_root: mask folder with ``<split>/<scene>/<seq>/<idx>.png``; default ``ROOT/masks``.
        bapc_min_mask_mean: off (None) by default. When set, a pair's patches may be centred on blur
            only if the mean of its mask file's stored values (all channels, as stored: 0/1 or 0/255)
            is above this value; otherwise every patch of that pair is uniform. The authors' code
            applies ``blur_mask.sum() / blur_mask.size > 0.05`` to the raw mask, so 0.05 reproduces
            their sampling exactly (with 0/255 masks nearly every mask passes; with 0/1 masks only
            those covering more than 5 % of the frame).

    Pairs with a missing or 0-byte file are left out with a warning naming the files. A file that
    turns out undecodable when first read is reported once and the item is served from the next pair.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", patch_size: int = 256,
                 bapc: bool = True, bapc_prob: float = 0.5, hflip: bool = True, vflip: bool = False,
                 seed: int = 0, cache_dir: str | os.PathLike | None | bool = None,
                 masks_root: str | os.PathLike | None = None, bapc_min_mask_mean: float | None = None):
        if patch_size < 2:
            raise ValueError(f"patch_size must be >= 2, got {patch_size}")
        if not 0.0 <= bapc_prob <= 1.0:
            raise ValueError(f"bapc_prob must be in [0, 1], got {bapc_prob}")
        self.root = Path(root)
        self.split = split
        self.patch_size = int(patch_size)
        self.bapc = bool(bapc)
        self.bapc_prob = float(bapc_prob) if bapc else 0.0
        self.hflip, self.vflip = bool(hflip), bool(vflip)
        self.bapc_min_mask_mean = None if bapc_min_mask_mean is None else float(bapc_min_mask_mean)
        self._mask_means: dict[int, float] = {}
        self.seed = int(seed)
        self.epoch = 0
        self.pairs, problems = _usable_pairs(root, split, masks_root, need_mask=True)
        if problems:
            warnings.warn(f"TrainDataset({self.root}, {split!r}): left out {len(problems)} file problem(s):\n  "
                          + "\n  ".join(problems), stacklevel=2)
        if not self.pairs:
            raise FileNotFoundError(f"{self.root}: no usable {split} pairs with masks "
                                    f"(expected dataset/{split}/<scene>/<seq>/<idx>_{{sharp,blur}}.png "
                                    f"and masks/{split}/<scene>/<seq>/<idx>.png)")
        if cache_dir is False:
            self.cache = None
        else:
            self.cache = ArrayCache(default_cache_dir() if cache_dir in (None, True) else cache_dir)
        self._row_counts: dict[int, np.ndarray] = {}
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        """Select the random stream of an epoch (call it in the main process before iterating)."""
        self.epoch = int(epoch)

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pair = self.pairs[i]
        if self.cache is None:
            return decode_image(pair.blur), decode_image(pair.sharp), read_mask(pair.mask)
        return (self.cache.load(pair.blur, "image"), self.cache.load(pair.sharp, "image"),
                self.cache.load(pair.mask, "mask"))

    def _load_checked(self, i: int):
        blur, sharp, mask = self._load(i)
        pair = self.pairs[i]
        if blur.shape != sharp.shape or mask.shape != blur.shape[:2]:
            # Name the file that differs: the sharp image, or the mask when the two images agree.
            odd = pair.sharp if blur.shape != sharp.shape else pair.mask
            raise ImageReadError(f"{odd}: size mismatch within pair {pair.name}: blurred "
                                 f"{blur.shape[1]}x{blur.shape[0]}, sharp {sharp.shape[1]}x{sharp.shape[0]}, "
                                 f"mask {mask.shape[1]}x{mask.shape[0]}")
        p = self.patch_size
        if blur.shape[0] < p or blur.shape[1] < p:
            raise ImageReadError(f"{pair.blur}: {blur.shape[1]}x{blur.shape[0]} is smaller than the "
                                 f"{p}x{p} patch")
        return blur, sharp, mask

    def _may_centre(self, i: int) -> bool:
        """The authors' gate on blur-centred crops (``bapc_min_mask_mean``); True when it is off."""
        if self.bapc_min_mask_mean is None or self.bapc_prob == 0:
            return True
        if i not in self._mask_means:  # the cache keeps masks as bool: read the stored values once
            self._mask_means[i] = float(np.mean(decode_stored(self.pairs[i].mask, "mask"), dtype=np.float64))
        return self._mask_means[i] > self.bapc_min_mask_mean

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        n = len(self.pairs)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} pairs")
        index %= n
        rng = np.random.default_rng([self.seed, self.epoch, index])
        for attempt in range(n):
            i = (index + attempt) % n
            if i in self._bad:
                continue
            try:
                blur, sharp, mask = self._load_checked(i)
                break
            except ImageReadError as exc:
                self._bad.add(i)
                warnings.warn(f"TrainDataset: skipping pair {self.pairs[i].name}: {exc}", stacklevel=2)
        else:
            raise ImageReadError(f"{self.root}: no readable pair left in split {self.split!r}")
        p = self.patch_size
        rows = self._row_counts.get(i)
        if rows is None and self.bapc_prob > 0:
            rows = self._row_counts[i] = blur_row_counts(mask, p)
        top, left, _ = bapc_origin(mask, p, rng, self.bapc_prob, row_counts=rows,
                                   allow_centre=self._may_centre(i))
        fh, fv = paired_flips(rng, self.hflip, self.vflip)
        b, s, m = crop_and_flip([blur, sharp, mask], top, left, p, fh, fv)
        return {"blur": _to_chw(b), "sharp": _to_chw(s),
                "mask": torch.from_numpy(m).to(torch.float32).unsqueeze(0)}


class ValDataset(Dataset):
    """Full-resolution validation/test pairs.

    Each item is ``{'blur': (3, H, W), 'sharp': (3, H, W), 'mask': (1, H, W), 'name': str,
    'has_mask': bool}``; images float32 in [0, 1], mask float32 in {0, 1}. Pairs with a missing or
    0-byte image are left out with a warning; a pair whose mask is missing or unreadable is kept with
    an all-zero mask and ``has_mask=False`` (reported), so PSNR/SSIM still count it.

    Args:
        root: dataset root.
        split: folder under ``dataset/`` (default ``'test'``).
        masks_root: mask folder (default ``ROOT/masks``).
        max_images: keep only the first N pairs (sorted by name).
    """

    def __init__(self, root: str | os.PathLike, split: str = "test",
                 masks_root: str | os.PathLike | None = None, max_images: int | None = None):
        self.root = Path(root)
        self.split = split
        pairs, problems = _usable_pairs(root, split, masks_root, need_mask=False)
        if problems:
            warnings.warn(f"ValDataset({self.root}, {split!r}): left out {len(problems)} pair(s):\n  "
                          + "\n  ".join(problems), stacklevel=2)
        if max_images is not None:
            pairs = pairs[:max_images]
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        blur, sharp = read_image(pair.blur), read_image(pair.sharp)
        if blur.shape != sharp.shape:
            raise ImageReadError(f"{pair.blur}: size mismatch within pair {pair.name}: blurred "
                                 f"{blur.shape[1]}x{blur.shape[0]}, sharp {sharp.shape[1]}x{sharp.shape[0]}")
        has_mask = False
        mask = np.zeros(blur.shape[:2], bool)
        if pair.mask is None:
            pass
        else:
            try:
                m = read_mask(pair.mask)
                if m.shape != blur.shape[:2]:
                    raise ImageReadError(f"{pair.mask}: mask is {m.shape[1]}x{m.shape[0]}, image is "
                                         f"{blur.shape[1]}x{blur.shape[0]}")
                mask, has_mask = m, True
            except ImageReadError as exc:
                warnings.warn(f"ValDataset: {pair.name} has no usable mask ({exc}); using an empty mask",
                              stacklevel=2)
        return {"blur": _to_chw(blur), "sharp": _to_chw(sharp),
                "mask": torch.from_numpy(mask).to(torch.float32).unsqueeze(0),
                "name": pair.name, "has_mask": has_mask}
