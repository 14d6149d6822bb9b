"""Training objective of *Real-World Deep Local Motion Deblurring* (Li et al., AAAI 2023).

    L = sum_s [ w_l1 * L1(p_s, g_s) + w_ssim * (1 - SSIM(p_s, g_s)) + w_fft * FFT(p_s, g_s) ]
        + w_mask * sum_s MSE(clamp(m_s), mask_s > 0)

over the three output scales s in {1/4, 1/2, 1} of the MIMO-UNet/LBAG decoder, with the published
weights (1, 1, 0.1, 0.1). The ground-truth pyramid is made by bilinear resizing, the mask pyramid by
nearest. The shift-invariant operation compares each prediction with 9 copies of its target
translated by one pixel (dx, dy in {-1, 0, 1}) and keeps the smallest loss per sample, per term and
per scale: the beam-splitter pairs of ReLoBlur carry residual sub-pixel misalignment that the network
should not be asked to reproduce. It is not applied to the mask loss.

Each term is a plain function returning one value per sample (B,); :class:`MultiScaleLoss` combines
them. A term whose value is NaN is dropped from the step and counted instead of poisoning it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .metrics.pixel import ssim_map


def _check_pair(pred: torch.Tensor, target: torch.Tensor, name: str) -> None:
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"{name}: expected torch tensors, got {type(pred).__name__} and {type(target).__name__}")
    if pred.ndim != 4 or pred.shape != target.shape:
        raise ValueError(f"{name}: expected two (B, C, H, W) tensors of the same shape, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")


# --------------------------------------------------------------------------------------------------
# Terms (per sample)
# --------------------------------------------------------------------------------------------------

def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per sample (not mask-weighted).

    Args:
        pred: (B, C, H, W) prediction.
        target: (B, C, H, W) target.

    Returns:
        (B,) loss.
    """
    _check_pair(pred, target, "l1_loss")
    return (pred - target).abs().mean(dim=(1, 2, 3))


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - SSIM per sample: 11x11 Gaussian window, sigma 1.5, valid region, per channel, data range 1.

    Args:
        pred: (B, C, H, W) prediction in [0, 1]; H, W >= 11.
        target: (B, C, H, W) target.

    Returns:
        (B,) loss in [0, 2].
    """
    _check_pair(pred, target, "ssim_loss")
    return 1.0 - ssim_map(pred, target).mean(dim=(1, 2, 3))


def fft_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multi-scale frequency reconstruction term: mean modulus of the difference of the rfft2 spectra.

    Args:
        pred: (B, C, H, W) prediction.
        target: (B, C, H, W) target.

    Returns:
        (B,) loss.
    """
    _check_pair(pred, target, "fft_loss")
    diff = torch.fft.rfft2(pred.float()) - torch.fft.rfft2(target.float())
    return diff.abs().mean(dim=(1, 2, 3)).to(pred.dtype)


