"""Tests for lbag.metrics (PSNR, SSIM, PSNR_w, SSIM_w, PSNR_a) against independent references."""

import math

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lbag.metrics import (compute_metrics, metric_rows, psnr, psnr_aligned, psnr_aligned_np, psnr_float,
                          psnr_weighted, ssim, ssim_float, ssim_weighted, summarize)
from lbag.metrics.pixel import ssim_map


def _pair(h=48, w=64, b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(b, 3, h, w, generator=g)
    pred = (gt + 0.1 * torch.randn(b, 3, h, w, generator=g)).clamp(0, 1)
    return pred, gt


def _q(x):
    return np.round(np.clip(x, 0, 1) * 255) / 255


def test_psnr_matches_skimage_per_image():
    pred, gt = _pair()
    out = psnr(pred, gt)
    assert out.shape == (3,)
    for i in range(3):
        p, g = _q(pred[i].numpy().astype(np.float64)), _q(gt[i].numpy().astype(np.float64))
        assert out[i].item() == pytest.approx(peak_signal_noise_ratio(g, p, data_range=1), abs=1e-9)


@pytest.mark.parametrize("grad", [False, True])
def test_ssim_matches_skimage_within_1e5(grad):
    # grad=True takes the torch-conv path (used by the loss), grad=False the OpenCV fast path.
    pred, gt = _pair(seed=1)
    if grad:
        pred = pred.clone().requires_grad_(True)
        with torch.enable_grad():
            vals = ssim_map(pred.double(), gt.double()).mean(dim=(1, 2, 3)).detach()
        refs_q = False
    else:
        vals = ssim(pred, gt)
        refs_q = True
    for i in range(3):
        p, g = pred[i].detach().numpy().astype(np.float64), gt[i].numpy().astype(np.float64)
        if refs_q:
            p, g = _q(p), _q(g)
        ref = structural_similarity(p, g, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=1, channel_axis=0)
        assert abs(vals[i].item() - ref) < 1e-5


def test_ssim_float32_agrees_with_skimage():
    pred, gt = _pair(seed=2, b=1)
    from lbag.metrics.pixel import prepare_pair
    p, g = prepare_pair(pred, gt, dtype=torch.float32)
    v = ssim_map(p, g).mean().item()
    ref = structural_similarity(p[0].double().numpy(), g[0].double().numpy(), gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=1, channel_axis=0)
    assert abs(v - ref) < 1e-5


def test_batch_size_independence():
    pred, gt = _pair(b=4, seed=3)
    mask = torch.zeros(4, 1, 48, 64)
    mask[:, :, 10:30, 20:50] = 1
    mask[2] = 0
    batched = compute_metrics(pred, gt, mask, aligned=False)
    for i in range(4):
        single = compute_metrics(pred[i:i + 1], gt[i:i + 1], mask[i:i + 1], aligned=False)
        for k in ("psnr", "ssim", "psnr_w", "ssim_w"):
            a, b = batched[k][i].item(), single[k][0].item()
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)
    assert batched["mask_empty"].tolist() == [False, False, True, False]


def test_weighted_metrics_by_hand_and_empty_mask():
    pred, gt = _pair(b=2, seed=4)
    mask = torch.zeros(2, 1, 48, 64)
    mask[0, :, 5:25, 7:40] = 1
    pw = psnr_weighted(pred, gt, mask)
    p, g = _q(pred[0].numpy().astype(np.float64)), _q(gt[0].numpy().astype(np.float64))
    m = mask[0, 0].numpy() > 0
    mse = ((p - g) ** 2)[:, m].mean()
    assert pw[0].item() == pytest.approx(10 * np.log10(1 / mse), abs=1e-9)
    assert math.isnan(pw[1].item())
    sw = ssim_weighted(pred, gt, mask)
    # scikit-image's SSIM map (Gaussian window, sigma 1.5, 11x11), over the valid region inside the mask
    _, smap = structural_similarity(p, g, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=1, channel_axis=0, full=True)
    mc = m[5:-5, 5:-5]
    assert sw[0].item() == pytest.approx(smap[:, 5:-5, 5:-5][:, mc].mean(), abs=1e-7)
    assert math.isnan(sw[1].item())


