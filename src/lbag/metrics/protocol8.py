"""The published 8-bit protocol of *Real-World Deep Local Motion Deblurring* (Li et al., AAAI 2023):
PSNR, SSIM, PSNR_w and SSIM_w of images quantised to 8 bit, as the paper's evaluation code does.

Every function here works on the quantised images: :func:`psnr`, :func:`ssim`, :func:`psnr_weighted`,
:func:`ssim_weighted` and :func:`pixel_metrics` take images in [0, 1] (tensors (B, 3, H, W) or
(3, H, W), numpy (H, W, 3) images of any dtype :func:`lbag.metrics.pixel.to_tensor` accepts), quantise
them once to uint8 (H, W, 3) arrays (:func:`lbag.metrics.pixel.quantize_pair_u8`) and hand those to
:func:`pixel_metrics_u8`, which works on uint8 batches directly:

* PSNR / PSNR_w from the exact integer sum of squared differences (``cv2.norm``);
* SSIM / SSIM_w from OpenCV separable filters run over horizontal strips of the image in float64
  with reused buffers (the strips stay in cache, which is what makes it fast), and the formula of
  :func:`lbag.metrics.pixel.ssim_from_moments`.

The float metrics (no quantisation; the SSIM loss's map) are in :mod:`lbag.metrics.pixel`. Every
function returns one value per image, shape (B,); nothing is averaged across images.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from .pixel import (SSIM_C1, SSIM_C2, SSIM_CROP, SSIM_SIGMA, SSIM_WINDOW, gaussian_kernel1d, prepare_mask, psnr_db,
                    quantize_pair_u8, ssim_from_moments)

__all__ = ["psnr", "ssim", "psnr_weighted", "ssim_weighted", "pixel_metrics", "pixel_metrics_u8", "mask_u8"]

# Output rows of the SSIM map per strip: (64 + 10) x 2152 x 3 float64 buffers (~4 MB each) stay in
# the L3 cache, so the eight passes over a strip cost far less than eight passes over the image.
_SSIM_STRIP_ROWS = 64


def mask_u8(mask, b: int, h: int, w: int) -> np.ndarray:
    """Binary blur mask as a (B, H, W) uint8 array of 0/1, 1 where the mask is > 0.

    Args:
        mask: any mask :func:`lbag.metrics.pixel.prepare_mask` accepts ((B, 1, H, W), (B, H, W) or
            (H, W) tensors, numpy (H, W) / (H, W, 1) arrays), with the same checks.
        b, h, w: batch size and image size it must match (a single mask is repeated over the batch).
    """
    like = torch.empty((), dtype=torch.uint8).expand(b, 1, h, w)
    return np.ascontiguousarray(prepare_mask(mask, like).cpu().numpy()[:, 0])


def _sq_err_sum(p: np.ndarray, g: np.ndarray, m: np.ndarray | None = None) -> float:
    """Exact sum of squared 8-bit differences (OpenCV accumulates integers), optionally under a mask."""
    return cv2.norm(p, g, cv2.NORM_L2SQR) if m is None else cv2.norm(p, g, cv2.NORM_L2SQR, mask=m)


def _ssim_strip_sums(p: np.ndarray, g: np.ndarray, m: np.ndarray | None, rows: range) -> tuple[float, float]:
    """Sum of the SSIM map (and of the map under the cropped mask) over the map rows ``rows``.

    Works in 0..255 units with the constants scaled to match, in float64: the variances are
    differences of large, nearly equal moments, and float32 leaves errors above 1e-5 in flat
    (e.g. saturated) regions where every pixel repeats the same rounding.
    """
    r = SSIM_CROP
    k = gaussian_kernel1d(SSIM_WINDOW, SSIM_SIGMA).numpy()
    c1, c2 = SSIM_C1 * 255.0 ** 2, SSIM_C2 * 255.0 ** 2
    w, c = p.shape[1], p.shape[2]
    step = _SSIM_STRIP_ROWS
    n_in = min(step, len(rows)) + 2 * r
    bufs = np.empty((6, n_in, w, c), np.float64)
    prod = np.empty((n_in, w, c), np.uint16)
    total = masked = 0.0

    def blur(src: np.ndarray, dst: np.ndarray) -> None:
        cv2.sepFilter2D(src, cv2.CV_64F, k, k, dst=dst, borderType=cv2.BORDER_REFLECT)

    for y0 in range(rows.start, rows.stop, step):
        y1 = min(y0 + step, rows.stop)
        n = y1 - y0 + 2 * r
        # Map row j sits on image row j + r: the strip needs r more image rows on each side.
        ps, gs = p[y0:y1 + 2 * r], g[y0:y1 + 2 * r]
        mu_p, mu_g, e_pp, e_gg, e_pg, t = (b[:n] for b in bufs)
        pr = prod[:n]
        blur(ps, mu_p)
        blur(gs, mu_g)
        # 8-bit products fit uint16 exactly.
        blur(cv2.multiply(ps, ps, dst=pr, dtype=cv2.CV_16U), e_pp)
        blur(cv2.multiply(gs, gs, dst=pr, dtype=cv2.CV_16U), e_gg)
        blur(cv2.multiply(ps, gs, dst=pr, dtype=cv2.CV_16U), e_pg)
        # Rows outside [r, n - r) and the r-px side columns are border-filled: not part of the map.
        mu_p, mu_g, e_pp, e_gg, e_pg, t = (a[r:n - r, r:w - r] for a in (mu_p, mu_g, e_pp, e_gg, e_pg, t))
        ssim_from_moments(mu_p, mu_g, e_pp, e_gg, e_pg, c1, c2, out=t)  # this strip's map, (rows, W - 2r, C)
        total += float(t.sum())
        if m is not None:
            # In place with the mask broadcast over channels (a sum over the 3-long channel axis
            # first would be several times slower in numpy).
            t *= m[y0 + r:y1 + r, r:w - r, None]
            masked += float(t.sum())
    return total, masked


def _ssim_u8(p: np.ndarray, g: np.ndarray, m: np.ndarray | None = None) -> tuple[float, float]:
    """SSIM (and SSIM_w with the binary (H, W) mask ``m``) of one uint8 (H, W, C) pair."""
    h, w, c = p.shape
    if min(h, w) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {h}x{w}")
    hv = h - 2 * SSIM_CROP
    total, masked = _ssim_strip_sums(p, g, m, range(0, hv))
    n_map = hv * (w - 2 * SSIM_CROP) * c
    if m is None or not m.any():
        return total / n_map, math.nan
    n_mask = int(np.count_nonzero(m[SSIM_CROP:h - SSIM_CROP, SSIM_CROP:w - SSIM_CROP]))
    return total / n_map, masked / max(n_mask, 1) / c


def pixel_metrics_u8(pred: np.ndarray, gt: np.ndarray, has_nan: np.ndarray | None = None,
                     mask: np.ndarray | None = None, want_ssim: bool = True) -> dict[str, torch.Tensor]:
    """PSNR, SSIM, PSNR_w and SSIM_w of 8-bit image pairs, one value per image.

    Args:
        pred, gt: (B, H, W, 3) uint8 arrays (:func:`lbag.metrics.pixel.quantize_pair_u8`); H, W >= 11
            for SSIM.
        has_nan: (B,) bool, True for an image that contained NaN before quantisation: all its metrics
            are NaN (None: no such image).
        mask: (B, H, W) binary uint8 masks (:func:`mask_u8`), or None.
        want_ssim: compute SSIM and SSIM_w (the costly part); NaN when False.

    Returns:
        dict ``psnr``, ``ssim``, ``psnr_w``, ``ssim_w`` -> (B,) float64 CPU tensors; PSNR is inf for
        identical images, PSNR_w / SSIM_w are NaN without a mask or for an empty one.
    """
    b, h, w, c = pred.shape
    n = h * w * c
    out = {k: np.full(b, math.nan) for k in ("psnr", "ssim", "psnr_w", "ssim_w")}
    for i in range(b):
        if has_nan is not None and has_nan[i]:
            continue  # NaN in the input: every metric of this image stays NaN, as on the float path
        out["psnr"][i] = psnr_db(_sq_err_sum(pred[i], gt[i]) / (255.0 ** 2 * n))
        if mask is not None:
            area = int(np.count_nonzero(mask[i]))
            if area:
                out["psnr_w"][i] = psnr_db(_sq_err_sum(pred[i], gt[i], mask[i]) / (255.0 ** 2 * c * area))
        if want_ssim:
            out["ssim"][i], out["ssim_w"][i] = _ssim_u8(pred[i], gt[i], None if mask is None else mask[i])
    return {k: torch.from_numpy(v) for k, v in out.items()}


def _on_device_of(values: torch.Tensor, image) -> torch.Tensor:
    """Put a (B,) float64 CPU result where the input lived (float32 off the CPU, as before)."""
    if isinstance(image, torch.Tensor) and image.device.type != "cpu":
        return values.to(device=image.device, dtype=torch.float32)
    return values


def _quantised_metrics(pred, gt, mask=None, want_ssim: bool = True) -> dict[str, torch.Tensor]:
    """:func:`pixel_metrics_u8` of images quantised once, returned on the input's device."""
    p, g, nan = quantize_pair_u8(pred, gt)
    m = None if mask is None else mask_u8(mask, *p.shape[:3])
    return {k: _on_device_of(v, pred) for k, v in pixel_metrics_u8(p, g, nan, m, want_ssim).items()}


