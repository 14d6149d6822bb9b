"""Geometric alignment of the two cameras (*Real-World Deep Local Motion Deblurring*, Li et al., AAAI 2023).

Per scene, the two cameras capture a static reference pair. Dense optical flow from the sharp camera's
reference to the blur camera's reference is estimated once and then applied to every blurred image of
the scene, warping it onto the sharp camera's pixel grid.

Substitutions (the paper's tools are not available):

- Flow: the paper used *pyflow* (Ce Liu's coarse-to-fine variational flow), which no longer installs.
  The backend here is pluggable: Farneback (what ``lbag capture run`` uses, ``CaptureOptions.flow_method``),
  OpenCV DIS (dense inverse search with variational refinement; :func:`estimate_flow`'s own default),
  DeepFlow and Dual TV-L1 (``cv2.optflow``). Because a beam splitter is coaxial, the two
  cameras see the scene from the same centre of projection, so their misalignment is a smooth mapping of
  the image plane (mechanical shift/rotation/scale plus lens differences) with no parallax. The optional
  ``model="poly"`` fits a low-order bivariate polynomial to the dense flow (robustly, ignoring
  textureless pixels and outliers); this removes the noise of dense flow on flat regions.
- Interpolation: the paper used the constant-MTF (CMTF) interpolator of Freedman & Fleming (2016) to keep
  edges sharp; here ``scipy.ndimage.map_coordinates`` with a prefiltered cubic (order 3, default) or
  quintic (order 5) B-spline, which is also interpolating with a flat passband close to Nyquist. Borders:
  samples that fall outside the frame are taken from the mirror-reflected image (``mode="reflect"``) and
  reported through a validity mask.

Flow convention: ``flow[y, x] = (dx, dy)`` such that ``reference(y, x) ~ moving(y + dy, x + dx)``
(OpenCV's ``calc(prev=reference, next=moving)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..pixels import to_uint

FLOW_METHODS = ("dis", "farneback", "deepflow", "tvl1")
FLOW_MODELS = ("dense", "poly")


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) sRGB or (H, W) image in [0, 1] -> (H, W) float32 luma (Rec. 601 weights)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")


def _cv_flow(reference: np.ndarray, moving: np.ndarray, method: str) -> np.ndarray:
    import cv2

    ref8, mov8 = to_uint(reference, bits=8), to_uint(moving, bits=8)
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        # Denser patches and more refinement than the preset: the reference pair is static and
        # the calibration is done once per scene, so accuracy matters more than speed here.
        dis.setPatchSize(8)
        dis.setPatchStride(2)
        dis.setFinestScale(0)
        dis.setGradientDescentIterations(25)
        dis.setVariationalRefinementIterations(10)
        return dis.calc(ref8, mov8, None)
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(ref8, mov8, None, pyr_scale=0.5, levels=4, winsize=21,
                                            iterations=5, poly_n=7, poly_sigma=1.5, flags=0)
    if method == "deepflow":
        return cv2.optflow.createOptFlow_DeepFlow().calc(ref8, mov8, None)
    if method == "tvl1":
        return cv2.optflow.DualTVL1OpticalFlow_create().calc(reference.astype(np.float32),
                                                            moving.astype(np.float32), None)
    raise ValueError(f"unknown flow method {method!r}: expected one of {', '.join(FLOW_METHODS)}")


def _poly_design(x: np.ndarray, y: np.ndarray, degree: int) -> np.ndarray:
    cols = [x**i * y**j for i in range(degree + 1) for j in range(degree + 1 - i)]
    return np.stack(cols, axis=-1)


def fit_poly_flow(flow: np.ndarray, weights: np.ndarray | None = None, degree: int = 3,
                  iterations: int = 3) -> np.ndarray:
    """Fit a smooth bivariate polynomial (each component) to a dense flow field, robustly.

    Args:
        flow: (H, W, 2) dense flow.
        weights: (H, W) non-negative confidence (e.g. local gradient energy); None = uniform.
        degree: total polynomial degree.
        iterations: reweighting rounds; each drops points whose residual exceeds 3x the robust
            (median absolute) residual scale.

    Returns:
        (H, W, 2) float32 polynomial flow.
    """
    h, w = flow.shape[:2]
    # Sub-sample on a grid: 1e4-1e5 points determine a degree-3 fit; the full frame would waste time.
    step = max(1, int(np.sqrt(h * w / 40000)))
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    xn = 2.0 * xs / max(w - 1, 1) - 1.0
    yn = 2.0 * ys / max(h - 1, 1) - 1.0
    a = _poly_design(xn.ravel(), yn.ravel(), degree)
    f = flow[ys, xs].reshape(-1, 2).astype(np.float64)
    wt = np.ones(len(f)) if weights is None else np.asarray(weights, dtype=np.float64)[ys, xs].ravel()
    keep = wt > 0
    if keep.sum() < a.shape[1] * 4:
        keep = np.ones(len(f), dtype=bool)
        wt = np.ones(len(f))
    coef = None
    for _ in range(max(1, iterations)):
        sw = np.sqrt(wt[keep])[:, None]
        coef, *_ = np.linalg.lstsq(a[keep] * sw, f[keep] * sw, rcond=None)
        res = np.linalg.norm(a @ coef - f, axis=1)
        scale = 1.4826 * np.median(res[keep]) + 1e-6
        new_keep = (res < 3.0 * scale) & (wt > 0)
        if new_keep.sum() < a.shape[1] * 4 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    xf, yf = np.meshgrid(np.linspace(-1, 1, w) if w > 1 else np.zeros(1),
                         np.linspace(-1, 1, h) if h > 1 else np.zeros(1))
    out = np.empty((h, w, 2), dtype=np.float32)
    # Row by row keeps the (H*W, n_terms) design matrix out of memory at full resolution.
    for r in range(h):
        out[r] = _poly_design(xf[r], yf[r], degree) @ coef
    return out


def _texture_weight(gray: np.ndarray) -> np.ndarray:
    # Flow is only determined where the image has gradients; weight by smoothed gradient energy.
    gx = ndimage.sobel(gray, axis=1)
    gy = ndimage.sobel(gray, axis=0)
    e = ndimage.gaussian_filter(gx * gx + gy * gy, 2.0)
    return e / (e.max() + 1e-12)


def compose_flow(first: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """Flow of ``moving`` sampled through ``first`` and then ``residual``: f(x) = r(x) + first(x + r(x))."""
    h, w = first.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    coords = np.stack([yy + residual[..., 1], xx + residual[..., 0]])
    out = np.empty_like(first, dtype=np.float32)
    for c in range(2):
        out[..., c] = residual[..., c] + ndimage.map_coordinates(first[..., c], coords, order=1, mode="nearest")
    return out


def estimate_flow(reference: np.ndarray, moving: np.ndarray, method: str = "dis", model: str = "dense",
                  refinements: int = 1, poly_degree: int = 3) -> np.ndarray:
    """Dense optical flow from ``reference`` to ``moving`` (the scene's static reference pair).

    Args:
        reference: (H, W, 3) or (H, W) image in [0, 1] of the sharp camera.
        moving: same shape, the blur camera's reference image.
        method: ``"dis"``, ``"farneback"``, ``"deepflow"`` or ``"tvl1"``.
        model: ``"dense"`` keeps the per-pixel flow; ``"poly"`` replaces it by a robust smooth
            polynomial fit (valid for a coaxial beam-splitter rig, see the module docstring).
        refinements: extra rounds of (warp ``moving`` with the current flow, estimate the residual
            flow, compose); each round shrinks the error left by the backend's coarse-to-fine scheme.
        poly_degree: degree of the polynomial for ``model="poly"``.

    Returns:
        (H, W, 2) float32 flow (dx, dy); ``reference(y, x) ~ moving(y + dy, x + dx)``.
    """
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {method!r}: expected one of {', '.join(FLOW_METHODS)}")
    if model not in FLOW_MODELS:
        raise ValueError(f"unknown flow model {model!r}: expected one of {', '.join(FLOW_MODELS)}")
    ref = to_gray(reference)
    mov = to_gray(moving)
    if ref.shape != mov.shape:
        raise ValueError(f"reference images differ in size: {ref.shape} vs {mov.shape}")
    if min(ref.shape) < 16:
        raise ValueError(f"reference images too small for optical flow: {ref.shape}")
    weight = _texture_weight(ref) if model == "poly" else None
    flow = None
    for _ in range(1 + max(0, int(refinements))):
        warped = mov if flow is None else warp_image(mov, flow, order=3)[0]
        step = _cv_flow(ref, warped, method).astype(np.float32)
        if model == "poly":
            step = fit_poly_flow(step, weight, degree=poly_degree)
        flow = step if flow is None else compose_flow(flow, step)
    return flow


def warp_image(image: np.ndarray, flow: np.ndarray, order: int = 3, mode: str = "reflect"
               ) -> tuple[np.ndarray, np.ndarray]:
    """Resample ``image`` at ``x + flow(x)`` with a prefiltered B-spline (the CMTF substitute).

    Args:
        image: (H, W) or (H, W, C) float image.
        flow: (H, W, 2) flow (dx, dy) as returned by :func:`estimate_flow`.
        order: spline order, 3 (cubic) or 5 (quintic); 1 = bilinear for comparisons.
        mode: how samples outside the frame are filled (``scipy.ndimage`` mode; default mirror).

    Returns:
        ``(warped, valid)``: the warped image (same shape and dtype as ``image``; values of [0, 1]
        images clipped to [0, 1] because spline overshoot at edges is not image content) and an (H, W)
        bool mask of pixels whose source point lies inside the frame.
    """
    image = np.asarray(image)
    if order not in (1, 3, 5):
        raise ValueError(f"spline order must be 1, 3 or 5, got {order}")
    if image.ndim not in (2, 3) or flow.shape != image.shape[:2] + (2,):
        raise ValueError(f"flow must be (H, W, 2) matching the image's (H, W); got image {image.shape}, "
                         f"flow {flow.shape}")
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sy = yy + flow[..., 1]
    sx = xx + flow[..., 0]
    valid = (sy >= 0) & (sy <= h - 1) & (sx >= 0) & (sx <= w - 1)
    coords = np.stack([sy, sx])
    chans = image[..., None] if image.ndim == 2 else image
    out = np.empty(chans.shape, dtype=np.float32)
    for c in range(chans.shape[2]):
        out[..., c] = ndimage.map_coordinates(chans[..., c].astype(np.float32), coords, order=order, mode=mode,
                                              prefilter=order > 1)
    if image.dtype.kind == "f" and float(image.min(initial=0.0)) >= 0.0 and float(image.max(initial=0.0)) <= 1.0:
        np.clip(out, 0.0, 1.0, out=out)
    out = out[..., 0] if image.ndim == 2 else out
    return out.astype(image.dtype if image.dtype.kind == "f" else np.float32), valid


@dataclass(frozen=True)
class FlowStats:
    """Summary of a flow field for the per-scene report (pixels)."""

    mean_dx: float
    mean_dy: float
    mean_magnitude: float
    max_magnitude: float
    outside_fraction: float

    @classmethod
    def of(cls, flow: np.ndarray) -> "FlowStats":
        h, w = flow.shape[:2]
        mag = np.hypot(flow[..., 0], flow[..., 1])
        yy, xx = np.mgrid[0:h, 0:w]
        sy = yy + flow[..., 1]
        sx = xx + flow[..., 0]
        outside = ~((sy >= 0) & (sy <= h - 1) & (sx >= 0) & (sx <= w - 1))
        return cls(float(flow[..., 0].mean()), float(flow[..., 1].mean()), float(mag.mean()), float(mag.max()),
                   float(outside.mean()))
