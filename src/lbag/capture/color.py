"""Location-dependent colour-cast correction on Bayer RAW (Eqs. 3-5 of *Real-World Deep Local Motion
Deblurring*, Li et al., AAAI 2023).

A beam-splitter's transmission/reflection ratio varies with the incidence angle, so each camera sees a
colour cast that changes across the frame. Calibration, once per camera, from a RAW image of a uniform
6500K light box:

1. cut the frame into a ``rows x cols`` grid of patches (both odd, so there is a central patch);
2. per patch k and channel c: ``alpha_{c,k} = mean(central patch, c) / mean(patch k, c)`` (Eq. 3);
3. fit 10 constants per channel to alpha over the cubic monomials
   ``[x^3, x^2 y, x y^2, y^3, x^2, x y, y^2, x, y, 1]`` of the patch centres (Eqs. 4-5) by least squares.

Coordinates are normalised to [-1, 1] (x = 2 * col / (W - 1) - 1, likewise y) so the fit is well
conditioned. The paper writes one row of constants shared by R, G and B; fitting per channel is the
general case and reduces to it when the cast is neutral. At capture time alpha is evaluated per CFA site
with its own channel's polynomial and multiplies the RAW value (Eq. 3).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_json
from .rawio import channel_index_map, check_pattern

MONOMIALS = ("x^3", "x^2 y", "x y^2", "y^3", "x^2", "x y", "y^2", "x", "y", "1")


def cubic_monomials(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The 10 cubic monomials of Eq. 5, in the paper's order.

    Args:
        x, y: normalised coordinates, any (equal) shape.

    Returns:
        array of shape ``x.shape + (10,)``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    one = np.ones_like(x)
    return np.stack([x**3, x * x * y, x * y * y, y**3, x * x, x * y, y * y, x, y, one], axis=-1)


def normalised_coords(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of an (H, W) frame mapped to [-1, 1]; returns 1-D (x of W, y of H)."""
    h, w = shape
    x = np.linspace(-1.0, 1.0, w) if w > 1 else np.zeros(1)
    y = np.linspace(-1.0, 1.0, h) if h > 1 else np.zeros(1)
    return x, y


@dataclass(frozen=True)
class ColorCalibration:
    """The location-oriented colour constants of one camera.

    Attributes:
        coefficients: (3, 10) constants a_0..a_9 for R, G, B over :data:`MONOMIALS`.
        shape: (H, W) of the light-box frame they were fitted on (the sensor size).
        pattern: Bayer pattern of that frame.
        grid: (rows, cols) patch grid used for the fit.
        fit_rms: RMS of (fitted - measured) alpha over the patches, per channel (a quality figure).
    """

    coefficients: tuple[tuple[float, ...], ...]
    shape: tuple[int, int]
    pattern: str
    grid: tuple[int, int] = (9, 13)
    fit_rms: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self):
        c = np.asarray(self.coefficients, dtype=np.float64)
        if c.shape != (3, 10):
            raise ValueError(f"colour constants must have shape (3, 10), got {c.shape}")
        check_pattern(self.pattern)

    def to_dict(self) -> dict:
        return {"coefficients": [list(map(float, r)) for r in self.coefficients], "monomials": list(MONOMIALS),
                "shape": list(self.shape), "pattern": self.pattern, "grid": list(self.grid),
                "fit_rms": list(self.fit_rms)}

    @classmethod
    def from_dict(cls, d: dict) -> "ColorCalibration":
        return cls(coefficients=tuple(tuple(float(v) for v in r) for r in d["coefficients"]),
                   shape=tuple(int(v) for v in d["shape"]), pattern=str(d["pattern"]),
                   grid=tuple(int(v) for v in d.get("grid", (9, 13))),
                   fit_rms=tuple(float(v) for v in d.get("fit_rms", (0.0, 0.0, 0.0))))


def _check_grid(shape: tuple[int, int], grid: tuple[int, int]) -> tuple[int, int]:
    rows, cols = (int(v) for v in grid)
    if rows < 3 or cols < 3 or rows % 2 == 0 or cols % 2 == 0:
        raise ValueError(f"patch grid must be odd and at least 3x3 (a central patch is needed), got {rows}x{cols}")
    h, w = shape
    if h < 2 * rows or w < 2 * cols:
        raise ValueError(f"frame {h}x{w} too small for a {rows}x{cols} patch grid (each patch needs a 2x2 cell)")
    return rows, cols