def psnr(pred, gt) -> torch.Tensor:
    """PSNR over all pixels and RGB channels of the 8-bit images, data range 1.

    Args:
        pred: prediction, (B, 3, H, W) in [0, 1] (or (3, H, W), or numpy (H, W, 3)).
        gt: ground truth, same shape.

    Returns:
        (B,) PSNR in dB (inf where the images are identical).
    """
    return _quantised_metrics(pred, gt, want_ssim=False)["psnr"]


def ssim(pred, gt) -> torch.Tensor:
    """SSIM of the 8-bit images: mean of the valid Gaussian SSIM map over pixels and RGB channels.

    Args:
        pred: prediction, (B, 3, H, W) in [0, 1] (or (3, H, W), or numpy (H, W, 3)); H, W >= 11.
        gt: ground truth, same shape.

    Returns:
        (B,) SSIM values.
    """
    return _quantised_metrics(pred, gt)["ssim"]


def psnr_weighted(pred, gt, mask) -> torch.Tensor:
    """PSNR_w of the 8-bit images: PSNR of the squared error averaged over the blurred pixels only.

    MSE_w = sum((p - g)^2 * m) / (3 * sum(m)) with m the binary mask (> 0) broadcast over RGB.

    Args:
        pred: prediction, (B, 3, H, W) in [0, 1].
        gt: ground truth, same shape.
        mask: blur mask (B, 1, H, W) (or (B, H, W), (H, W), numpy (H, W)); > 0 means blurred.

    Returns:
        (B,) PSNR_w in dB; NaN for an image whose mask is empty (the metric is undefined there).
    """
    return _quantised_metrics(pred, gt, mask, want_ssim=False)["psnr_w"]


