"""Aligned PSNR (PSNR_a) of the RealBlur protocol, as used by *Real-World Deep Local Motion Deblurring*
(Li et al., AAAI 2023) for the ReLoBlur test set.

The prediction is intensity-matched to the ground truth, registered to it with an ECC homography
(OpenCV ``findTransformECC``) and warped; the PSNR is taken over the warped prediction and the
ground truth, both multiplied by the valid region of the warp.

Two ways to get the homography:

* ``exact=True`` -- the reference procedure: ECC at full resolution, 100 iterations, eps 0,
  gaussFiltSize 5, identity start (~18 s for a 2152x1436 image on 2 cores).
* ``exact=False`` (default) -- coarse to fine: ECC with the same settings on a pyramid level 8x
  smaller, whose homography is carried up level by level (a few ECC iterations on each), then ECC at
  full resolution until it has converged (the image corners estimated within ``REFINE_TOL_PX`` of
  ECC's fixed point from the contraction of successive rounds). The reference procedure reaches that
  fixed point within its 100 iterations; the coarse levels give a start, not the answer (a locally
  blurred image has its optimum elsewhere at 1/8 scale: stopping after one full-resolution iteration
  left up to 0.1 dB, see ``benchmarks/bench_psnr_a.py``). Where convergence would take about as long as
  the reference, or if any stage fails, the image falls back to the reference procedure, so the result
  and the failure flag mean the same thing on both paths.

When ECC itself fails (``cv2.error``: it did not converge), the identity is used and the image is
flagged, as the published protocol asks.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .pixel import prepare_pair, psnr_db, quantize_pair_u8

# The reference ECC settings of the RealBlur / LBAG evaluation code.
ECC_ITERATIONS = 100
ECC_EPS = 0.0
ECC_GAUSS_FILT = 5
# Shortest side of the coarsest pyramid level of the fast path (2152x1436 -> 3 levels, 269x180).
COARSE_MIN_SIDE = 128
# Full-resolution convergence of the fast path (_refine_until_converged): rounds of REFINE_ROUND to
# REFINE_MAX_ROUND iterations until the image corners are estimated within REFINE_TOL_PX of ECC's fixed
# point. When the measured rate predicts more than half the reference's iterations still to go, or
# after REFINE_MAX_ITERATIONS in all, the reference procedure is run instead.
REFINE_TOL_PX = 0.01
REFINE_ROUND = 2
REFINE_MAX_ROUND = 10
REFINE_MAX_ITERATIONS = 80


def describe_fast_path() -> str:
    """One line naming the settings of the default (fast) PSNR_a alignment, for reports."""
    d = inspect.signature(estimate_homography).parameters
    return (f"coarse-to-fine ECC: {d['coarse_iterations'].default} iterations at 1/{2 ** d['levels'].default} "
            f"scale, {d['mid_iterations'].default} on each level between, then at full resolution until "
            f"converged (corners within {REFINE_TOL_PX} px of the fixed point; the reference ECC where that "
            "would take longer)")


@dataclass(frozen=True)
class AlignResult:
    """Outcome of one alignment.

    Attributes:
        warped: the intensity-scaled prediction warped onto the ground truth and multiplied by the
            valid region, float32 (H, W, 3).
        target: the ground truth multiplied by the valid region, float32 (H, W, 3).
        valid: the valid region, float32 (H, W, 3) of 0/1 (a read-only view of one plane).
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


def _corner_shift(a: np.ndarray, b: np.ndarray, h: int, w: int) -> float:
    """Largest distance, in pixels, between where homographies ``a`` and ``b`` put the image corners."""
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], dtype=np.float64).T
    pa, pb = a.astype(np.float64) @ corners, b.astype(np.float64) @ corners
    return float(np.max(np.hypot(*(pa[:2] / pa[2] - pb[:2] / pb[2]))))


