"""A beam-splitter capture simulator for the capture-pipeline tests.

It inverts a known ISP to turn sharp sRGB scenes into Bayer RAW, then imposes what a real two-camera rig
does: a location-dependent colour cast per camera, a per-channel brightness ratio of camera B, and a
smooth sub-pixel misalignment of camera B; finally 12-bit quantisation with a black level and a little
sensor noise. Every imposed quantity is returned so the tests can compare the pipeline's estimates with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lbag.capture.isp import IspConfig, inverse_isp, srgb_decode, srgb_encode
from lbag.capture.rawio import mosaic

BLACK, WHITE = 64, 4095
TRUE_ISP = IspConfig(pattern="RGGB", white_balance=(1.9, 1.0, 1.55),
                     ccm=((1.55, -0.40, -0.15), (-0.20, 1.45, -0.25), (0.02, -0.45, 1.43)))
BRIGHTNESS = np.array([0.93, 0.96, 0.91])  # camera B / camera S per channel: beta_true = 1 / BRIGHTNESS


def coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    return x, y


# Per camera and channel R, G, B: the 10 constants of the paper's cubic model over
# [x^3, x^2 y, x y^2, y^3, x^2, x y, y^2, x, y, 1] (alpha = 1 at the centre). Magnitudes make a strong,
# realistic cast: corners up to ~25-30% darker in one channel than in another.
ALPHA_COEF = {
    "sharp": np.array([[0.03, -0.02, 0.01, 0.02, 0.10, 0.02, 0.08, -0.08, 0.05, 1.0],
                       [0.01, 0.02, -0.01, 0.00, 0.06, -0.01, 0.05, -0.03, -0.04, 1.0],
                       [-0.02, 0.01, 0.02, -0.03, 0.09, 0.03, 0.07, 0.10, -0.06, 1.0]]),
    "blur": np.array([[-0.02, 0.01, 0.02, -0.01, 0.08, -0.02, 0.09, 0.06, -0.08, 1.0],
                      [0.02, -0.01, 0.00, 0.01, 0.05, 0.01, 0.05, -0.05, 0.03, 1.0],
                      [0.01, 0.03, -0.02, 0.02, 0.07, -0.03, 0.06, -0.09, 0.05, 1.0]]),
}


def true_alpha(h: int, w: int, camera: str) -> np.ndarray:
    """(3, H, W) true colour-correction field of a camera (the cubic model of Eq. 5)."""
    x, y = coords(h, w)
    z = np.stack([x**3, x * x * y, x * y * y, y**3, x * x, x * y, y * y, x, y, np.ones_like(x)], axis=-1)
    return np.moveaxis(z @ ALPHA_COEF[camera].T, -1, 0)


def cast_field(h: int, w: int, camera: str) -> np.ndarray:
    """(3, H, W) multiplicative colour cast the camera imposes (1 / alpha)."""
    return 1.0 / true_alpha(h, w, camera)


def true_flow(h: int, w: int) -> np.ndarray:
    """(H, W, 2) smooth sub-pixel misalignment: sharp(x) = blur(x + flow(x))."""
    x, y = coords(h, w)
    dx = 0.45 + 0.30 * x - 0.15 * y + 0.10 * x * y
    dy = -0.35 + 0.20 * y + 0.12 * x - 0.08 * x * x
    return np.stack([dx, dy], axis=-1)


def scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A textured sRGB scene in [0.03, 0.95]: band-limited noise at several scales plus soft shapes."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3))
    # Fine detail mostly in luminance, colour at coarse scales: the statistics of natural images that
    # every demosaicer (Menon's included) relies on.
    for sigma, amp, chroma in ((1.5, 0.25, 0.1), (2.5, 0.35, 0.2), (6.0, 0.4, 0.6), (14.0, 0.5, 1.0)):
        luma = rng.standard_normal((h, w, 1))
        n = ndimage.gaussian_filter(luma + chroma * rng.standard_normal((h, w, 3)), (sigma, sigma, 0))
        img += amp * n / (n.std() + 1e-12)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(5):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(6, 20)
        disk = ndimage.gaussian_filter(((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(float), 1.2)
        img += disk[..., None] * rng.uniform(-1.0, 1.0, 3)
    img = (img - img.min()) / (img.max() - img.min())
    return 0.03 + 0.92 * img


def local_blur(srgb: np.ndarray, length: int = 9) -> np.ndarray:
    """Horizontal motion blur of a rectangle, integrated in linear light (a moving object)."""
    lin = srgb_decode(srgb)
    h, w = lin.shape[:2]
    y0, y1, x0, x1 = h // 4, h // 2, w // 3, 2 * w // 3
    blurred = ndimage.uniform_filter1d(lin, length, axis=1, mode="reflect")
    out = lin.copy()
    out[y0:y1, x0:x1] = blurred[y0:y1, x0:x1]
    return srgb_encode(out)


def _misalign(srgb: np.ndarray, flow: np.ndarray) -> np.ndarray:
    # blur(p) = sharp(g(p)) with g the inverse of x -> x + flow(x); fixed-point inversion.
    h, w = srgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    gx, gy = xx.copy(), yy.copy()
    for _ in range(30):
        fx = ndimage.map_coordinates(flow[..., 0], [gy, gx], order=1, mode="nearest")
        fy = ndimage.map_coordinates(flow[..., 1], [gy, gx], order=1, mode="nearest")
        gx, gy = xx - fx, yy - fy
    lin = srgb_decode(srgb)
    out = np.stack([ndimage.map_coordinates(lin[..., c], [gy, gx], order=5, mode="reflect") for c in range(3)],
                   axis=-1)
    return srgb_encode(np.clip(out, 0, 1))


def to_raw(srgb: np.ndarray, camera: str, exposure: float = 1.0, noise: float = 2e-4, seed: int = 0,
           pattern: str = "RGGB") -> np.ndarray:
    """Sharp sRGB -> uint16 12-bit Bayer frame of camera ``camera`` (cast + brightness, not misaligned)."""
    h, w = srgb.shape[:2]
    isp = IspConfig(pattern=pattern, white_balance=TRUE_ISP.white_balance, ccm=TRUE_ISP.ccm)
    cam = inverse_isp(srgb, isp) * exposure
    cast = mosaic(np.moveaxis(cast_field(h, w, camera), 0, -1), pattern)
    cam = cam * cast
    if camera == "blur":
        cam = cam * mosaic(np.broadcast_to(BRIGHTNESS, (h, w, 3)), pattern)
    cam = cam + np.random.default_rng(seed).normal(0.0, noise, cam.shape)
    dn = BLACK + np.clip(cam, 0.0, 1.0) * (WHITE - BLACK)
    return np.round(dn).astype(np.uint16)


def lightbox_raw(h: int, w: int, camera: str, level: float = 0.5, seed: int = 1, pattern: str = "RGGB"
                 ) -> np.ndarray:
    """A uniform D65 light box seen by ``camera``: white in linear sRGB through the inverse ISP."""
    # The sRGB value whose linear value is `level` on every channel.
    white = np.full((h, w, 3), float(srgb_encode(np.array(level))))
    return to_raw(white, camera, exposure=1.0, noise=1e-3, seed=seed, pattern=pattern)


@dataclass
class Capture:
    """One simulated scene: truths and the RAW frames both cameras record."""

    sharp_truth: np.ndarray       # (H, W, 3) sRGB
    blur_truth: np.ndarray        # (H, W, 3) sRGB, in camera S's geometry
    flow: np.ndarray              # (H, W, 2) true misalignment
    ref_sharp: np.ndarray         # uint16 Bayer frames
    ref_blur: np.ndarray
    pair_sharp: np.ndarray
    pair_blur: np.ndarray
    lightbox_sharp: np.ndarray
    lightbox_blur: np.ndarray


def simulate(h: int = 96, w: int = 128, seed: int = 0, pattern: str = "RGGB") -> Capture:
    flow = true_flow(h, w)
    ref = scene(h, w, seed)
    blur_truth = local_blur(ref)
    return Capture(
        sharp_truth=ref, blur_truth=blur_truth, flow=flow,
        ref_sharp=to_raw(ref, "sharp", seed=seed + 10, pattern=pattern),
        ref_blur=to_raw(_misalign(ref, flow), "blur", seed=seed + 11, pattern=pattern),
        pair_sharp=to_raw(ref, "sharp", seed=seed + 12, pattern=pattern),
        pair_blur=to_raw(_misalign(blur_truth, flow), "blur", seed=seed + 13, pattern=pattern),
        lightbox_sharp=lightbox_raw(h, w, "sharp", seed=seed + 14, pattern=pattern),
        lightbox_blur=lightbox_raw(h, w, "blur", seed=seed + 15, pattern=pattern),
    )
