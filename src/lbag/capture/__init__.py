"""From beam-splitter RAW captures to aligned ReLoBlur pairs (*Real-World Deep Local Motion Deblurring*,
Li et al., AAAI 2023): exposure planning (Eq. 2), colour-cast correction (Eqs. 3-5), photometric
alignment (Eqs. 6-7), the ISP (Menon demosaicing, white balance, colour matrix, sRGB gamma), geometric
alignment (optical flow on a static reference pair + spline warping), RAW input, and the session runner.
"""

from .color import (CaptureCalibration, ColorCalibration, alpha_field, apply_color_correction, calibrate_cameras,
                    fit_color_calibration, load_calibration, patch_alphas, save_calibration)
from .exposure import ExposurePlan, plan_exposure
from .geometric import FLOW_METHODS, FlowStats, estimate_flow, warp_image
from .isp import IspConfig, demosaic_menon, inverse_isp, run_isp, srgb_decode, srgb_encode
from .photometric import apply_photometric, photometric_beta
from .pipeline import CaptureError, CaptureOptions, develop_pair, process_scene, process_session
from .rawio import BAYER_PATTERNS, RawFormatError, RawFrame, mosaic, read_raw, write_dng

__all__ = [
    "BAYER_PATTERNS", "CaptureCalibration", "CaptureError", "CaptureOptions", "ColorCalibration", "ExposurePlan",
    "FLOW_METHODS", "FlowStats", "IspConfig", "RawFormatError", "RawFrame", "alpha_field", "apply_color_correction",
    "apply_photometric", "calibrate_cameras", "demosaic_menon", "develop_pair", "estimate_flow",
    "fit_color_calibration", "inverse_isp", "load_calibration", "mosaic", "patch_alphas", "photometric_beta",
    "plan_exposure", "process_scene", "process_session", "read_raw", "run_isp", "save_calibration", "srgb_decode",
    "srgb_encode", "warp_image", "write_dng",
]