def _contraction(a: int, moved_a: float, b: int, moved_b: float) -> float:
    """Per-iteration contraction ``r`` of ECC's steps (geometric near the fixed point) from two
    consecutive rounds of ``a`` and ``b`` iterations that moved the corners by ``moved_a``, ``moved_b``:
    ``moved_b / moved_a = r^a (1 - r^b) / (1 - r^a)``, solved by bisection; 0.999 when not contracting."""
    ratio = moved_b / moved_a
    if ratio >= b / a:
        return 0.999
    lo, hi = 0.0, 0.999
    for _ in range(40):
        mid = (lo + hi) / 2
        if mid ** a * (1 - mid ** b) / (1 - mid ** a) < ratio:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _refine_until_converged(template: np.ndarray, image: np.ndarray, warp: np.ndarray, first: int,
                            tol: float = REFINE_TOL_PX, max_iterations: int = REFINE_MAX_ITERATIONS
                            ) -> np.ndarray | None:
    """Full-resolution ECC from ``warp`` until it has converged; None when that takes more than
    ``max_iterations`` or, by the measured rate, more than half the reference's iterations still (the
    caller then runs the reference procedure).

    ``first`` iterations, then rounds. ECC's steps shrink geometrically near its fixed point (rate
    ``r`` per iteration, measured from the last two rounds), so after a round of ``k`` iterations that
    moved the corners by ``m`` the distance still to go is ``m r^k / (1 - r^k)``; the refinement stops
    when that is below ``tol`` px. Each round is as long as the rate says is still needed (between
    ``REFINE_ROUND`` and ``REFINE_MAX_ROUND``: every call of OpenCV's ECC first costs about one
    iteration of set-up).
    """
    h, w = template.shape[:2]
    warp, done = (_ecc(template, image, warp, first), first) if first > 0 else (warp, 0)
    k, prev = REFINE_ROUND, None  # prev: (iterations, corner move) of the previous round
    while done < max_iterations:
        k = min(k, max_iterations - done)
        new = _ecc(template, image, warp, k)
        done += k
        moved = _corner_shift(warp, new, h, w)
        warp = new
        # A guess for the first round: half the move still to come per REFINE_ROUND iterations.
        r = 0.5 ** (1 / REFINE_ROUND) if not prev or not prev[1] else _contraction(*prev, k, moved)
        left = moved * r ** k / (1 - r ** k)
        if left <= tol:
            return warp
        had_rate, prev = bool(prev), (k, moved)
        if had_rate:
            need = math.log(tol / left) / math.log(r)
            if need > ECC_ITERATIONS / 2:
                return None  # converging too slowly: the reference procedure is about as cheap
            k = int(min(max(math.ceil(need), REFINE_ROUND), REFINE_MAX_ROUND))
    return None


def _half_res_matrix() -> np.ndarray:
    """Pixel-centre coordinate map full -> half resolution: x_half = (x + 0.5) / 2 - 0.5."""
    return np.array([[0.5, 0.0, -0.25], [0.0, 0.5, -0.25], [0.0, 0.0, 1.0]], dtype=np.float64)


