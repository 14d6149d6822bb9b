"""Tests for lbag.losses: each term against a hand computation, the shift-min, the multi-scale sum."""

import math

import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from lbag.losses import (LossResult, MultiScaleLoss, fft_loss, l1_loss, mask_loss, shift_min, shifted_targets,
                         ssim_loss)
from lbag.models import DeblurOutput


def _img(b=2, h=48, w=48, seed=0):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_l1_fft_mask_by_hand():
    p, g = _img(seed=1), _img(seed=2)
    assert torch.allclose(l1_loss(p, g), (p - g).abs().flatten(1).mean(1))
    ref = (torch.fft.rfft2(p) - torch.fft.rfft2(g)).abs().flatten(1).mean(1)
    assert torch.allclose(fft_loss(p, g), ref)
    pm = torch.tensor([[[[1.5, 0.2], [-0.3, 0.7]]]])
    gm = torch.tensor([[[[0.4, 0.0], [0.0, 1.0]]]])
    # clamp -> [1, .2, 0, .7], binary target -> [1, 0, 0, 1]
    assert mask_loss(pm, gm).item() == pytest.approx((0.04 + 0.09) / 4)


def test_ssim_loss_matches_skimage():
    p, g = _img(b=1, seed=3).double(), _img(b=1, seed=4).double()
    ref = structural_similarity(p[0].numpy(), g[0].numpy(), gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=1, channel_axis=0)
    assert ssim_loss(p, g).item() == pytest.approx(1 - ref, abs=1e-10)


def test_shifted_targets_translate_by_one_pixel():
    g = _img(b=1, seed=5)
    s = shifted_targets(g)
    assert s.shape == (9, 1, 3, 48, 48)
    assert torch.equal(s[4], g)  # dx = dy = 0
    # index (dy + 1) * 3 + (dx + 1): dx = +1 moves the content right
    assert torch.equal(s[5][..., 1:], g[..., :-1])
    assert torch.equal(s[7][..., 1:, :], g[..., :-1, :])  # dy = +1 moves it down
    assert torch.equal(s[1][..., :-1, :], g[..., 1:, :])
    assert torch.equal(s[3][..., :-1], g[..., 1:])


def test_shift_min_recovers_one_pixel_shift():
    g = _img(b=2, seed=6)
    p = torch.roll(g, shifts=1, dims=-1)
    # Only the wrapped-around column differs from the dx = +1 translate.
    assert shift_min(l1_loss, p, g).max().item() < l1_loss(p, g).min().item() / 10
    assert torch.allclose(shift_min(l1_loss, g, g), torch.zeros(2))


def _output(h=48, w=48, seed=0, gated=True):
    full = _img(h=h, w=w, seed=seed).requires_grad_(True)
    sizes = [(math.ceil(h / 4), math.ceil(w / 4)), (math.ceil(h / 2), math.ceil(w / 2)), (h, w)]
    imgs = [F.interpolate(full, size=s, mode="bilinear", align_corners=False) if s != (h, w) else full
            for s in sizes]
    masks = [torch.sigmoid(i.mean(1, keepdim=True)) for i in imgs] if gated else [None] * 3
    return full, DeblurOutput(images=imgs, masks=masks)


def test_multiscale_loss_sums_terms_with_weights():
    full, out = _output(h=50, w=46)
    target = _img(h=50, w=46, seed=9)
    mask = (torch.rand(2, 1, 50, 46, generator=torch.Generator().manual_seed(1)) > 0.7).float()
    res = MultiScaleLoss(shift=False)(out, target, mask)
    assert isinstance(res, LossResult) and res.n_nan == 0
    exp = {"l1": 0.0, "ssim": 0.0, "fft": 0.0, "mask": 0.0}
    for img, gate in zip(out.images, out.masks):
        t = F.interpolate(target, size=img.shape[-2:], mode="bilinear", align_corners=False) \
            if img.shape[-2:] != target.shape[-2:] else target
        m = F.interpolate(mask, size=img.shape[-2:], mode="nearest")
        exp["l1"] += l1_loss(img, t).mean().item()
        exp["ssim"] += ssim_loss(img, t).mean().item()
        exp["fft"] += fft_loss(img, t).mean().item()
        exp["mask"] += mask_loss(gate, m).mean().item()
    for k, v in exp.items():
        assert res.terms[k] == pytest.approx(v, rel=1e-5)
    total = exp["l1"] + exp["ssim"] + 0.1 * exp["fft"] + 0.1 * exp["mask"]
    assert res.total.item() == pytest.approx(total, rel=1e-5)
    res.total.backward()
    assert full.grad is not None and torch.isfinite(full.grad).all() and full.grad.abs().sum() > 0


def test_switches_and_shift_lowers_loss():
    _, out = _output(seed=3)
    target = _img(seed=4)
    only_l1 = MultiScaleLoss(ssim=0, fft=0, mask=0, shift=False)(out, target, None)
    assert set(only_l1.terms) == {"l1", "total"}
    shifted = MultiScaleLoss(ssim=0, fft=0, mask=0, shift=True)(out, target, None)
    # The zero shift is one of the nine, so never higher; on random images another shift wins somewhere.
    assert shifted.terms["l1"] < only_l1.terms["l1"]
    _, ungated = _output(seed=3, gated=False)
    res = MultiScaleLoss()(ungated, target, torch.ones(2, 1, 48, 48))
    assert "mask" not in res.terms


def test_nan_term_dropped_and_counted():
    full, out = _output(seed=5)
    bad = out.images[0].detach().clone()
    bad[0, 0, 0, 0] = math.nan
    out = DeblurOutput(images=[bad, *out.images[1:]], masks=out.masks)
    res = MultiScaleLoss(mask=0, shift=False)(out, _img(seed=6), None)
    assert res.n_nan == 3  # l1, ssim and fft at the 1/4 scale
    assert math.isfinite(res.total.item())
    res.total.backward()
    assert torch.isfinite(full.grad).all()


def test_bad_inputs_raise():
    _, out = _output()
    with pytest.raises(ValueError, match="weight"):
        MultiScaleLoss(l1=-1)
    with pytest.raises(ValueError, match="does not match"):
        MultiScaleLoss()(out, _img(h=40, w=40), None)
    with pytest.raises(ValueError, match="mask"):
        MultiScaleLoss()(out, _img(), torch.ones(2, 3, 48, 48))
    with pytest.raises(ValueError, match="same shape"):
        l1_loss(_img(), _img(h=32))


@pytest.mark.parametrize("loss_fn", [l1_loss, ssim_loss], ids=["l1", "ssim"])
def test_shift_min_gradient_matches_finite_differences(loss_fn):
    """The shift-invariant minimum with the published terms: analytic gradients (prediction and target)
    equal central differences in float64 (random inputs: no two shifts tie, so the minimum is smooth)."""
    g = torch.Generator().manual_seed(3)
    pred = torch.rand(2, 1, 11, 12, dtype=torch.float64, generator=g).requires_grad_(True)
    target = torch.rand(2, 1, 11, 12, dtype=torch.float64, generator=g).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, t: shift_min(loss_fn, p, t), (pred, target), eps=1e-6, atol=1e-7)
