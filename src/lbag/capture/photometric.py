"""Photometric alignment on Bayer RAW (Eqs. 6-7 of *Real-World Deep Local Motion Deblurring*, Li et al.,
AAAI 2023).

The splitter's transmission and reflection differ slightly and the two sensors convert photons a little
differently, so a blurred frame and its sharp partner differ in brightness even though the ND filter
equalises the photon energy. Per channel c: ``beta_c = mean(sharp_c) / mean(blur_c)`` over the CFA sites
of that channel, and the blurred frame becomes ``beta * blurred`` (each site scaled by its channel's beta).
"""

from __future__ import annotations

import numpy as np

from .rawio import channel_index_map


def photometric_beta(sharp: np.ndarray, blur: np.ndarray, pattern: str, valid: np.ndarray | None = None
                     ) -> np.ndarray:
    """Brightness-correction coefficients beta = (beta_R, beta_G, beta_B) (Eq. 6).

    Args:
        sharp, blur: (H, W) Bayer frames of the pair, linear, black level removed, colour-corrected.
        pattern: their Bayer pattern.
        valid: optional (H, W) bool mask of sites to use (e.g. to leave saturated sites out). The paper
            uses every site (the default).

    Returns:
        float64 array (3,).

    Raises:
        ValueError: shapes differ, or a channel of the blurred frame has a non-positive mean.
    """
    sharp = np.asarray(sharp)
    blur = np.asarray(blur)
    if sharp.ndim != 2 or sharp.shape != blur.shape:
        raise ValueError(f"sharp and blurred Bayer frames must be 2-D and the same size, got {sharp.shape} "
                         f"and {blur.shape}")
    idx = channel_index_map(sharp.shape, pattern)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != sharp.shape:
            raise ValueError(f"valid mask shape {valid.shape} differs from the frames' {sharp.shape}")
    beta = np.empty(3)
    for c, name in enumerate("RGB"):
        sel = idx == c if valid is None else (idx == c) & valid
        if not sel.any():
            raise ValueError(f"no valid {name} sites to compute beta from")
        ms = float(np.mean(sharp[sel], dtype=np.float64))
        mb = float(np.mean(blur[sel], dtype=np.float64))
        if not mb > 0:
            raise ValueError(f"the blurred frame's {name} mean is {mb:g}: cannot align brightness "
                             f"(black frame or wrong black level?)")
        beta[c] = ms / mb
    return beta


def apply_photometric(blur: np.ndarray, beta, pattern: str) -> np.ndarray:
    """Scale each CFA site of the blurred frame by its channel's beta (Eq. 7); returns float32 (H, W)."""
    beta = np.asarray(beta, dtype=np.float32)
    if beta.shape != (3,):
        raise ValueError(f"beta must have 3 entries (R, G, B), got shape {beta.shape}")
    idx = channel_index_map(np.shape(blur), pattern)
    return (np.asarray(blur, dtype=np.float32) * beta[idx]).astype(np.float32)
