"""Colour-cast calibration (paper Eqs. 3-5) and photometric alignment (Eqs. 6-7) on simulated captures."""

import numpy as np
import pytest

import capture_simulator as sim
from lbag.capture.color import (alpha_field, apply_color_correction, calibrate_cameras, cubic_monomials,
                                fit_color_calibration, load_calibration, patch_alphas, save_calibration)
from lbag.capture.photometric import apply_photometric, photometric_beta

H, W = 96, 128


def norm(dn):
    return (dn.astype(np.float32) - sim.BLACK) / (sim.WHITE - sim.BLACK)


@pytest.fixture(scope="module")
def capture():
    return sim.simulate(H, W)


@pytest.mark.parametrize("camera", ["sharp", "blur"])
def test_alpha_field_recovered_within_one_percent(capture, camera):
    frame = capture.lightbox_sharp if camera == "sharp" else capture.lightbox_blur
    calib = fit_color_calibration(norm(frame), "RGGB", grid=(9, 13))
    fitted = alpha_field(calib, per_site=False)
    truth = sim.true_alpha(H, W, camera)
    rel = np.abs(fitted / truth - 1)
    assert rel.max() < 0.01, f"max alpha error {rel.max():.4f} over the frame"
    # The imposed cast is strong (up to ~28% fall-off), so a no-op correction would fail badly.
    assert np.abs(1 / truth - 1).max() > 0.2


def test_polynomial_is_exact_for_a_cubic_cast():
    # Noise-free light box whose alpha is exactly cubic. With 2x2 patches each R (B) patch mean is one
    # site, so alpha_k = alpha(site) / alpha(central R site): the fit must reproduce it to rounding.
    h, w = 90, 130
    x, y = np.meshgrid(np.linspace(-1, 1, w), np.linspace(-1, 1, h))
    coef = np.array([0.02, -0.01, 0.015, 0.01, -0.05, 0.01, -0.04, 0.03, -0.02, 1.0])
    alpha = cubic_monomials(x, y) @ coef
    calib = fit_color_calibration(0.5 / alpha, "RGGB", grid=(45, 65))
    fitted = alpha_field(calib, per_site=False).astype(np.float64)
    r_ref = alpha[44, 64]  # R site of the central 2x2 patch (rows 44-45, cols 64-65)
    np.testing.assert_allclose(fitted[0], alpha / r_ref, rtol=1e-5)
    np.testing.assert_allclose(fitted[2], alpha / alpha[45, 65], rtol=1e-5)
    assert calib.fit_rms[0] < 1e-6
    x_k, _, a = patch_alphas(0.5 / alpha, "RGGB", grid=(45, 65))
    assert a.shape == x_k.shape == (3, 45 * 65)


def test_correction_flattens_the_light_box(capture):
    calib = fit_color_calibration(norm(capture.lightbox_blur), "RGGB")
    corrected = apply_color_correction(norm(capture.lightbox_blur), calib, "RGGB")
    sites = corrected[0::2, 0::2]  # R sites of RGGB
    assert sites.std() / sites.mean() < 0.01
    raw_sites = norm(capture.lightbox_blur)[0::2, 0::2]
    assert raw_sites.std() / raw_sites.mean() > 0.05


def test_white_balance_from_light_box(capture):
    cal = calibrate_cameras(norm(capture.lightbox_sharp), norm(capture.lightbox_blur), "RGGB")
    np.testing.assert_allclose(cal.white_balance, sim.TRUE_ISP.white_balance, rtol=0.005)


def test_calibration_file_round_trip(tmp_path, capture):
    cal = calibrate_cameras(norm(capture.lightbox_sharp), norm(capture.lightbox_blur), "RGGB",
                            ccm=sim.TRUE_ISP.ccm, source="sim")
    save_calibration(cal, tmp_path / "c.json")
    back = load_calibration(tmp_path / "c.json")
    assert back == cal
    (tmp_path / "bad.json").write_text("{\"format\": \"other\"}")
    with pytest.raises(ValueError, match="bad.json"):
        load_calibration(tmp_path / "bad.json")


def test_bad_inputs():
    with pytest.raises(ValueError, match="odd"):
        fit_color_calibration(np.ones((40, 40)), "RGGB", grid=(4, 5))
    cal = fit_color_calibration(np.ones((40, 40)), "RGGB", grid=(5, 5))
    with pytest.raises(ValueError, match="fitted on 40x40"):
        apply_color_correction(np.ones((40, 42)), cal)
    with pytest.raises(ValueError, match="<= 0"):
        fit_color_calibration(np.zeros((40, 40)), "RGGB", grid=(5, 5))


def test_beta_recovered_within_half_a_percent(capture):
    cal = calibrate_cameras(norm(capture.lightbox_sharp), norm(capture.lightbox_blur), "RGGB")
    truth = 1 / sim.BRIGHTNESS
    for s_dn, b_dn in ((capture.ref_sharp, capture.ref_blur), (capture.pair_sharp, capture.pair_blur)):
        s = apply_color_correction(norm(s_dn), cal.sharp)
        b = apply_color_correction(norm(b_dn), cal.blur)
        beta = photometric_beta(s, b, "RGGB")
        assert np.abs(beta / truth - 1).max() < 0.005, beta
        aligned = apply_photometric(b, beta, "RGGB")
        np.testing.assert_allclose(photometric_beta(s, aligned, "RGGB"), 1.0, rtol=1e-5)


def test_beta_bad_input():
    with pytest.raises(ValueError, match="same size"):
        photometric_beta(np.ones((4, 4)), np.ones((4, 6)), "RGGB")
    with pytest.raises(ValueError, match="mean is 0"):
        photometric_beta(np.ones((4, 4)), np.zeros((4, 4)), "RGGB")
