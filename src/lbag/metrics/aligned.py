"""Aligned PSNR (PSNR_a) of the RealBlur protocol, as used by *Real-World Deep Local Motion Deblurring*
(Li et al., AAAI 2023) for the ReLoBlur test set.

The prediction is intensity-matched to the ground truth, registered to it with an ECC homography
(OpenCV ``findTransformECC``) and warped; the PSNR is taken over the warped prediction and the
ground truth, both multiplied by the valid region of the warp.

Two ways to get the homography:

* ``exact=True`` -- the reference procedure: ECC at full resolution, 100 iterations, eps 0,
  gaussFiltSize 5, identity start (~18 s for a 2152x1436 image on 2 cores).
* ``exact=False`` (default) -- coarse to fine: ECC with the same settings on a pyramid level a few
  times smaller, whose homography is carried up to full resolution and polished there by a few ECC
  iterations. Realistic deblurring outputs sit within a pixel or so of the ground truth, where ECC
  converges in a handful of Gauss-Newton steps; the full-resolution polish removes the small bias
  of the coarse level. If any stage fails the image falls back to the reference procedure, so the
  failure flag means the same thing on both paths.

When ECC itself fails (``cv2.error``: it did not converge), the identity is used and the image is
flagged, as the published protocol asks.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .pixel import prepare_pair

# The reference ECC settings of the RealBlur / LBAG evaluation code.
ECC_ITERATIONS = 100
ECC_EPS = 0.0
ECC_GAUSS_FILT = 5


@dataclass(frozen=True)
class AlignResult:
    """Outcome of one alignment.

    Attributes:
        warped: the intensity-scaled prediction warped onto the ground truth and multiplied by the
            valid region, float32 (H, W, 3).
        target: the ground truth multiplied by the valid region, float32 (H, W, 3).
        valid: the valid region, float32 (H, W, 3) of 0/1.
        homography: the 3x3 float32 ECC warp (input -> template convention of OpenCV).
        failed: True when ECC did not converge and the identity was used.
    """

    warped: np.ndarray
    target: np.ndarray
    valid: np.ndarray
    homography: np.ndarray
    failed: bool


def _ecc(template: np.ndarray, image: np.ndarray, warp: np.ndarray, iterations: int) -> np.ndarray:
    """One ``findTransformECC`` call with the reference settings; raises ``cv2.error`` on failure."""
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, ECC_EPS)
    _, warp = cv2.findTransformECC(template, image, warp.astype(np.float32), cv2.MOTION_HOMOGRAPHY, criteria,
                                   None, ECC_GAUSS_FILT)
    return warp


def _half_res_matrix() -> np.ndarray:
    """Pixel-centre coordinate map full -> half resolution: x_half = (x + 0.5) / 2 - 0.5."""
    return np.array([[0.5, 0.0, -0.25], [0.0, 0.5, -0.25], [0.0, 0.0, 1.0]], dtype=np.float64)


def estimate_homography(template: np.ndarray, image: np.ndarray, exact: bool = False, levels: int = 2,
                        coarse_iterations: int = ECC_ITERATIONS, refine_iterations: int = 3
                        ) -> tuple[np.ndarray, bool]:
    """ECC homography that maps ``image`` onto ``template`` (both grayscale float32 (H, W)).

    Args:
        template: the ground truth in grayscale.
        image: the intensity-scaled prediction in grayscale.
        exact: run the reference full-resolution procedure instead of the coarse-to-fine one.
        levels: number of 2x downscalings for the coarse estimate (fast path only).
        coarse_iterations: ECC iterations at the coarse level (fast path only).
        refine_iterations: ECC iterations at full resolution after the coarse level (fast path only);
            0 skips the polish.

    Returns:
        ``(homography, failed)``: the 3x3 float32 warp and whether ECC failed (identity returned).
    """
    identity = np.eye(3, dtype=np.float32)
    if not exact:
        try:
            t, m = template, image
            for _ in range(levels):
                # INTER_AREA at exactly 1/2 is the 2x2 box average, whose pixel-centre geometry is the
                # map of _half_res_matrix.
                t = cv2.resize(t, ((t.shape[1] + 1) // 2, (t.shape[0] + 1) // 2), interpolation=cv2.INTER_AREA)
                m = cv2.resize(m, ((m.shape[1] + 1) // 2, (m.shape[0] + 1) // 2), interpolation=cv2.INTER_AREA)
            warp = _ecc(t, m, identity, coarse_iterations).astype(np.float64)
            a = np.linalg.matrix_power(_half_res_matrix(), levels)
            warp = np.linalg.inv(a) @ warp @ a
            warp /= warp[2, 2]
            if refine_iterations > 0:
                warp = _ecc(template, image, warp.astype(np.float32), refine_iterations)
            return warp.astype(np.float32), False
        except cv2.error:
            pass  # fall through to the reference procedure, so that "failed" means the same on both paths
    try:
        return _ecc(template, image, identity, ECC_ITERATIONS).astype(np.float32), False
    except cv2.error:
        return identity, True


def align(pred: np.ndarray, gt: np.ndarray, exact: bool = False, **kwargs) -> AlignResult:
    """Register a prediction to its ground truth with the RealBlur procedure.

    Args:
        pred: prediction, float (H, W, 3) RGB in [0, 1].
        gt: ground truth, same shape.
        exact: use the reference full-resolution ECC (slow) instead of coarse-to-fine.
        **kwargs: passed to :func:`estimate_homography`.

    Returns:
        :class:`AlignResult`.
    """
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[2] != 3:
        raise ValueError(f"align expects two (H, W, 3) images of the same shape, got {pred.shape} and {gt.shape}")
    z = np.ascontiguousarray(pred, dtype=np.float32)
    x = np.ascontiguousarray(gt, dtype=np.float32)
    zz = float(np.sum(z.astype(np.float64) ** 2))
    # Simple intensity matching (least-squares gain); a black prediction keeps gain 1.
    gain = float(np.sum(x.astype(np.float64) * z)) / zz if zz > 0 else 1.0
    zs = (z * np.float32(gain)).astype(np.float32)
    warp, failed = estimate_homography(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.cvtColor(zs, cv2.COLOR_RGB2GRAY),
                                       exact=exact, **kwargs)
    h, w = x.shape[:2]
    zr = cv2.warpPerspective(zs, warp, (w, h), flags=cv2.INTER_CUBIC + cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REFLECT)
    cr = cv2.warpPerspective(np.ones_like(zs), warp, (w, h), flags=cv2.INTER_NEAREST + cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return AlignResult(warped=zr * cr, target=x * cr, valid=cr, homography=warp, failed=failed)


def psnr_aligned_np(pred: np.ndarray, gt: np.ndarray, denominator: str = "all", exact: bool = False,
                    **kwargs) -> tuple[float, bool]:
    """PSNR_a of one image pair (numpy, no quantisation: callers quantise first).

    Args:
        pred: prediction, float (H, W, 3) RGB in [0, 1].
        gt: ground truth, same shape.
        denominator: ``'all'`` divides the squared error by all H*W*3 values (LBAG protocol);
            ``'valid'`` by the valid values of the warp only (RealBlur protocol).
        exact: reference full-resolution ECC instead of coarse-to-fine.

    Returns:
        ``(psnr_a in dB, ecc_failed)``.
    """
    if denominator not in ("all", "valid"):
        raise ValueError(f"denominator must be 'all' or 'valid', got {denominator!r}")
    r = align(pred, gt, exact=exact, **kwargs)
    sq = float(np.sum((r.target.astype(np.float64) - r.warped) ** 2))
    n = float(r.valid.size) if denominator == "all" else float(np.sum(r.valid, dtype=np.float64))
    if n == 0:
        return float("nan"), r.failed
    mse = sq / n
    return (float("inf") if mse == 0 else 10.0 * float(np.log10(1.0 / mse))), r.failed


def psnr_aligned(pred, gt, denominator: str = "all", exact: bool = False, quantize: bool = True,
                 return_failed: bool = False, **kwargs):
    """PSNR_a per image: intensity matching + ECC homography alignment, then PSNR (RealBlur protocol).

    Args:
        pred: prediction, (B, 3, H, W) tensor in [0, 1] (or (3, H, W), or numpy (H, W, 3)).
        gt: ground truth, same shape.
        denominator: ``'all'`` (LBAG protocol, default) or ``'valid'`` (RealBlur protocol), see
            :func:`psnr_aligned_np`.
        exact: reference full-resolution ECC (~18 s per 2152x1436 image) instead of coarse-to-fine.
        quantize: quantise both images to 8 bit first (the protocol).
        return_failed: also return a (B,) bool tensor, True where ECC failed (identity used).
        **kwargs: passed to :func:`estimate_homography` (``levels``, ``refine_iterations``, ...).

    Returns:
        (B,) float64 tensor of PSNR_a in dB, or ``(psnr_a, failed)`` with ``return_failed``.
    """
    p, g = prepare_pair(pred, gt, quantize)
    values, failed = [], []
    for i in range(p.shape[0]):
        v, f = psnr_aligned_np(p[i].detach().permute(1, 2, 0).cpu().numpy(),
                               g[i].permute(1, 2, 0).cpu().numpy(), denominator, exact, **kwargs)
        values.append(v)
        failed.append(f)
    out = torch.tensor(values, dtype=torch.float64)
    return (out, torch.tensor(failed, dtype=torch.bool)) if return_failed else out
