"""Pixel conversions used all over lbag: integer <-> float scale and HWC <-> CHW layout, in one place.

Two conventions exist on purpose, and each keeps its own name so that no caller changes silently:

* **working values** (reading, training, inference, writing): :func:`to_float01` multiplies by the
  float32 reciprocal of the integer maximum (1/255, 1/65535); :func:`to_uint` goes back with
  ``rint(clip(x, 0, 1) * max)`` computed in the input's own float precision (float32 stays float32).
* **the metrics protocol** (:mod:`lbag.metrics.pixel`): :func:`to_float64` divides in float64 and
  :func:`to_uint8_exact` takes the product ``x * 255`` in float64, where it is exact for float32 input.
  The two roundings differ on a float32 value whose float32 product lands on a tie: float32(0.5 / 255)
  is 0 by :func:`to_uint` and 1 by :func:`to_uint8_exact`.

Both round half to even (``np.rint``), never ``floor(x + 0.5)``.
"""

from __future__ import annotations

import numpy as np

_INT_MAX = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


def to_float01(img: np.ndarray) -> np.ndarray:
    """uint8 / uint16 image -> float32 in [0, 1], scaled by the float32 reciprocal of its maximum
    (``k * float32(1/255)``); float (and bool) input is passed through as float32."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) * np.float32(1 / 255)
    if img.dtype == np.uint16:
        return img.astype(np.float32) * np.float32(1 / 65535)
    return img.astype(np.float32, copy=False)


def to_float64(img: np.ndarray, name: str = "image") -> np.ndarray:
    """uint8 / uint16 image -> float64 by exact division (``k / 255.0``, ``k / 65535.0``); float and
    bool input become float64 as they are. The metrics' scale.

    Raises:
        TypeError: another dtype (signed integers, ...), naming ``name``.
    """
    if img.dtype == np.uint8:
        return img.astype(np.float64) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float64) / 65535.0
    if np.issubdtype(img.dtype, np.floating) or img.dtype == bool:
        return img.astype(np.float64)
    raise TypeError(f"{name}: unsupported numpy dtype {img.dtype}")


def to_uint(img: np.ndarray, bits: int = 8) -> np.ndarray:
    """Image -> uint8 (``bits=8``) or uint16 (``bits=16``).

    Float input is taken as [0, 1]: ``rint(clip(x, 0, 1) * max)``, computed in the input's own float
    type. bool becomes 0 / max. An integer image of the wanted type is returned as it is; one of the
    other type is rescaled through :func:`to_float01`.
    """
    dtype = np.dtype({8: np.uint8, 16: np.uint16}[bits])
    if img.dtype == dtype:
        return img
    if img.dtype == bool:
        return img.astype(dtype) * _INT_MAX[dtype]
    if img.dtype in _INT_MAX:
        img = to_float01(img)
    return np.rint(np.clip(img, 0.0, 1.0) * _INT_MAX[dtype]).astype(dtype)


def to_uint8_exact(img: np.ndarray, out: np.ndarray | None = None, scratch: np.ndarray | None = None
                   ) -> tuple[np.ndarray, bool]:
    """Float image in [0, 1] -> uint8 as the metrics protocol quantises: ``rint(clip(x * 255, 0, 255))``
    with the product taken in float64 (exact for float32 input, so no float32 tie error). NaN becomes 0.

    Args:
        img: float (or bool) array.
        out: uint8 array of ``img``'s shape to fill (allocated when None).
        scratch: float64 work array of ``img``'s shape, reused across calls (allocated when None).

    Returns:
        ``(u8, has_nan)``: the uint8 array and whether ``img`` held a NaN.
    """
    buf = np.empty(img.shape, np.float64) if scratch is None else scratch
    np.multiply(img, 255.0, out=buf, dtype=np.float64, casting="unsafe")
    np.clip(buf, 0.0, 255.0, out=buf)
    np.rint(buf, out=buf)
    # A NaN anywhere makes the (allocation-free) sum NaN; only then look closer.
    has_nan = not np.isfinite(buf.sum()) and bool(np.isnan(buf).any())
    if has_nan:
        np.nan_to_num(buf, copy=False)
    if out is None:
        return buf.astype(np.uint8), has_nan
    out[...] = buf
    return out, has_nan


def hwc_to_chw(img: np.ndarray):
    """(H, W, C) or (H, W) numpy image -> contiguous torch tensor (C, H, W) of the same dtype (no scaling)."""
    import torch

    if img.ndim == 2:
        img = img[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