def test_full_mask_equals_plain_metrics():
    pred, gt = _pair(b=2, seed=5)
    ones = torch.ones(2, 1, 48, 64)
    assert torch.allclose(psnr_weighted(pred, gt, ones), psnr(pred, gt))
    assert torch.allclose(ssim_weighted(pred, gt, ones), ssim(pred, gt))


def test_quantize_switch_and_numpy_input():
    pred, gt = _pair(b=1, seed=6)
    q = psnr(pred, gt)
    nq = psnr_float(pred, gt)
    ref = peak_signal_noise_ratio(gt[0].numpy().astype(np.float64), pred[0].numpy().astype(np.float64), data_range=1)
    assert nq.item() == pytest.approx(ref, abs=1e-6) and q.item() != pytest.approx(ref, abs=1e-6)
    p8 = (np.round(pred[0].permute(1, 2, 0).numpy() * 255)).astype(np.uint8)
    g8 = (np.round(gt[0].permute(1, 2, 0).numpy() * 255)).astype(np.uint8)
    assert psnr(p8, g8).item() == pytest.approx(q.item(), abs=1e-9)
    assert psnr(gt, gt).item() == math.inf


def test_bad_input_raises():
    pred, gt = _pair(b=1)
    with pytest.raises(ValueError, match="same shape"):
        psnr(pred, gt[..., :40])
    with pytest.raises(ValueError, match="3 channels"):
        psnr(pred[:, :1], gt[:, :1])
    with pytest.raises(ValueError, match="at least 11"):
        ssim(pred[..., :8, :8], gt[..., :8, :8])
    with pytest.raises(ValueError, match="does not match"):
        psnr_weighted(pred, gt, torch.ones(1, 1, 10, 10))
    with pytest.raises(ValueError, match="denominator"):
        psnr_aligned(pred, gt, denominator="some")


