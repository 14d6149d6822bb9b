"""The sRGB transfer curve (IEC 61966-2-1), shared by the synthetic generator and the capture ISP.

Both functions clip to [0, 1] and keep a float input's precision (float32 stays float32, so the
generator's lookup tables are exact in float32; the ISP runs either precision).
"""

from __future__ import annotations

import numpy as np

__all__ = ["srgb_decode", "srgb_encode"]


def _as_float(x) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def srgb_encode(linear) -> np.ndarray:
    """Linear light in [0, 1] -> sRGB-encoded values in [0, 1]."""
    x = np.clip(_as_float(linear), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(x.dtype, copy=False)


def srgb_decode(encoded) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light in [0, 1] (inverse of :func:`srgb_encode`)."""
    x = np.clip(_as_float(encoded), 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4)).astype(x.dtype, copy=False)
