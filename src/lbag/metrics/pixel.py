"""Pixel metrics of *Real-World Deep Local Motion Deblurring* (Li et al., AAAI 2023): PSNR, SSIM and
their blur-mask-weighted versions PSNR_w and SSIM_w, batched.

Protocol (see the paper's evaluation code): prediction and ground truth are clamped to [0, 1] and
quantised to 8 bit before every metric; SSIM is the mean of the map of an 11x11 Gaussian window
(sigma 1.5) over the VALID region (no padding), per RGB channel, with C1 = 0.01^2 and C2 = 0.03^2.
This is the value of scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1)``, computed here with a separable convolution in torch.

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
        if image.dtype == np.uint8:
            arr = image.astype(np.float64) / 255.0
        elif image.dtype == np.uint16:
            arr = image.astype(np.float64) / 65535.0
        elif np.issubdtype(image.dtype, np.floating) or image.dtype == bool:
            arr = image.astype(np.float64)
        else:
            raise TypeError(f"{name}: unsupported numpy dtype {image.dtype}")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise ValueError(f"{name}: expected a numpy image (H, W, C) or (H, W), got shape {image.shape}")
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor or numpy array, got {type(image).__name__}")
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4:
        raise ValueError(f"{name}: expected shape (B, C, H, W) or (C, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor in [0, 1], got dtype {image.dtype}")
    return image


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the 8-bit grid, round(x * 255) / 255, as the protocol does."""
    # clamp() makes a copy, so the in-place steps after it never touch the caller's tensor.
    return x.clamp(0, 1).mul_(255.0).round_().div_(255.0)


