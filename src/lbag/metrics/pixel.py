"""Pixel metrics of *Real-World Deep Local Motion Deblurring* (Li et al., AAAI 2023): PSNR, SSIM and
their blur-mask-weighted versions PSNR_w and SSIM_w, batched.

Protocol (see the paper's evaluation code): prediction and ground truth are clamped to [0, 1] and
quantised to 8 bit before every metric; SSIM is the mean of the map of an 11x11 Gaussian window
(sigma 1.5) over the VALID region (no padding), per RGB channel, with C1 = 0.01^2 and C2 = 0.03^2.
This is the value of scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1)``.

This module holds what both paths share -- input checks and conversions, 8-bit quantisation
(:func:`quantize_u8`), the SSIM formula (:func:`ssim_from_moments`) and the differentiable SSIM map
(:func:`ssim_map`, which the SSIM loss uses) -- and the float metrics :func:`psnr_float`,
:func:`ssim_float`, :func:`psnr_weighted_float`, :func:`ssim_weighted_float`, :func:`pixel_metrics_float`
(images only clamped to [0, 1], not quantised). The published 8-bit metrics are in
:mod:`lbag.metrics.protocol8`.

Every function takes (B, 3, H, W) tensors (or a single (3, H, W) tensor, or a numpy (H, W, 3) image)
and returns one value per image, shape (B,). Unlike the authors' code they are correct at any batch
size: nothing is averaged across images.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..pixels import hwc_to_chw, to_float64, to_uint8_exact

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2
# Half the window: the SSIM map is this many pixels smaller than the image on every side.
SSIM_CROP = SSIM_WINDOW // 2


def to_tensor(image, name: str = "image") -> torch.Tensor:
    """Bring an image to a float (B, C, H, W) tensor in [0, 1]'s scale.

    Args:
        image: a torch tensor (B, C, H, W) or (C, H, W), or a numpy array (H, W, C) or (H, W);
            numpy uint8 is divided by 255, uint16 by 65535, floats are taken as they are.
        name: what to call the input in error messages.

    Returns:
        A floating-point tensor (B, C, H, W) (float64 for numpy input, the input dtype otherwise).
    """
    if isinstance(image, np.ndarray):
        arr = to_float64(image, name)
        if arr.ndim not in (2, 3):
            raise ValueError(f"{name}: expected a numpy image (H, W, C) or (H, W), got shape {image.shape}")
        return hwc_to_chw(arr)[None]
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor or numpy array, got {type(image).__name__}")
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4:
        raise ValueError(f"{name}: expected shape (B, C, H, W) or (C, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor in [0, 1], got dtype {image.dtype}")
    return image


def prepare_pair(pred, gt, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Check and normalise a prediction / ground-truth pair for the float metrics: clamp to [0, 1].

    Args:
        pred, gt: images as accepted by :func:`to_tensor`, same shape, 3 channels.
        dtype: computation dtype; default float64 on CPU (exact agreement with scikit-image at
            negligible cost), float32 on other devices.

    Returns:
        ``(pred, gt)`` as (B, 3, H, W) tensors of ``dtype``.
    """
    p, g = to_tensor(pred, "pred"), to_tensor(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt must have the same shape, got {tuple(p.shape)} and {tuple(g.shape)}")
    if p.shape[1] != 3:
        raise ValueError(f"expected RGB images with 3 channels, got {p.shape[1]}")
    if dtype is None:
        dtype = torch.float64 if p.device.type == "cpu" else torch.float32
    g = g.to(device=p.device, dtype=dtype)
    p = p.to(dtype=dtype)
    return p.clamp(0, 1), g.clamp(0, 1)


def prepare_mask(mask, like: torch.Tensor) -> torch.Tensor:
    """Binary blur mask (B, 1, H, W) of ``like``'s dtype: 1 where the mask is > 0.

    Accepts (B, 1, H, W), (B, H, W), (H, W) tensors or a numpy (H, W) / (H, W, 1) array; a
    3-channel mask uses its first channel.
    """
    if isinstance(mask, np.ndarray):
        m = torch.from_numpy(np.ascontiguousarray(mask.reshape(mask.shape[0], mask.shape[1], -1)[:, :, 0]))[None, None]
    elif isinstance(mask, torch.Tensor):
        m = mask
        if m.ndim == 2:
            m = m[None, None]
        elif m.ndim == 3:
            m = m[:, None]
        if m.ndim != 4:
            raise ValueError(f"mask: expected (B, 1, H, W), (B, H, W) or (H, W), got {tuple(mask.shape)}")
        m = m[:, :1]
    else:
        raise TypeError(f"mask: expected a torch.Tensor or numpy array, got {type(mask).__name__}")
    b, _, h, w = like.shape
    if m.shape[-2:] != (h, w) or m.shape[0] not in (1, b):
        raise ValueError(f"mask of shape {tuple(m.shape)} does not match images of shape {tuple(like.shape)}")
    return (m.to(like.device) > 0).to(like.dtype).expand(b, 1, h, w)


# --------------------------------------------------------------------------------------------------
# SSIM map (shared with the SSIM loss)
# --------------------------------------------------------------------------------------------------

def gaussian_kernel1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, dtype=torch.float64,
                      device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps (the same weights scipy's ``gaussian_filter`` uses)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return (k / k.sum()).to(dtype=dtype, device=device)


# Rows per block when ssim_from_moments writes into ``out``: temporaries of about this many bytes stay
# in the L2 cache and are reused by malloc (at 1 MB and more each one is a fresh mmap, i.e. page faults).
_FORMULA_BLOCK_BYTES = 192 * 1024


def ssim_from_moments(mu_p, mu_g, e_pp, e_gg, e_pg, c1: float = SSIM_C1, c2: float = SSIM_C2, out=None):
    """The SSIM formula (Wang et al. 2004, eq. 13) from local statistics; the one every path uses.

    Args:
        mu_p, mu_g: local means of prediction and ground truth.
        e_pp, e_gg, e_pg: local means of p^2, g^2 and p*g (the variances and the covariance follow
            as e_pp - mu_p^2, e_gg - mu_g^2, e_pg - mu_p mu_g).
        c1, c2: stabilisers in the units of the data, (0.01 L)^2 and (0.03 L)^2 for data range L.
        out: numpy only: an array of the moments' shape to write the map into, a few rows at a time
            (small temporaries; the values are those of one call, the formula being elementwise).

    The moments are numpy arrays or torch tensors of one shape and are never modified, so autograd
    can differentiate through the formula.

    Returns:
        The SSIM map, (2 mu_p mu_g + c1)(2 cov + c2) / ((mu_p^2 + mu_g^2 + c1)(var_p + var_g + c2));
        ``out`` when given.
    """
    if out is not None:
        step = max(1, _FORMULA_BLOCK_BYTES // max(out[:1].nbytes, 1))
        for y0 in range(0, out.shape[0], step):
            rows = slice(y0, y0 + step)
            out[rows] = ssim_from_moments(*(m[rows] for m in (mu_p, mu_g, e_pp, e_gg, e_pg)), c1, c2)
        return out
    var_p = e_pp - mu_p * mu_p
    var_g = e_gg - mu_g * mu_g
    cov = e_pg - mu_p * mu_g
    num = (2 * mu_p * mu_g + c1) * (2 * cov + c2)
    den = (mu_p * mu_p + mu_g * mu_g + c1) * (var_p + var_g + c2)
    return num / den


def _blur_valid(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of every channel, valid region only (no padding)."""
    c = x.shape[1]
    n = k.numel()
    x = F.conv2d(x, k.view(1, 1, 1, n).expand(c, 1, 1, n), groups=c)
    return F.conv2d(x, k.view(1, 1, n, 1).expand(c, 1, n, 1), groups=c)


def _ssim_map_cv2(p: np.ndarray, g: np.ndarray, k: np.ndarray, c1: float, c2: float) -> np.ndarray:
    """SSIM map of two (H, W, C) arrays with OpenCV's separable filter, valid region only.

    On CPU this is 10-50x faster than torch's depthwise conv2d at full resolution and exact in
    float64; the border mode is irrelevant because only the valid region is kept. The formula runs
    over a few rows of the filtered moments at a time (``out=``): the temporaries stay in cache, which
    keeps the memory traffic (the real cost at 2152x1436) low.

    Returns:
        The (H - 2r, W - 2r, C) map ((H - 2r, W - 2r) for one channel), C-contiguous.
    """
    r = k.size // 2

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(a, -1, k, k, borderType=cv2.BORDER_REFLECT)[r:-r, r:-r]

    moments = (blur(p), blur(g), blur(p * p), blur(g * g), blur(p * g))
    return ssim_from_moments(*moments, c1, c2, out=np.empty(moments[0].shape, moments[0].dtype))


def ssim_map(pred: torch.Tensor, gt: torch.Tensor, window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA,
             c1: float = SSIM_C1, c2: float = SSIM_C2) -> torch.Tensor:
    """SSIM map with a Gaussian window over the valid region, per channel.

    Args:
        pred, gt: (B, C, H, W) float tensors with data range 1; H, W >= ``window``.
        window: window side (odd).
        sigma: Gaussian standard deviation in pixels.
        c1, c2: stabilisers, (0.01 * L)^2 and (0.03 * L)^2 for data range L = 1.

    Returns:
        (B, C, H - window + 1, W - window + 1) SSIM values; differentiable.
    """
    if pred.shape != gt.shape or pred.ndim != 4:
        raise ValueError(f"ssim_map expects two (B, C, H, W) tensors of the same shape, got "
                         f"{tuple(pred.shape)} and {tuple(gt.shape)}")
    if min(pred.shape[-2:]) < window:
        raise ValueError(f"SSIM needs images of at least {window}x{window} pixels, got "
                         f"{pred.shape[-2]}x{pred.shape[-1]}")
    k = gaussian_kernel1d(window, sigma, pred.dtype, pred.device)
    b, c = pred.shape[:2]
    if pred.device.type == "cpu" and not (torch.is_grad_enabled() and (pred.requires_grad or gt.requires_grad)):
        kn = k.numpy()
        maps = [_ssim_map_cv2(np.ascontiguousarray(pred[i].detach().permute(1, 2, 0).numpy()),
                              np.ascontiguousarray(gt[i].detach().permute(1, 2, 0).numpy()), kn, c1, c2)
                for i in range(b)]
        # (H', W', C) -> (C, H', W') as views; one image needs no copy at all.
        maps = [torch.from_numpy(m if m.ndim == 3 else m[:, :, None]).permute(2, 0, 1) for m in maps]
        return maps[0][None] if b == 1 else torch.stack(maps)
    # One grouped convolution for the five local moments: fewer passes over a full-resolution image.
    stack = torch.cat([pred, gt, pred * pred, gt * gt, pred * gt], dim=1)
    return ssim_from_moments(*_blur_valid(stack, k).split(c, dim=1), c1, c2)


# --------------------------------------------------------------------------------------------------
# 8-bit quantisation: the input of the published protocol (its metrics: lbag.metrics.protocol8)
# --------------------------------------------------------------------------------------------------

def quantize_u8(image, name: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """Quantise images to the protocol's 8-bit grid as uint8 (B, H, W, C) arrays.

    The value is round(clamp(x, 0, 1) * 255) with round-half-to-even, computed in float64 so that it
    is exact for float32 input (:func:`lbag.pixels.to_uint8_exact`). uint8 input is used
    as it is; uint16 is scaled by 1/65535 first (as :func:`to_tensor` does).

    Args:
        image: (B, C, H, W) / (C, H, W) tensor in [0, 1], or a numpy (H, W, C) / (H, W) image.
        name: what to call the input in error messages.

    Returns:
        ``(u8, has_nan)``: the (B, H, W, C) uint8 array and a (B,) bool array, True for an image
        that contained NaN (its metrics are NaN, as on the float path).
    """
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3:
            raise ValueError(f"{name}: expected a numpy image (H, W, C) or (H, W), got shape {image.shape}")
        if image.dtype == np.uint8:
            return np.ascontiguousarray(image)[None], np.zeros(1, bool)
        # floats go straight to the float64 product below; uint16 is scaled first (other types: TypeError)
        views = [image if np.issubdtype(image.dtype, np.floating) or image.dtype == bool else to_float64(image, name)]
    else:
        t = to_tensor(image, name).detach()
        if t.device.type != "cpu":
            # Quantise where the data is; only one byte per value crosses to the host.
            q = t.clamp(0, 1).mul(255.0).round()
            nan = torch.isnan(q).flatten(1).any(dim=1).cpu().numpy()
            return np.ascontiguousarray(q.nan_to_num(0).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()), nan
        if t.dtype not in (torch.float32, torch.float64):
            t = t.float()  # half / bfloat16 have no numpy view; both widen exactly
        views = list(t.permute(0, 2, 3, 1).numpy())
    out = np.empty((len(views),) + views[0].shape, np.uint8)
    nan = np.zeros(len(views), bool)
    buf = np.empty(views[0].shape, np.float64)
    for i, v in enumerate(views):
        # float32 * 255 is exact in float64, so rint sees the true product (no float32 tie errors).
        nan[i] = to_uint8_exact(v, out=out[i], scratch=buf)[1]
    return out, nan


def quantize_pair_u8(pred, gt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`quantize_u8` of a prediction / ground-truth pair with the checks of :func:`prepare_pair`.

    Returns:
        ``(pred_u8, gt_u8, has_nan)``: two (B, H, W, 3) uint8 arrays and a (B,) bool array.
    """
    p, pn = quantize_u8(pred, "pred")
    g, gn = quantize_u8(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt must have the same shape, got {_chw(p.shape)} and {_chw(g.shape)}")
    if p.shape[3] != 3:
        raise ValueError(f"expected RGB images with 3 channels, got {p.shape[3]}")
    return p, g, pn | gn


def _chw(shape: tuple) -> tuple:
    """(B, H, W, C) -> (B, C, H, W), to report shapes as the tensor API spells them."""
    return (shape[0], shape[3], shape[1], shape[2])


def psnr_db(mse: float) -> float:
    """PSNR in dB of a mean squared error on data of range 1: 10 log10(1 / mse), inf for mse 0."""
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


# --------------------------------------------------------------------------------------------------
# Float metrics: no quantisation (the protocol's 8-bit metrics are in lbag.metrics.protocol8)
# --------------------------------------------------------------------------------------------------

def _psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    # 10 log10(1 / 0) = inf for identical images, as scikit-image returns.
    return 10.0 * torch.log10(1.0 / mse)


def _psnr_w(sq_err: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """PSNR_w from the squared error (B, 3, H, W) and the binary mask (B, 1, H, W)."""
    area = m.sum(dim=(1, 2, 3))
    mse = (sq_err * m).sum(dim=(1, 2, 3)) / (3 * area)
    return torch.where(area > 0, _psnr_from_mse(mse), torch.full_like(mse, math.nan))


def _ssim_w(smap: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """SSIM_w from the valid SSIM map and the binary full-size mask (cropped here to the map)."""
    mc = m[..., SSIM_CROP:-SSIM_CROP, SSIM_CROP:-SSIM_CROP]
    val = (smap * mc).sum(dim=(1, 2, 3)) / mc.sum(dim=(1, 2, 3)).clamp_min(1) / 3
    return torch.where(m.sum(dim=(1, 2, 3)) > 0, val, torch.full_like(val, math.nan))


def psnr_float(pred, gt) -> torch.Tensor:
    """PSNR (:func:`lbag.metrics.protocol8.psnr`, the published metric, for definition and arguments) of
    the images clamped to [0, 1], not quantised to 8 bit: (B,) values in dB, inf for identical images."""
    p, g = prepare_pair(pred, gt)
    return _psnr_from_mse(((p - g) ** 2).mean(dim=(1, 2, 3)))


def ssim_float(pred, gt) -> torch.Tensor:
    """SSIM (:func:`lbag.metrics.protocol8.ssim`, the published metric, for definition and arguments) of
    the images clamped to [0, 1], not quantised to 8 bit: (B,) values."""
    p, g = prepare_pair(pred, gt)
    return ssim_map(p, g).mean(dim=(1, 2, 3))


def psnr_weighted_float(pred, gt, mask) -> torch.Tensor:
    """PSNR_w (:func:`lbag.metrics.protocol8.psnr_weighted`, the published metric, for definition and
    arguments) of the images clamped to [0, 1], not quantised: (B,) values in dB, NaN for an empty mask."""
    p, g = prepare_pair(pred, gt)
    return _psnr_w((p - g) ** 2, prepare_mask(mask, p))


def ssim_weighted_float(pred, gt, mask) -> torch.Tensor:
    """SSIM_w (:func:`lbag.metrics.protocol8.ssim_weighted`, the published metric, for definition and
    arguments) of the images clamped to [0, 1], not quantised: (B,) values, NaN for an empty mask."""
    p, g = prepare_pair(pred, gt)
    return _ssim_w(ssim_map(p, g), prepare_mask(mask, p))


def pixel_metrics_float(pred, gt, mask=None) -> dict[str, torch.Tensor]:
    """PSNR, SSIM and (with a mask) PSNR_w, SSIM_w of the images clamped to [0, 1], not quantised, in
    one pass sharing the SSIM map; the keys of :func:`lbag.metrics.protocol8.pixel_metrics`."""
    p, g = prepare_pair(pred, gt)
    sq = (p - g) ** 2
    smap = ssim_map(p, g)
    out = {"psnr": _psnr_from_mse(sq.mean(dim=(1, 2, 3))), "ssim": smap.mean(dim=(1, 2, 3))}
    if mask is not None:
        m = prepare_mask(mask, p)
        out["psnr_w"] = _psnr_w(sq, m)
        out["ssim_w"] = _ssim_w(smap, m)
    return out