def estimate_homography(template: np.ndarray, image: np.ndarray, exact: bool = False, levels: int = 3,
                        coarse_iterations: int = ECC_ITERATIONS, refine_iterations: int = 3,
                        mid_iterations: int = 3, refine_tol: float | None = REFINE_TOL_PX
                        ) -> tuple[np.ndarray, bool]:
    """ECC homography that maps ``image`` onto ``template`` (both grayscale float32 (H, W)).

    The fast path runs ECC with the reference settings on the pyramid level ``levels`` (each level
    is a 2x INTER_AREA reduction), then ``mid_iterations`` on every level between it and full
    resolution, and at full resolution ``refine_iterations`` followed by rounds of ``REFINE_ROUND``
    until the corners are within ``refine_tol`` px of ECC's fixed point, the one the reference reaches
    (:func:`_refine_until_converged`; typically 5-9 iterations, ~0.3 s each at 2152x1436 on 2 cores).
    Where that would take longer than the reference itself, the reference procedure is run instead.

    Args:
        template: the ground truth in grayscale.
        image: the intensity-scaled prediction in grayscale.
        exact: run the reference full-resolution procedure instead of the coarse-to-fine one.
        levels: number of 2x downscalings for the coarse estimate (fast path only); fewer are used
            when the coarsest level would be smaller than ``COARSE_MIN_SIDE`` px, and images too
            small for 2 levels (short side < 4 * ``COARSE_MIN_SIDE``) use the reference procedure.
        coarse_iterations: ECC iterations at the coarse level (fast path only).
        refine_iterations: ECC iterations at full resolution before the convergence rounds (fast path
            only); 0 skips full resolution altogether (with ``refine_tol=None``).
        mid_iterations: ECC iterations on each level between the coarse one and full resolution
            (fast path only).
        refine_tol: convergence tolerance in pixels of the full-resolution rounds; None runs only the
            ``refine_iterations`` (the pre-issue-12 behaviour with 1: off by up to 0.09 dB).

    Returns:
        ``(homography, failed)``: the 3x3 float32 warp and whether ECC failed (identity returned).
    """
    identity = np.eye(3, dtype=np.float32)
    if not exact:
        # No level coarser than ~COARSE_MIN_SIDE px on the short side: below that the coarse estimate
        # is too rough for the short refinement; a small image gets fewer levels.
        levels = max(0, min(levels, int(math.log2(max(min(template.shape[:2]), 1) / COARSE_MIN_SIDE))))
        if levels < 2:
            # With a single coarse level there is no intermediate level to bring the estimate close
            # enough for one full-resolution iteration (measured: 7e-3 dB off at 288x384); such small
            # images are cheap for the reference procedure anyway.
            exact = True
    if not exact:
        try:
            pyramid = [(template, image)]
            for _ in range(levels):
                t, m = pyramid[-1]
                # INTER_AREA at exactly 1/2 is the 2x2 box average, whose pixel-centre geometry is the
                # map of _half_res_matrix.
                pyramid.append(tuple(cv2.resize(a, ((a.shape[1] + 1) // 2, (a.shape[0] + 1) // 2),
                                                interpolation=cv2.INTER_AREA) for a in (t, m)))
            half = _half_res_matrix()
            warp = identity
            for lv in range(levels, -1, -1):
                iterations = coarse_iterations if lv == levels else refine_iterations if lv == 0 else mid_iterations
                if lv < levels:
                    # Carry the homography one level up: H_fine = A^-1 H_coarse A with A = full -> half.
                    up = np.linalg.inv(half) @ warp.astype(np.float64) @ half
                    warp = (up / up[2, 2]).astype(np.float32)
                if lv == 0 and refine_tol is not None:
                    warp = _refine_until_converged(template, image, warp, iterations, refine_tol)
                elif iterations > 0:
                    warp = _ecc(*pyramid[lv], warp, iterations)
            if warp is not None:
                return warp.astype(np.float32), False
            # not converged at full resolution: the reference procedure below
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
    # The valid region is the same for the 3 channels: warp one plane, view it as three.
    cr = cv2.warpPerspective(np.ones((h, w), np.float32), warp, (w, h),
                             flags=cv2.INTER_NEAREST + cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0)
    cr = np.broadcast_to(cr[:, :, None], x.shape)
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
    return psnr_db(sq / n), r.failed


def psnr_aligned_pairs(pairs: Iterable[tuple[np.ndarray, np.ndarray] | None], denominator: str = "all",
                       exact: bool = False, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """PSNR_a and the ECC-failure flag of each pair (:func:`psnr_aligned_np` one after the other).

    Args:
        pairs: ``(pred, gt)`` float (H, W, 3) images, or None for an image that contained NaN (its
            PSNR_a is NaN, not failed).
        denominator, exact, **kwargs: as for :func:`psnr_aligned_np`.

    Returns:
        ``(psnr_a, failed)``: (B,) float64 and (B,) bool tensors.
    """
    values, failed = [], []
    for pair in pairs:
        v, f = (math.nan, False) if pair is None else psnr_aligned_np(*pair, denominator, exact, **kwargs)
        values.append(v)
        failed.append(f)
    return torch.tensor(values, dtype=torch.float64), torch.tensor(failed, dtype=torch.bool)


def float_pairs(pred, gt) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per-image (H, W, 3) numpy pairs of images clamped to [0, 1], not quantised (the float path).

    Args:
        pred, gt: images as :func:`lbag.metrics.pixel.prepare_pair` accepts them.
    """
    p, g = prepare_pair(pred, gt)
    for i in range(p.shape[0]):
        yield p[i].detach().permute(1, 2, 0).cpu().numpy(), g[i].detach().permute(1, 2, 0).cpu().numpy()


def psnr_aligned(pred, gt, denominator: str = "all", exact: bool = False, **kwargs) -> torch.Tensor:
    """PSNR_a per image of the 8-bit images: intensity matching + ECC homography alignment, then PSNR
    (the RealBlur protocol as the paper uses it).

    Args:
        pred: prediction, (B, 3, H, W) tensor in [0, 1] (or (3, H, W), or numpy (H, W, 3)).
        gt: ground truth, same shape.
        denominator: ``'all'`` (LBAG protocol, default) or ``'valid'`` (RealBlur protocol), see
            :func:`psnr_aligned_np`.
        exact: reference full-resolution ECC (~18 s per 2152x1436 image) instead of coarse-to-fine.
        **kwargs: passed to :func:`estimate_homography` (``levels``, ``refine_iterations``, ...).

    Returns:
        (B,) float64 tensor of PSNR_a in dB; :func:`psnr_aligned_u8` also gives the ECC failures.
    """
    return psnr_aligned_u8(*quantize_pair_u8(pred, gt), denominator, exact, **kwargs)[0]


def psnr_aligned_float(pred, gt, denominator: str = "all", exact: bool = False, **kwargs) -> torch.Tensor:
    """:func:`psnr_aligned` of the images clamped to [0, 1], not quantised to 8 bit.

    Returns:
        (B,) float64 tensor of PSNR_a in dB; ``psnr_aligned_pairs(float_pairs(pred, gt))`` also gives
        the ECC failures.
    """
    return psnr_aligned_pairs(float_pairs(pred, gt), denominator, exact, **kwargs)[0]


def psnr_aligned_u8(pred: np.ndarray, gt: np.ndarray, has_nan: np.ndarray, denominator: str = "all",
                    exact: bool = False, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """PSNR_a of 8-bit-quantised (B, H, W, 3) uint8 pairs (the protocol path of :func:`psnr_aligned`).

    Each image becomes float32 k / 255, the exact value the float path hands to :func:`align`.

    Returns:
        ``(psnr_a, failed)``: (B,) float64 and (B,) bool tensors; NaN (not failed) where ``has_nan``.
    """
    def as_float(a: np.ndarray) -> np.ndarray:
        return np.divide(a, np.float32(255), dtype=np.float32)

    pairs = (None if has_nan[i] else (as_float(pred[i]), as_float(gt[i])) for i in range(pred.shape[0]))
    return psnr_aligned_pairs(pairs, denominator, exact, **kwargs)