def ssim_weighted(pred, gt, mask) -> torch.Tensor:
    """SSIM_w of the 8-bit images: the SSIM map averaged over the blurred pixels only.

    The mask is cropped by 5 px on every side to match the valid SSIM map; then
    SSIM_w = sum(map * m) / max(sum(m), 1) / 3 (the sum runs over the 3 channels of the map).

    Args:
        pred: prediction, (B, 3, H, W) in [0, 1]; H, W >= 11.
        gt: ground truth, same shape.
        mask: blur mask (B, 1, H, W) (or (B, H, W), (H, W), numpy (H, W)); > 0 means blurred.

    Returns:
        (B,) SSIM_w; NaN for an image whose (uncropped) mask is empty.
    """
    return _quantised_metrics(pred, gt, mask)["ssim_w"]


def pixel_metrics(pred, gt, mask=None) -> dict[str, torch.Tensor]:
    """PSNR, SSIM and (with a mask) PSNR_w, SSIM_w of the 8-bit images in one pass.

    Returns:
        dict name -> (B,) tensor with keys ``psnr``, ``ssim`` and, when ``mask`` is given,
        ``psnr_w``, ``ssim_w`` (NaN for empty masks).
    """
    out = _quantised_metrics(pred, gt, mask)
    return out if mask is not None else {"psnr": out["psnr"], "ssim": out["ssim"]}