def mask_loss(pred_mask: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """MSE between the clamped predicted gate mask and the binary ground-truth blur mask (> 0).

    Args:
        pred_mask: (B, 1, H, W) predicted gate.
        target_mask: (B, 1, H, W) ground-truth mask (any non-negative values; > 0 means blurred).

    Returns:
        (B,) loss.
    """
    _check_pair(pred_mask, target_mask, "mask_loss")
    return ((pred_mask.clamp(0, 1) - (target_mask > 0).to(pred_mask.dtype)) ** 2).mean(dim=(1, 2, 3))


def shifted_targets(target: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """The (2r+1)^2 translates of ``target`` by dx, dy in [-r, r], reflect-padded on the side moved in.

    Args:
        target: (B, C, H, W) with H, W > r.
        radius: largest translation in pixels.

    Returns:
        ((2r+1)^2, B, C, H, W); index (dy + r) * (2r+1) + (dx + r); entry i holds target moved by
        (dx, dy), i.e. ``out[i][..., y, x] = target[..., y - dy, x - dx]`` inside the image.
    """
    h, w = target.shape[-2:]
    padded = F.pad(target, (radius,) * 4, mode="reflect")
    shifts = range(-radius, radius + 1)
    return torch.stack([padded[..., radius - dy:radius - dy + h, radius - dx:radius - dx + w]
                        for dy in shifts for dx in shifts])


def shift_min(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], pred: torch.Tensor,
              target: torch.Tensor, radius: int = 1, shifted: torch.Tensor | None = None) -> torch.Tensor:
    """Shift-invariant loss: the minimum of ``loss_fn`` over the one-pixel translates of the target.

    Args:
        loss_fn: per-sample loss (B, C, H, W) x2 -> (B,).
        pred: (B, C, H, W) prediction.
        target: (B, C, H, W) target.
        radius: largest translation (1 gives the published 9 shifts).
        shifted: ``shifted_targets(target, radius)`` when the caller already has it (several terms
            compared with the same target).

    Returns:
        (B,) per-sample minimum over the shifts.
    """
    _check_pair(pred, target, "shift_min")
    if shifted is None:
        shifted = shifted_targets(target, radius)  # (S, B, C, H, W)
    s, b = shifted.shape[:2]
    # One batched call over all shifts instead of S calls: same numbers, far fewer kernel launches.
    losses = loss_fn(pred.unsqueeze(0).expand_as(shifted).reshape(s * b, *pred.shape[1:]),
                     shifted.reshape(s * b, *pred.shape[1:]))
    return losses.view(s, b).min(dim=0).values


# --------------------------------------------------------------------------------------------------
# The multi-scale objective
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LossResult:
    """What :class:`MultiScaleLoss` returns.

    Attributes:
        total: scalar tensor to call ``backward()`` on (a zero that needs grad if every term was NaN).
        terms: unweighted value of each active term summed over the scales, for logging
            (``'l1'``, ``'ssim'`` (= 1 - SSIM), ``'fft'``, ``'mask'``), plus ``'total'``.
        n_nan: number of (term, scale) values that were NaN and were dropped.
    """

    total: torch.Tensor
    terms: dict[str, float] = field(default_factory=dict)
    n_nan: int = 0


def _resize_like(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


class MultiScaleLoss(nn.Module):
    """The published LBAG training loss over the three decoder scales.

    Args:
        l1: weight of the L1 term (0 disables it).
        ssim: weight of the 1 - SSIM term (0 disables it).
        fft: weight of the frequency term (0 disables it).
        mask: weight of the gate-mask MSE (0 disables it; also skipped for ungated models or when no
            mask is given).
        shift: apply the shift-invariant minimum over 9 one-pixel translates to L1, SSIM and FFT.

    Shape:
        output: :class:`lbag.models.DeblurOutput` with images [(B,3,ceil(H/4),ceil(W/4)),
        (B,3,ceil(H/2),ceil(W/2)), (B,3,H,W)] and masks of the same sizes with 1 channel (or None).
        target: (B, 3, H, W) in [0, 1]; mask: (B, 1, H, W) or None.
    """

    def __init__(self, l1: float = 1.0, ssim: float = 1.0, fft: float = 0.1, mask: float = 0.1,
                 shift: bool = True) -> None:
        super().__init__()
        for name, w in (("l1", l1), ("ssim", ssim), ("fft", fft), ("mask", mask)):
            if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
                raise ValueError(f"MultiScaleLoss: weight {name} must be a finite number >= 0, got {w!r}")
        self.weights = {"l1": float(l1), "ssim": float(ssim), "fft": float(fft), "mask": float(mask)}
        self.shift = bool(shift)
        self._image_terms = {"l1": l1_loss, "ssim": ssim_loss, "fft": fft_loss}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.weights.items()) + f", shift={self.shift}"

    def forward(self, output, target: torch.Tensor, mask: torch.Tensor | None = None) -> LossResult:
        images = list(output.images)
        masks = list(getattr(output, "masks", None) or [None] * len(images))
        if target.ndim != 4 or target.shape[1] != images[-1].shape[1]:
            raise ValueError(f"MultiScaleLoss: target must be (B, 3, H, W), got {tuple(target.shape)}")
        if tuple(images[-1].shape) != tuple(target.shape):
            raise ValueError(f"MultiScaleLoss: full-scale output {tuple(images[-1].shape)} does not match "
                             f"the target {tuple(target.shape)}")
        if mask is not None and (mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] != target.shape[0]
                                 or mask.shape[-2:] != target.shape[-2:]):
            raise ValueError(f"MultiScaleLoss: mask must be (B, 1, H, W) matching the target "
                             f"{tuple(target.shape)}, got {tuple(mask.shape)}")

        parts: list[tuple[str, torch.Tensor]] = []
        active = [(name, fn) for name, fn in self._image_terms.items() if self.weights[name] != 0]
        for pred in images:
            tgt = _resize_like(target, pred.shape[-2:], "bilinear")
            shifted = shifted_targets(tgt) if self.shift and active else None  # shared by the terms
            for name, fn in active:
                per_sample = shift_min(fn, pred, tgt, shifted=shifted) if self.shift else fn(pred, tgt)
                parts.append((name, per_sample.mean()))
        if self.weights["mask"] > 0 and mask is not None:
            for gate in masks:
                if gate is not None:
                    parts.append(("mask", mask_loss(gate, _resize_like(mask, gate.shape[-2:], "nearest")).mean()))

        # One device-to-host copy for every logged value (a sync per term would stall a GPU step).
        values = torch.stack([v.detach().float() for _, v in parts]).tolist() if parts else []
        total = None
        terms: dict[str, float] = {}
        n_nan = 0
        for (name, value), number in zip(parts, values):
            if not math.isfinite(number):  # a NaN/inf term is left out of the sum and counted
                n_nan += 1
                continue
            terms[name] = terms.get(name, 0.0) + number
            weighted = self.weights[name] * value
            total = weighted if total is None else total + weighted
        if total is None:
            # Every term was NaN (or all disabled): a zero the optimiser step can safely ignore.
            total = torch.zeros((), device=target.device, dtype=target.dtype, requires_grad=True)
        terms["total"] = sum(self.weights[name] * terms[name] for name in terms)
        return LossResult(total=total, terms=terms, n_nan=n_nan)
