"""Exposure planning for a beam-splitter rig (Eq. 2 of *Real-World Deep Local Motion Deblurring*, Li et
al., AAAI 2023).

An object moving at speed v at distance d images onto the sensor at speed v * l' / d (thin lens, image
distance l'), i.e. v * l' / (d * c) pixels per second for a pixel pitch c. To smear over n pixels during
the short exposure: ``t_S = c * n * d / (l' * v)``. The long exposure is ``t_L = t_S / tau`` for an ND
filter of transmittance tau (both cameras then collect the same photon energy), so the blurred frame
shows ``n / tau`` pixels of motion.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# Plausible ranges; outside them the input is almost surely in the wrong unit.
_RANGES = {
    "pixel_pitch_um": (0.3, 50.0, "sensor pixel pitch in micrometres (e.g. 3.45)"),
    "blur_px": (0.01, 10000.0, "desired blur of the SHORT exposure in pixels"),
    "distance_m": (0.01, 100000.0, "object distance in metres"),
    "image_distance_mm": (1.0, 2000.0, "image distance (about the focal length) in millimetres"),
    "speed_mps": (1e-4, 1000.0, "object speed in metres per second"),
}


@dataclass(frozen=True)
class ExposurePlan:
    """Result of :func:`plan_exposure` (SI units).

    Attributes:
        t_short_s: exposure of camera S (sharp), seconds.
        t_long_s: exposure of camera B (blurred), seconds.
        tau: ND transmittance in front of camera B (= t_short_s / t_long_s).
        short_blur_px: motion during t_short_s, pixels (the requested n).
        long_blur_px: motion during t_long_s, pixels.
        image_speed_px_s: the object's speed on the sensor, pixels per second.
        warnings: human-readable notes (e.g. blur outside ReLoBlur's ranges).
    """

    t_short_s: float
    t_long_s: float
    tau: float
    short_blur_px: float
    long_blur_px: float
    image_speed_px_s: float
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d


def _check(name: str, value: float) -> float:
    lo, hi, what = _RANGES[name]
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number ({what}), got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive number ({what}), got {value!r}")
    if not lo <= v <= hi:
        raise ValueError(f"{name}={v:g} is outside the plausible range [{lo:g}, {hi:g}] for the {what}; "
                         f"check the unit")
    return v


def plan_exposure(pixel_pitch_um: float, blur_px: float, distance_m: float, image_distance_mm: float,
                  speed_mps: float, nd_transmittance: float) -> ExposurePlan:
    """Plan the two exposures of a capture (Eq. 2).

    Args:
        pixel_pitch_um: sensor pixel side length c, micrometres.
        blur_px: desired blur n of the sharp (short) exposure, pixels (ReLoBlur: <= ~6).
        distance_m: object distance d, metres.
        image_distance_mm: image distance l', millimetres (must be shorter than the object distance).
        speed_mps: object speed v, metres per second.
        nd_transmittance: ND filter transmittance tau in (0, 1] (e.g. 0.0625 for ND16).

    Returns:
        The plan; see :class:`ExposurePlan`.

    Raises:
        ValueError: a value is non-positive, not finite, or outside a plausible range for its unit.
    """
    c = _check("pixel_pitch_um", pixel_pitch_um) * 1e-6
    n = _check("blur_px", blur_px)
    d = _check("distance_m", distance_m)
    lp = _check("image_distance_mm", image_distance_mm) * 1e-3
    v = _check("speed_mps", speed_mps)
    try:
        tau = float(nd_transmittance)
    except (TypeError, ValueError):
        raise ValueError(f"nd_transmittance must be a number in (0, 1], got {nd_transmittance!r}") from None
    if not math.isfinite(tau) or not 0 < tau <= 1:
        raise ValueError(f"nd_transmittance must be in (0, 1] (a fraction, e.g. 0.0625 for ND16), got "
                         f"{nd_transmittance!r}")
    if lp >= d:
        raise ValueError(f"image distance {lp * 1e3:g} mm must be shorter than the object distance {d:g} m")
    t_s = c * n * d / (lp * v)
    t_l = t_s / tau
    long_px = n / tau
    warnings = []
    if n > 6:
        warnings.append(f"the sharp frame will show {n:g} px of motion; ReLoBlur keeps it <= 6 px")
    if not 15 <= long_px <= 70:
        warnings.append(f"the blurred frame will show {long_px:.1f} px of motion; ReLoBlur's blur spans 15-70 px")
    return ExposurePlan(t_short_s=t_s, t_long_s=t_l, tau=tau, short_blur_px=n, long_blur_px=long_px,
                        image_speed_px_s=v * lp / (d * c), warnings=tuple(warnings))