def patch_means(cfa: np.ndarray, pattern: str, grid: tuple[int, int] = (9, 13)
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel mean of every patch of a ``rows x cols`` grid over a Bayer frame.

    Args:
        cfa: (H, W) Bayer frame, linear, black level removed.
        pattern: its Bayer pattern.
        grid: (rows, cols), both odd so the central patch is well defined.

    Returns:
        ``(x, y, means)``, each (3, rows, cols) for R, G, B: the centroid of the channel's sites in each
        patch in [-1, 1] coordinates (half a pixel off the patch centre for R and B), and their mean.
    """
    cfa = np.asarray(cfa, dtype=np.float64)
    if cfa.ndim != 2:
        raise ValueError(f"light-box frame must be 2-D (H, W), got shape {cfa.shape}")
    rows, cols = _check_grid(cfa.shape, grid)
    h, w = cfa.shape
    idx = channel_index_map(cfa.shape, pattern)
    # Patch edges on even indices so every patch holds whole Bayer cells (all channels present).
    ys = 2 * np.round(np.linspace(0, h // 2, rows + 1)).astype(int)
    xs = 2 * np.round(np.linspace(0, w // 2, cols + 1)).astype(int)
    yy, xx = np.mgrid[0:h, 0:w]
    means = np.empty((3, rows, cols))
    cx = np.empty((3, rows, cols))
    cy = np.empty((3, rows, cols))
    for i in range(rows):
        for j in range(cols):
            win = (slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1]))
            bidx = idx[win]
            for c in range(3):
                sel = bidx == c
                means[c, i, j] = cfa[win][sel].mean()
                cx[c, i, j] = xx[win][sel].mean()
                cy[c, i, j] = yy[win][sel].mean()
    x = 2.0 * cx / max(w - 1, 1) - 1.0
    y = 2.0 * cy / max(h - 1, 1) - 1.0
    return x, y, means


def patch_alphas(cfa: np.ndarray, pattern: str, grid: tuple[int, int] = (9, 13)
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-patch colour-correction factors of a light-box frame (Eq. 3 with patch means).

    Args:
        cfa: (H, W) Bayer light-box frame, linear, black level removed.
        pattern: its Bayer pattern.
        grid: (rows, cols), both odd so the central patch is well defined.

    Returns:
        ``(x, y, alpha)``, each (3, K) for R, G, B: the channel's site centroid per patch in [-1, 1]
        coordinates and ``alpha = mean(central patch) / mean(patch)``.
    """
    x, y, means = patch_means(cfa, pattern, grid)
    if np.any(means <= 0):
        bad = int(np.sum(means <= 0))
        raise ValueError(f"{bad} patch means are <= 0: the light-box frame is black or its black level is wrong")
    rows, cols = means.shape[1:]
    centre = means[:, rows // 2, cols // 2]
    alpha = centre[:, None, None] / means
    return x.reshape(3, -1), y.reshape(3, -1), alpha.reshape(3, -1)


def fit_color_calibration(cfa: np.ndarray, pattern: str, grid: tuple[int, int] = (9, 13)) -> ColorCalibration:
    """Fit the colour constants of one camera from its light-box frame (Eqs. 3-5).

    Args:
        cfa: (H, W) Bayer light-box frame, linear, black level removed (e.g. ``RawFrame.cfa``).
        pattern: its Bayer pattern.
        grid: (rows, cols) patch grid, both odd.

    Returns:
        The calibration: per-channel least-squares constants over the cubic monomials.
    """
    pattern = check_pattern(pattern)
    x, y, alpha = patch_alphas(cfa, pattern, grid)
    if x.shape[1] < 10:
        raise ValueError(f"{x.shape[1]} patches cannot determine 10 constants; use a larger grid")
    coef = np.empty((3, 10))
    rms = np.empty(3)
    for c in range(3):
        z = cubic_monomials(x[c], y[c])  # (K, 10)
        coef[c], *_ = np.linalg.lstsq(z, alpha[c], rcond=None)
        rms[c] = np.sqrt(np.mean((z @ coef[c] - alpha[c]) ** 2))
    return ColorCalibration(coefficients=tuple(tuple(float(v) for v in r) for r in coef),
                            shape=tuple(int(v) for v in np.shape(cfa)), pattern=pattern,
                            grid=(int(grid[0]), int(grid[1])), fit_rms=tuple(float(v) for v in rms))


def alpha_field(calib: ColorCalibration, shape: tuple[int, int] | None = None, per_site: bool = True
                ) -> np.ndarray:
    """Evaluate the fitted alpha per pixel (Eq. 5).

    Args:
        calib: the camera's constants.
        shape: (H, W) to evaluate on; defaults to the calibration frame's size.
        per_site: True gives the (H, W) field each CFA site is multiplied by (its own channel's
            polynomial); False gives all three channels, (3, H, W).

    Returns:
        float32 array, (H, W) or (3, H, W).
    """
    shape = tuple(calib.shape if shape is None else shape)
    x, y = normalised_coords(shape)
    coef = np.asarray(calib.coefficients, dtype=np.float64)  # (3, 10)
    # Separable evaluation: sum_k a_k x^p_k y^q_k = sum over y-powers of (poly in x) * y^q; the
    # full (H, W, 10) monomial stack would cost 10x the frame in memory at 2152x1436.
    px = np.stack([x**p for p in range(4)])  # (4, W)
    py = np.stack([y**q for q in range(4)])  # (4, H)
    powers = [(3, 0), (2, 1), (1, 2), (0, 3), (2, 0), (1, 1), (0, 2), (1, 0), (0, 1), (0, 0)]
    fields = np.zeros((3, shape[0], shape[1]), dtype=np.float64)
    for c in range(3):
        m = np.zeros((4, 4))
        for a, (p, q) in zip(coef[c], powers):
            m[q, p] += a
        fields[c] = py.T @ m @ px
    if not per_site:
        return fields.astype(np.float32)
    idx = channel_index_map(shape, calib.pattern)
    return np.take_along_axis(fields, idx[None].astype(np.intp), axis=0)[0].astype(np.float32)


def apply_color_correction(cfa: np.ndarray, calib: ColorCalibration, pattern: str | None = None) -> np.ndarray:
    """Multiply every CFA site by its channel's alpha (Eq. 3).

    Args:
        cfa: (H, W) Bayer frame, linear, black level removed; same size as the calibration frame.
        calib: the camera's constants.
        pattern: the frame's Bayer pattern; must equal the calibration's (checked).

    Returns:
        float32 (H, W) corrected frame.
    """
    cfa = np.asarray(cfa)
    if cfa.ndim != 2:
        raise ValueError(f"expected a 2-D Bayer frame, got shape {cfa.shape}")
    if tuple(cfa.shape) != tuple(calib.shape):
        raise ValueError(f"frame is {cfa.shape[0]}x{cfa.shape[1]} but the colour calibration was fitted on "
                         f"{calib.shape[0]}x{calib.shape[1]} frames (same sensor, same crop expected)")
    if pattern is not None and check_pattern(pattern) != calib.pattern:
        raise ValueError(f"frame has Bayer pattern {pattern} but the calibration was made for {calib.pattern}")
    return (cfa.astype(np.float32) * alpha_field(calib)).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# The calibration file: both cameras' colour constants plus the camera pipeline settings
# --------------------------------------------------------------------------------------------------

CALIBRATION_FORMAT = "lbag-capture-calibration"


@dataclass(frozen=True)
class CaptureCalibration:
    """Everything camera-specific the pipeline needs, stored as one small JSON file.

    Attributes:
        sharp, blur: colour constants of camera S (short exposure) and camera B (long exposure).
        white_balance: (R, G, B) gains applied after demosaicing.
        ccm: 3x3 camera-RGB -> linear-sRGB matrix (rows give output channels).
        black_level, white_level: levels for plain integer Bayer arrays (RAW files carry their own);
            None means 0 and the dtype maximum.
        source: free text saying where it came from (file names), for the reports.
    """

    sharp: ColorCalibration
    blur: ColorCalibration
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ccm: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    black_level: float | None = None
    white_level: float | None = None
    source: str = field(default="", compare=False)

    def __post_init__(self):
        if self.sharp.pattern != self.blur.pattern:
            raise ValueError(f"the two cameras have different Bayer patterns ({self.sharp.pattern} vs "
                             f"{self.blur.pattern})")
        if tuple(self.sharp.shape) != tuple(self.blur.shape):
            raise ValueError(f"the two cameras have different frame sizes ({self.sharp.shape} vs {self.blur.shape})")
        wb = np.asarray(self.white_balance, dtype=np.float64)
        if wb.shape != (3,) or not np.all(np.isfinite(wb)) or np.any(wb <= 0):
            raise ValueError(f"white_balance must be three positive gains, got {self.white_balance}")
        ccm = np.asarray(self.ccm, dtype=np.float64)
        if ccm.shape != (3, 3) or not np.all(np.isfinite(ccm)):
            raise ValueError(f"ccm must be a finite 3x3 matrix, got {self.ccm}")

    @property
    def pattern(self) -> str:
        return self.sharp.pattern

    def to_dict(self) -> dict:
        return {"format": CALIBRATION_FORMAT, "version": 1, "pattern": self.pattern,
                "white_balance": list(map(float, self.white_balance)),
                "ccm": [list(map(float, r)) for r in self.ccm],
                "black_level": self.black_level, "white_level": self.white_level, "source": self.source,
                "cameras": {"sharp": self.sharp.to_dict(), "blur": self.blur.to_dict()}}

    @classmethod
    def from_dict(cls, d: dict) -> "CaptureCalibration":
        return cls(sharp=ColorCalibration.from_dict(d["cameras"]["sharp"]),
                   blur=ColorCalibration.from_dict(d["cameras"]["blur"]),
                   white_balance=tuple(float(v) for v in d.get("white_balance", (1, 1, 1))),
                   ccm=tuple(tuple(float(v) for v in r) for r in d.get("ccm", np.eye(3).tolist())),
                   black_level=d.get("black_level"), white_level=d.get("white_level"),
                   source=str(d.get("source", "")))


def save_calibration(calib: CaptureCalibration, path: str | os.PathLike) -> None:
    """Write the calibration JSON atomically."""
    path = Path(path)
    write_json(path, calib.to_dict())


def load_calibration(path: str | os.PathLike) -> CaptureCalibration:
    """Read a calibration JSON written by :func:`save_calibration`; errors name the file and the problem."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: calibration file not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON calibration file ({exc})") from None
    if not isinstance(d, dict) or d.get("format") != CALIBRATION_FORMAT:
        raise ValueError(f"{path}: not an lbag capture calibration (missing \"format\": \"{CALIBRATION_FORMAT}\")")
    try:
        calib = CaptureCalibration.from_dict(d)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: invalid calibration: {exc}") from None
    return calib


def calibrate_cameras(sharp_lightbox: np.ndarray, blur_lightbox: np.ndarray, pattern: str,
                      grid: tuple[int, int] = (9, 13), white_balance: tuple[float, float, float] | None = None,
                      ccm=None, black_level: float | None = None, white_level: float | None = None,
                      source: str = "") -> CaptureCalibration:
    """Build a :class:`CaptureCalibration` from the two cameras' light-box frames.

    Args:
        sharp_lightbox, blur_lightbox: (H, W) Bayer light-box frames of camera S and camera B, linear,
            black level removed.
        pattern: their Bayer pattern.
        grid: patch grid for the colour-constant fit.
        white_balance: (R, G, B) gains. None derives them from the light box: it is a 6500K neutral
            source, so after colour correction the gains that make camera S's central patch grey
            (G/R, 1, G/B) are the D65 white balance.
        ccm: 3x3 camera-RGB -> linear-sRGB matrix; None means identity.
        black_level, white_level: stored for plain integer Bayer arrays.
        source: recorded in the file (e.g. the light-box file names).
    """
    pattern = check_pattern(pattern)
    cal_s = fit_color_calibration(sharp_lightbox, pattern, grid)
    cal_b = fit_color_calibration(blur_lightbox, pattern, grid)
    if white_balance is None:
        _, _, means = patch_means(apply_color_correction(sharp_lightbox, cal_s, pattern), pattern, grid)
        m = means[:, means.shape[1] // 2, means.shape[2] // 2]
        white_balance = (float(m[1] / m[0]), 1.0, float(m[1] / m[2]))
    ccm = np.eye(3) if ccm is None else np.asarray(ccm, dtype=np.float64)
    return CaptureCalibration(sharp=cal_s, blur=cal_b, white_balance=tuple(float(v) for v in white_balance),
                              ccm=tuple(tuple(float(v) for v in r) for r in ccm), black_level=black_level,
                              white_level=white_level, source=source)
