"""ISP: Menon demosaicing (float32 and float64 paths), white balance, colour matrix, sRGB gamma."""

import numpy as np
import pytest

import capture_simulator as sim
from lbag.capture.isp import IspConfig, demosaic_menon, inverse_isp, run_isp, srgb_decode, srgb_encode
from lbag.capture.rawio import BAYER_PATTERNS, mosaic


def psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2))


@pytest.mark.parametrize("pattern", BAYER_PATTERNS)
def test_demosaic_flat_colour_every_pattern(pattern):
    # A flat colour has zero colour differences: Menon must reproduce it exactly for the right pattern.
    rgb = np.broadcast_to(np.array([0.2, 0.5, 0.35]), (16, 20, 3))
    out = demosaic_menon(mosaic(rgb, pattern), pattern)
    np.testing.assert_allclose(out, rgb, atol=1e-6)
    wrong = {"RGGB": "BGGR", "BGGR": "RGGB", "GRBG": "GBRG", "GBRG": "GRBG"}[pattern]
    assert np.abs(demosaic_menon(mosaic(rgb, pattern), wrong) - rgb).max() > 0.1


def test_float32_and_float64_paths_agree():
    cfa = mosaic(sim.scene(48, 64), "RGGB")
    a = demosaic_menon(cfa, "RGGB", dtype=np.float32)
    b = demosaic_menon(cfa, "RGGB", dtype=np.float64)
    assert a.dtype == np.float32 and b.dtype == np.float64
    assert np.abs(a - b).max() < 1e-5
    # colour's global default is restored after the float32 call.
    from colour.utilities import as_float_array

    assert as_float_array([1.0]).dtype == np.float64


@pytest.mark.parametrize("wb_stage, min_db", [("cfa", 40.0), ("rgb", 30.0)])
def test_isp_inverts_the_simulated_camera(wb_stage, min_db):
    truth = sim.scene(96, 128, seed=3)
    cfg = IspConfig("RGGB", sim.TRUE_ISP.white_balance, sim.TRUE_ISP.ccm, wb_stage=wb_stage)
    out = run_isp(inverse_isp(truth, cfg), cfg)
    assert out.shape == truth.shape and out.dtype == np.float32
    assert psnr(out, truth) >= min_db


def test_srgb_curve():
    x = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(srgb_decode(srgb_encode(x)), x, atol=1e-12)
    assert srgb_encode(np.array(0.5)) == pytest.approx(0.7353569830524495)


def test_bad_config():
    with pytest.raises(ValueError, match="unknown Bayer pattern"):
        IspConfig("RGBG")
    with pytest.raises(ValueError, match="wb_stage"):
        IspConfig("RGGB", wb_stage="later")
    with pytest.raises(ValueError, match="2-D"):
        demosaic_menon(np.zeros((4, 4, 3)))