def prepare_pair(pred, gt, quantize: bool = True, dtype: torch.dtype | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Check and normalise a prediction / ground-truth pair for the metrics.

    Args:
        pred, gt: images as accepted by :func:`to_tensor`, same shape, 3 channels.
        quantize: quantise both to 8 bit (the protocol); when False they are only clamped to [0, 1].
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
    if quantize:
        return quantize_8bit(p), quantize_8bit(g)
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


def _blur_valid(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of every channel, valid region only (no padding)."""
    c = x.shape[1]
    n = k.numel()
    x = F.conv2d(x, k.view(1, 1, 1, n).expand(c, 1, 1, n), groups=c)
    return F.conv2d(x, k.view(1, 1, n, 1).expand(c, 1, n, 1), groups=c)


def _ssim_map_cv2(p: np.ndarray, g: np.ndarray, k: np.ndarray, c1: float, c2: float) -> np.ndarray:
    """SSIM map of two (H, W, C) arrays with OpenCV's separable filter, valid region only.

    On CPU this is 10-50x faster than torch's depthwise conv2d at full resolution and exact in
    float64; the border mode is irrelevant because only the valid region is kept. In-place
    arithmetic keeps the memory traffic (the real cost at 2152x1436) low.
    """
    r = k.size // 2

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(a, -1, k, k, borderType=cv2.BORDER_REFLECT)[r:-r, r:-r]

    mu_p, mu_g = blur(p), blur(g)
    var_p = blur(p * p)
    var_g = blur(g * g)
    cov = blur(p * g)
    mu_pg = mu_p * mu_g
    mu_p *= mu_p
    mu_g *= mu_g
    var_p -= mu_p
    var_g -= mu_g
    cov -= mu_pg
    # numerator (2 mu_p mu_g + c1)(2 cov + c2), denominator (mu_p^2 + mu_g^2 + c1)(var_p + var_g + c2)
    mu_pg *= 2
    mu_pg += c1
    cov *= 2
    cov += c2
    mu_pg *= cov
    mu_p += mu_g
    mu_p += c1
    var_p += var_g
    var_p += c2
    mu_p *= var_p
    mu_pg /= mu_p
    return mu_pg


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
    mu_p, mu_g, e_pp, e_gg, e_pg = _blur_valid(stack, k).split(c, dim=1)
    var_p = e_pp - mu_p * mu_p
    var_g = e_gg - mu_g * mu_g
    cov = e_pg - mu_p * mu_g
    num = (2 * mu_p * mu_g + c1) * (2 * cov + c2)
    den = (mu_p * mu_p + mu_g * mu_g + c1) * (var_p + var_g + c2)
    return num / den


# --------------------------------------------------------------------------------------------------
# Metrics
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


def psnr(pred, gt, quantize: bool = True) -> torch.Tensor:
    """PSNR over all pixels and RGB channels, data range 1.

    Args:
        pred: prediction, (B, 3, H, W) in [0, 1] (or (3, H, W), or numpy (H, W, 3)).
        gt: ground truth, same shape.
        quantize: quantise both to 8 bit first (the protocol).

    Returns:
        (B,) PSNR in dB (inf where the images are identical).
    """
    p, g = prepare_pair(pred, gt, quantize)
    return _psnr_from_mse(((p - g) ** 2).mean(dim=(1, 2, 3)))


def ssim(pred, gt, quantize: bool = True) -> torch.Tensor:
    """SSIM: mean of the valid Gaussian SSIM map over pixels and RGB channels.

    Args:
        pred: prediction, (B, 3, H, W) in [0, 1] (or (3, H, W), or numpy (H, W, 3)); H, W >= 11.
        gt: ground truth, same shape.
        quantize: quantise both to 8 bit first (the protocol).

    Returns:
        (B,) SSIM values.
    """
    p, g = prepare_pair(pred, gt, quantize)
    return ssim_map(p, g).mean(dim=(1, 2, 3))


def psnr_weighted(pred, gt, mask, quantize: bool = True) -> torch.Tensor:
    """PSNR_w: PSNR of the squared error averaged over the blurred pixels only.

    MSE_w = sum((p - g)^2 * m) / (3 * sum(m)) with m the binary mask (> 0) broadcast over RGB.

    Args:
        pred: prediction, (B, 3, H, W) in [0, 1].
        gt: ground truth, same shape.
        mask: blur mask (B, 1, H, W) (or (B, H, W), (H, W), numpy (H, W)); > 0 means blurred.
        quantize: quantise images to 8 bit first (the protocol).

    Returns:
        (B,) PSNR_w in dB; NaN for an image whose mask is empty (the metric is undefined there).
    """
    p, g = prepare_pair(pred, gt, quantize)
    return _psnr_w((p - g) ** 2, prepare_mask(mask, p))


def ssim_weighted(pred, gt, mask, quantize: bool = True) -> torch.Tensor:
    """SSIM_w: the SSIM map averaged over the blurred pixels only.

    The mask is cropped by 5 px on every side to match the valid SSIM map; then
    SSIM_w = sum(map * m) / max(sum(m), 1) / 3 (the sum runs over the 3 channels of the map).

    Args:
        pred: prediction, (B, 3, H, W) in [0, 1]; H, W >= 11.
        gt: ground truth, same shape.
        mask: blur mask (B, 1, H, W) (or (B, H, W), (H, W), numpy (H, W)); > 0 means blurred.
        quantize: quantise images to 8 bit first (the protocol).

    Returns:
        (B,) SSIM_w; NaN for an image whose (uncropped) mask is empty.
    """
    p, g = prepare_pair(pred, gt, quantize)
    return _ssim_w(ssim_map(p, g), prepare_mask(mask, p))


def pixel_metrics(pred, gt, mask=None, quantize: bool = True) -> dict[str, torch.Tensor]:
    """PSNR, SSIM and (with a mask) PSNR_w, SSIM_w in one pass, sharing the SSIM map.

    Returns:
        dict name -> (B,) tensor with keys ``psnr``, ``ssim`` and, when ``mask`` is given,
        ``psnr_w``, ``ssim_w`` (NaN for empty masks).
    """
    p, g = prepare_pair(pred, gt, quantize)
    sq = (p - g) ** 2
    smap = ssim_map(p, g)
    out = {"psnr": _psnr_from_mse(sq.mean(dim=(1, 2, 3))), "ssim": smap.mean(dim=(1, 2, 3))}
    if mask is not None:
        m = prepare_mask(mask, p)
        out["psnr_w"] = _psnr_w(sq, m)
        out["ssim_w"] = _ssim_w(smap, m)
    return out


class PSNR(torch.nn.Module):
    """Module form of :func:`psnr`. Shape: (B, 3, H, W) x2 -> (B,)."""

    def __init__(self, quantize: bool = True) -> None:
        super().__init__()
        self.quantize = quantize

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        return psnr(pred, gt, self.quantize)


class SSIM(torch.nn.Module):
    """Module form of :func:`ssim`. Shape: (B, 3, H, W) x2 -> (B,)."""

    def __init__(self, quantize: bool = True) -> None:
        super().__init__()
        self.quantize = quantize

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        return ssim(pred, gt, self.quantize)
