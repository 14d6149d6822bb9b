"""Blur-aware patch cropping (BAPC) and paired flips, after Li et al., "Real-World Deep Local Motion
Deblurring" (AAAI 2023), section "Blur-Aware Patch Cropping".

With probability ``bapc_prob`` (0.5 in the paper) the patch is centred on a random blurred pixel that
lies at least ``patch // 2`` pixels from the border; otherwise (or when the image has no such pixel) it
is cropped uniformly at random. Both images and the mask get the same crop and the same flips.
"""

from __future__ import annotations

import numpy as np


def uniform_origin(height: int, width: int, patch: int, rng: np.random.Generator) -> tuple[int, int]:
    """Top-left corner of a uniformly random ``patch`` x ``patch`` crop."""
    if height < patch or width < patch:
        raise ValueError(f"image of {width}x{height} is smaller than the {patch}x{patch} patch")
    return int(rng.integers(0, height - patch + 1)), int(rng.integers(0, width - patch + 1))


def blur_row_counts(mask: np.ndarray, patch: int) -> np.ndarray:
    """Cumulative count, row by row, of the blurred pixels that may serve as a patch centre.

    Precomputing this small (H',) array per image lets :func:`bapc_origin` draw a blurred centre
    uniformly in O(H + W) instead of scanning the whole mask for every patch.
    """
    h, w = mask.shape[:2]
    half = patch // 2
    # Centre c with top = c - half >= 0 and top + patch <= h, i.e. c in [half, h - patch + half].
    inner = mask[half:h - patch + half + 1, half:w - patch + half + 1]
    return np.cumsum(np.count_nonzero(inner, axis=1), dtype=np.int64)


def bapc_origin(mask: np.ndarray, patch: int, rng: np.random.Generator, prob: float = 0.5,
                row_counts: np.ndarray | None = None, allow_centre: bool = True) -> tuple[int, int, bool]:
    """Choose a crop by blur-aware patch cropping.

    Args:
        mask: (H, W) blur mask; non-zero = blurred.
        patch: patch side in pixels.
        rng: random generator (the only source of randomness, for reproducibility).
        prob: probability of a blur-centred crop.
        row_counts: ``blur_row_counts(mask, patch)`` if already computed.
        allow_centre: False forces a uniform crop whatever the coin says (the coin is still drawn, so
            the random stream does not change); see ``TrainDataset(bapc_min_mask_mean=...)``.

    Returns:
        ``(top, left, centred)``; ``centred`` says whether the crop is centred on a blurred pixel
        (False for a uniform crop, including the fallback when no blurred pixel is far enough from
        the border).
    """
    h, w = mask.shape[:2]
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"bapc prob must be in [0, 1], got {prob}")
    # Draw the coin even when prob is 0 or 1 so the random stream does not depend on the mask.
    want_blur = rng.random() < prob
    if want_blur and allow_centre and h >= patch and w >= patch:
        if row_counts is None:
            row_counts = blur_row_counts(mask, patch)
        total = int(row_counts[-1]) if row_counts.size else 0
        if total:
            k = int(rng.integers(0, total))
            r = int(np.searchsorted(row_counts, k, side="right"))
            k -= int(row_counts[r - 1]) if r else 0
            half = patch // 2
            cols = np.flatnonzero(mask[r + half, half:w - patch + half + 1])
            # The patch top-left equals the centre's position in the inner window.
            return r, int(cols[k]), True
    top, left = uniform_origin(h, w, patch, rng)
    return top, left, False


def paired_flips(rng: np.random.Generator, hflip: bool = True, vflip: bool = False) -> tuple[bool, bool]:
    """Draw the horizontal and vertical flip decisions (p = 0.5 each when enabled).

    Both coins are always drawn so that switching one flip off does not change the other's stream.
    """
    h, v = rng.random() < 0.5, rng.random() < 0.5
    return bool(h and hflip), bool(v and vflip)


def crop_and_flip(arrays: list[np.ndarray], top: int, left: int, patch: int, flip_h: bool, flip_v: bool
                  ) -> list[np.ndarray]:
    """Apply the same crop and flips to every (H, W[, C]) array; returns contiguous copies."""
    out = []
    for a in arrays:
        p = a[top:top + patch, left:left + patch]
        if flip_h:
            p = p[:, ::-1]
        if flip_v:
            p = p[::-1]
        out.append(np.ascontiguousarray(p))
    return out
