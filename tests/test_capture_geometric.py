"""Geometric alignment: flow on the static reference pair, spline warping."""

import numpy as np
import pytest

import capture_simulator as sim
from lbag.capture.color import calibrate_cameras
from lbag.capture.geometric import FLOW_METHODS, compose_flow, estimate_flow, warp_image
from lbag.capture.pipeline import develop_pair
from lbag.capture.isp import IspConfig

H, W, MARGIN = 96, 128, 8


def norm(dn):
    return (dn.astype(np.float32) - sim.BLACK) / (sim.WHITE - sim.BLACK)


@pytest.fixture(scope="module")
def reference_pair():
    cap = sim.simulate(H, W)
    cal = calibrate_cameras(norm(cap.lightbox_sharp), norm(cap.lightbox_blur), "RGGB", ccm=sim.TRUE_ISP.ccm)
    isp = IspConfig("RGGB", cal.white_balance, cal.ccm)
    s, b, _ = develop_pair(norm(cap.ref_sharp), norm(cap.ref_blur), cal, isp)
    return cap, s, b


def rms_error(flow, truth):
    e = np.linalg.norm(flow - truth, axis=-1)[MARGIN:-MARGIN, MARGIN:-MARGIN]
    return float(np.sqrt(np.mean(e**2)))


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_residual_misalignment_below_a_tenth_of_a_pixel(reference_pair, method):
    cap, s, b = reference_pair
    # Unaligned, the cameras differ by ~0.6-1 px: the test would fail without the flow.
    assert rms_error(np.zeros_like(cap.flow), cap.flow) > 0.4
    flow = estimate_flow(s, b, method=method, model="poly", refinements=1)
    assert flow.shape == (H, W, 2) and flow.dtype == np.float32
    assert rms_error(flow, cap.flow) < 0.1


def test_dense_model_also_meets_the_target(reference_pair):
    cap, s, b = reference_pair
    assert rms_error(estimate_flow(s, b, method="farneback", model="dense"), cap.flow) < 0.1


def test_warp_aligns_the_blur_camera(reference_pair):
    cap, s, b = reference_pair
    warped, valid = warp_image(b, cap.flow, order=3)
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    before = np.mean((b[inner] - s[inner]) ** 2)
    after = np.mean((warped[inner] - s[inner]) ** 2)
    assert after < before / 10
    assert valid[inner].all()


@pytest.mark.parametrize("order", [3, 5])
def test_warp_exact_on_integer_shift_and_identity(order):
    img = np.random.default_rng(0).random((20, 24, 3)).astype(np.float32)
    out, valid = warp_image(img, np.zeros((20, 24, 2), np.float32), order=order)
    np.testing.assert_allclose(out, img, atol=1e-5)  # prefiltered splines interpolate the samples
    flow = np.zeros((20, 24, 2), np.float32)
    flow[..., 0] = 2.0
    out, valid = warp_image(img, flow, order=order)
    np.testing.assert_allclose(out[:, :-2], img[:, 2:], atol=1e-5)
    assert not valid[:, -2:].any() and valid[:, :-2].all()


def test_spline_beats_bilinear_on_subpixel_shift():
    x = np.arange(64)
    row = 0.5 + 0.4 * np.sin(2 * np.pi * x / 6.0)  # near-Nyquist detail, where interpolators differ
    img = np.tile(row, (8, 1)).astype(np.float32)
    flow = np.zeros((8, 64, 2), np.float32)
    flow[..., 0] = 0.5
    truth = 0.5 + 0.4 * np.sin(2 * np.pi * (x + 0.5) / 6.0)
    err = {o: np.abs(warp_image(img, flow, order=o)[0][4, 8:-8] - truth[8:-8]).max() for o in (1, 3, 5)}
    assert err[5] < err[3] < err[1]


def test_compose_flow_of_constants():
    a = np.full((10, 12, 2), 0.3, np.float32)
    b = np.full((10, 12, 2), -0.1, np.float32)
    np.testing.assert_allclose(compose_flow(a, b), 0.2, atol=1e-6)


def test_bad_inputs():
    img = np.zeros((32, 32, 3), np.float32)
    with pytest.raises(ValueError, match="unknown flow method"):
        estimate_flow(img, img, method="pyflow")
    with pytest.raises(ValueError, match="differ in size"):
        estimate_flow(img, np.zeros((32, 30, 3), np.float32))
    with pytest.raises(ValueError, match="spline order"):
        warp_image(img, np.zeros((32, 32, 2)), order=2)