def _textured(h, w, seed):
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.random((h // 6, w // 6, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(base, 0, 1)


def _reference_psnr_a(pred, gt, denominator):
    """The RealBlur procedure written out directly with OpenCV (independent of lbag.metrics.aligned)."""
    zs = (np.sum(gt * pred) / np.sum(pred * pred)) * pred
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 0)
    _, warp = cv2.findTransformECC(cv2.cvtColor(gt, cv2.COLOR_RGB2GRAY), cv2.cvtColor(zs, cv2.COLOR_RGB2GRAY),
                                   np.eye(3, dtype=np.float32), cv2.MOTION_HOMOGRAPHY, crit, None, 5)
    h, w = gt.shape[:2]
    zr = cv2.warpPerspective(zs, warp, (w, h), flags=cv2.INTER_CUBIC + cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REFLECT)
    cr = cv2.warpPerspective(np.ones_like(zs), warp, (w, h), flags=cv2.INTER_NEAREST + cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    err = np.sum((gt * cr - zr * cr).astype(np.float64) ** 2)
    n = cr.size if denominator == "all" else cr.sum()
    return 10 * np.log10(n / err)


def _shifted_pair(seed=7, h=96, w=128):
    gt = _textured(h, w, seed)
    m = np.array([[1, 0.002, 0.6], [-0.002, 1, -0.4], [0, 0, 1]], np.float32)
    pred = cv2.warpPerspective(gt, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    pred = np.clip(pred + np.random.default_rng(seed).normal(0, 0.01, pred.shape), 0, 1)
    return _q(pred).astype(np.float32), _q(gt).astype(np.float32)


@pytest.mark.parametrize("denominator", ["all", "valid"])
def test_psnr_aligned_exact_matches_reference_procedure(denominator):
    pred, gt = _shifted_pair()
    v, failed = psnr_aligned_np(pred, gt, denominator, exact=True)
    assert not failed
    # lbag accumulates the intensity gain in float64, the written-out reference in float32: 1e-4 dB.
    assert v == pytest.approx(_reference_psnr_a(pred, gt, denominator), abs=1e-4)
    # Alignment must actually help on a shifted pair.
    assert v > psnr(pred, gt).item() + 3


@pytest.mark.slow
def test_psnr_aligned_fast_close_to_exact_and_batched():
    # 512 px is the smallest short side where the fast path runs (2 levels); below it runs the reference.
    pairs = [_shifted_pair(seed=s, h=512, w=576) for s in (8, 9)]
    pred = torch.stack([torch.from_numpy(p).permute(2, 0, 1) for p, _ in pairs])
    gt = torch.stack([torch.from_numpy(g).permute(2, 0, 1) for _, g in pairs])
    fast = psnr_aligned(pred, gt)
    exact = psnr_aligned(pred, gt, exact=True)
    assert fast.shape == (2,)
    assert torch.allclose(fast, exact, atol=0.01)
    valid = psnr_aligned(pred, gt, denominator="valid", exact=True)
    # The same squared error over fewer pixels: the shifted pairs have an invalid border after warping,
    # so the RealBlur denominator gives a strictly lower PSNR.
    assert bool((valid < exact).all())


def test_ecc_failure_falls_back_to_identity_and_flags():
    gt = np.full((64, 64, 3), 0.5, np.float32)  # a constant template makes ECC fail
    pred = np.zeros((64, 64, 3), np.float32)
    pred[10:20, 10:20] = 1.0
    v, failed = psnr_aligned_np(pred, gt)
    assert failed
    assert math.isfinite(v)
    out = compute_metrics(torch.from_numpy(pred).permute(2, 0, 1), torch.from_numpy(gt).permute(2, 0, 1))
    assert out["ecc_failed"].tolist() == [True]
    assert summarize(metric_rows(out))["n_ecc_failed"] == 1


def test_summarize_skips_nan_and_counts():
    res = {"psnr": torch.tensor([30.0, 32.0]), "ssim": torch.tensor([0.9, 0.8]),
           "psnr_w": torch.tensor([25.0, math.nan]), "ssim_w": torch.tensor([0.7, math.nan]),
           "psnr_a": torch.tensor([31.0, 33.0]), "mask_empty": torch.tensor([False, True]),
           "ecc_failed": torch.tensor([False, False])}
    s = summarize(metric_rows(res))
    assert s["psnr"] == pytest.approx(31.0) and s["psnr_w"] == pytest.approx(25.0)
    assert s["n_images"] == 2 and s["n_empty_mask"] == 1 and s["n_ecc_failed"] == 0


def test_protocol_ssim_exact_on_flat_saturated_regions():
    # Flat bright areas repeat the same rounding in every pixel: a float32 implementation is off by
    # ~4e-5 here; the 8-bit path (float64 moments) must stay within 1e-5 of scikit-image.
    rng = np.random.default_rng(11)
    gt = np.full((64, 80, 3), 255, np.uint8)
    gt[:, :30] = rng.integers(0, 256, (64, 30, 3))
    pred = np.clip(250 + rng.integers(-3, 4, gt.shape), 0, 255).astype(np.uint8)
    ref = structural_similarity(pred / 255.0, gt / 255.0, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=1, channel_axis=2)
    assert abs(ssim(pred, gt).item() - ref) < 1e-9
    # The same images as float tensors through the float (non-quantising) path agree too.
    tp = torch.from_numpy(pred / 255.0).permute(2, 0, 1)
    tg = torch.from_numpy(gt / 255.0).permute(2, 0, 1)
    assert abs(ssim_float(tp, tg).item() - ref) < 1e-9


def test_quantize_u8_matches_float_quantisation_and_nan():
    from lbag.metrics.pixel import quantize_u8
    k = torch.arange(255, dtype=torch.float64)
    # Values right next to the rounding thresholds (k + 0.5) / 255, plus out-of-range ones.
    x = torch.cat([((k + 0.5) / 255).float(), torch.nextafter(((k + 0.5) / 255).float(), torch.tensor(0.0)),
                   torch.nextafter(((k + 0.5) / 255).float(), torch.tensor(1.0)), torch.tensor([-0.3, 1.7, 0.0])])
    img = x[: 3 * 16 * 16].reshape(1, 3, 16, 16)
    u8, nan = quantize_u8(img)
    # Independent reference: the float32 value widened exactly, scaled, rounded half to even in numpy.
    ref = np.rint(np.clip(img.permute(0, 2, 3, 1).numpy().astype(np.float64), 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(u8, ref) and not nan.any()
    bad = img.clone()
    bad[0, 1, 3, 4] = math.nan
    out = compute_metrics(torch.cat([img, bad]), torch.cat([img, img]), aligned=False)
    assert out["psnr"][0].item() == math.inf
    assert math.isnan(out["psnr"][1].item()) and math.isnan(out["ssim"][1].item())


def test_ssim_map_gradient_matches_finite_differences():
    """The SSIM the loss trains with: analytic gradients (both inputs) equal central differences, float64."""
    g = torch.Generator().manual_seed(7)
    pred = torch.rand(1, 2, 12, 13, dtype=torch.float64, generator=g).requires_grad_(True)
    gt = torch.rand(1, 2, 12, 13, dtype=torch.float64, generator=g).requires_grad_(True)
    assert torch.autograd.gradcheck(ssim_map, (pred, gt), eps=1e-6, atol=1e-7)


def test_protocol8_kernel_on_uint8_arrays_matches_skimage_and_hand_psnr_w():
    from lbag.metrics.protocol8 import mask_u8, pixel_metrics_u8
    rng = np.random.default_rng(21)
    g8 = rng.integers(0, 256, (2, 30, 40, 3), dtype=np.uint8)
    p8 = np.clip(g8.astype(int) + rng.integers(-20, 21, g8.shape), 0, 255).astype(np.uint8)
    m = np.zeros((30, 40), bool)
    m[4:20, 6:33] = True
    out = pixel_metrics_u8(p8, g8, np.array([False, True]), mask_u8(m, 2, 30, 40))
    p, g = p8[0] / 255.0, g8[0] / 255.0
    assert out["psnr"][0].item() == pytest.approx(peak_signal_noise_ratio(g, p, data_range=1), abs=1e-9)
    ref, smap = structural_similarity(p, g, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                      data_range=1, channel_axis=2, full=True)
    assert out["ssim"][0].item() == pytest.approx(ref, abs=1e-9)
    assert out["ssim_w"][0].item() == pytest.approx(smap[5:-5, 5:-5][m[5:-5, 5:-5]].mean(), abs=1e-9)
    assert out["psnr_w"][0].item() == pytest.approx(10 * np.log10(1 / ((p - g) ** 2)[m].mean()), abs=1e-9)
    # the second image is flagged as having held NaN: all its metrics are NaN
    assert all(math.isnan(out[k][1].item()) for k in ("psnr", "ssim", "psnr_w", "ssim_w"))


def test_psnr_aligned_float_is_the_reference_procedure_without_quantisation():
    from lbag.metrics import psnr_aligned_float
    gt = _textured(96, 128, 3)
    m = np.array([[1, 0.002, 0.6], [-0.002, 1, -0.4], [0, 0, 1]], np.float32)
    pred = cv2.warpPerspective(gt, m, (128, 96), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    pred = np.clip(pred + np.random.default_rng(3).normal(0, 0.01, pred.shape), 0, 1).astype(np.float32)
    v = psnr_aligned_float(torch.from_numpy(pred).permute(2, 0, 1), torch.from_numpy(gt).permute(2, 0, 1),
                           exact=True)
    assert v.shape == (1,) and v.dtype == torch.float64
    assert v.item() == pytest.approx(_reference_psnr_a(pred, gt, "all"), abs=1e-4)
    # the 8-bit protocol value differs: the quantisation is not applied here
    assert psnr_aligned(pred, gt, exact=True).item() != pytest.approx(v.item(), abs=1e-6)


def test_summarize_takes_rows_from_a_batch_and_csv_strings():
    rows = metric_rows({"psnr": torch.tensor([30.0, 34.0]), "ssim": torch.tensor([0.5, 0.7]),
                        "psnr_w": torch.tensor([math.nan, 20.0]), "ssim_w": torch.tensor([math.nan, 0.25]),
                        "psnr_a": torch.tensor([math.nan, math.nan]), "mask_empty": torch.tensor([True, False]),
                        "ecc_failed": torch.tensor([False, True])})
    assert rows[0]["psnr"] == 30.0 and rows[1]["ecc_failed"] is True
    csv_row = {"psnr": "nan", "ssim": "0.9", "psnr_w": "", "ssim_w": "", "psnr_a": "40.0", "mask_empty": "False",
               "ecc_failed": "False", "error": ""}
    s = summarize(rows + [csv_row, {"error": "unreadable"}])
    assert s["psnr"] == 32.0 and s["ssim"] == pytest.approx(0.7) and s["psnr_w"] == 20.0 and s["psnr_a"] == 40.0
    assert (s["n_images"], s["n_empty_mask"], s["n_ecc_failed"], s["n_failed"]) == (3, 1, 1, 1)
