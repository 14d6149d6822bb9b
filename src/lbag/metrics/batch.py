"""All published metrics of a batch of images at once, and their summary over a set of images.

:func:`compute_metrics` (the 8-bit protocol) and :func:`compute_metrics_float` (no quantisation) give
one value of every metric per image; :func:`metric_rows` turns such a batch into per-image rows and
:func:`summarize` averages rows. Training validation uses them on tensor batches; the folder
evaluation (:mod:`lbag.metrics.evaluate`) on one image at a time, so both report the same means.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .aligned import float_pairs, psnr_aligned_pairs, psnr_aligned_u8
from .pixel import pixel_metrics_float, prepare_mask, prepare_pair, quantize_pair_u8
from .protocol8 import mask_u8, pixel_metrics_u8

__all__ = ["METRICS", "compute_metrics", "compute_metrics_float", "metric_rows", "summarize"]

METRICS = ("psnr", "ssim", "psnr_w", "ssim_w", "psnr_a")


@torch.no_grad()
def compute_metrics(pred, gt, mask=None, aligned: bool = True, exact: bool = False,
                    denominator: str = "all") -> dict[str, torch.Tensor]:
    """All published metrics of a batch, one value per image, on the 8-bit images (the protocol).

    Both images are quantised once to uint8 (H, W, 3) arrays; every metric, PSNR_a included, starts
    from these (:func:`lbag.metrics.protocol8.pixel_metrics_u8`, :func:`lbag.metrics.aligned.psnr_aligned_u8`).

    Args:
        pred: predictions, (B, 3, H, W) in [0, 1] (or (3, H, W), or numpy (H, W, 3)).
        gt: ground truth, same shape.
        mask: blur masks (B, 1, H, W) (> 0 means blurred) or None (then PSNR_w / SSIM_w are NaN).
        aligned: compute PSNR_a (the costly one); NaN when False.
        exact: reference full-resolution ECC for PSNR_a instead of coarse-to-fine.
        denominator: PSNR_a denominator, ``'all'`` (LBAG) or ``'valid'`` (RealBlur).

    Returns:
        dict with (B,) float64 tensors ``psnr``, ``ssim``, ``psnr_w``, ``ssim_w``, ``psnr_a`` and
        (B,) bool tensors ``mask_empty`` and ``ecc_failed``.
    """
    p8, g8, has_nan = quantize_pair_u8(pred, gt)
    m8 = None if mask is None else mask_u8(mask, *p8.shape[:3])
    out = pixel_metrics_u8(p8, g8, has_nan, m8)
    covered = None if m8 is None else m8.reshape(len(m8), -1).any(axis=1)
    aligned_out = psnr_aligned_u8(p8, g8, has_nan, denominator, exact) if aligned else None
    return _complete(out, p8.shape[0], covered, aligned_out)


@torch.no_grad()
def compute_metrics_float(pred, gt, mask=None, aligned: bool = True, exact: bool = False,
                          denominator: str = "all") -> dict[str, torch.Tensor]:
    """:func:`compute_metrics` of the images clamped to [0, 1], not quantised to 8 bit (not the protocol)."""
    p, g = prepare_pair(pred, gt)
    out = {k: v.double().cpu() for k, v in pixel_metrics_float(p, g, mask).items()}
    covered = None if mask is None else prepare_mask(mask, p).flatten(1).any(1).cpu().numpy()
    aligned_out = psnr_aligned_pairs(float_pairs(p, g), denominator, exact) if aligned else None
    return _complete(out, p.shape[0], covered, aligned_out)


def _complete(out: dict, b: int, covered: np.ndarray | None, aligned_out: tuple | None) -> dict:
    """Fill in what a batch without a mask or without PSNR_a lacks (NaN values, False flags).

    ``covered`` says from the mask itself which images have blurred pixels (a NaN image must not pass
    for an empty mask); ``aligned_out`` is ``(psnr_a, ecc_failed)`` or None.
    """
    nan = torch.full((b,), math.nan, dtype=torch.float64)
    if covered is None:
        out["psnr_w"], out["ssim_w"] = nan.clone(), nan.clone()
        out["mask_empty"] = torch.zeros(b, dtype=torch.bool)
    else:
        out["mask_empty"] = torch.from_numpy(~covered)
    if aligned_out is None:
        aligned_out = (nan.clone(), torch.zeros(b, dtype=torch.bool))
    out["psnr_a"], out["ecc_failed"] = aligned_out
    return out


def metric_rows(metrics: dict[str, torch.Tensor]) -> list[dict]:
    """One row dict per image (name -> Python float or bool) of a :func:`compute_metrics` result."""
    b = len(next(iter(metrics.values())))
    return [{k: v[i].item() for k, v in metrics.items()} for i in range(b)]


def summarize(rows: list[dict]) -> dict:
    """Means and counts over per-image result rows.

    Args:
        rows: one dict per image with the keys of :func:`compute_metrics` (Python or numpy scalars,
            or the strings of a per-image CSV; :func:`metric_rows` makes them from a batch); a row with
            a non-empty ``error`` is counted in ``n_failed`` and left out.

    Returns:
        dict with the means ``psnr``, ``ssim``, ``psnr_w``, ``ssim_w``, ``psnr_a`` (NaN entries --
        empty or missing masks, PSNR_a not computed -- are left out of each mean; None when no image
        has a value) and the counts ``n_images``, ``n_empty_mask``, ``n_ecc_failed``, ``n_failed``.
    """
    ok = [r for r in rows if not r.get("error")]
    cols = {k: np.asarray([_as_float(r.get(k)) for r in ok], dtype=np.float64)
            for k in (*METRICS, "mask_empty", "ecc_failed")}
    summary: dict = {}
    for k in METRICS:
        v = cols[k][~np.isnan(cols[k])]
        summary[k] = float(v.mean()) if v.size else None
    summary["n_images"] = len(ok)
    summary["n_empty_mask"] = int(np.sum(cols["mask_empty"].astype(bool)))
    summary["n_ecc_failed"] = int(np.sum(cols["ecc_failed"].astype(bool)))
    summary["n_failed"] = len(rows) - len(ok)
    return summary


def _as_float(v) -> float:
    if v is None or v == "":
        return math.nan
    if isinstance(v, str):
        return float(v.lower() in ("true", "1")) if v.lower() in ("true", "false") else float(v)
    return float(v)
