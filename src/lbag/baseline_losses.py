"""Training objectives of the Table 1 baselines, as their authors train them.

* DeepDeblur (Nah et al. 2017; official PyTorch ``--loss 1*L1``, the GOPRO_L1 model): the multi-scale
  content loss, the sum over the 3 scales of the mean absolute error between each output and the level
  of the sharp image's Gaussian pyramid at that scale, in the network's [0, 255] range (so the values
  are the official ones; Adam is indifferent to the constant factor).
* SRN-DeblurNet (Tao et al. 2018): the sum over the 3 scales of the mean squared error, the target
  resized to each output with TensorFlow 1's bilinear ``resize_images`` (no half-pixel offset: a
  2x reduction keeps every 2nd pixel).
* HINet (Chen et al. 2021) and NAFNet (Chen et al. 2022): the PSNR loss of their BasicSR code,
  ``w * 10 / ln 10 * mean_b log(MSE_b + 1e-8)`` (the negative PSNR up to a constant) summed over the
  network's outputs (HINet: both stages, ``w`` = 0.5; NAFNet: one output, ``w`` = 1).

Every objective is an ``nn.Module`` called like :class:`lbag.losses.MultiScaleLoss`,
``criterion(output, target, mask=None) -> LossResult`` (the mask is not used), so the training loop
runs any of them; :func:`baseline_loss` builds one by the ``loss.kind`` of a config. As in the LBAG
loss, a NaN/inf term is left out of the sum and counted instead of poisoning the step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .losses import LossResult

__all__ = ["BaselineLoss", "MultiScaleL1Loss", "MultiScaleMSELoss", "PSNRLoss", "baseline_loss", "KINDS",
           "tf1_resize_bilinear"]


def tf1_resize_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TensorFlow 1 ``tf.image.resize_images(x, size, method=BILINEAR)`` of (B, C, H, W).

    TF1's default bilinear resize has no half-pixel offset: output index o reads input position
    o * in / out, linearly interpolated, the upper neighbour clamped to the last pixel.
    """
    def axis(t: torch.Tensor, dim: int, n_out: int) -> torch.Tensor:
        n_in = t.shape[dim]
        if n_in == n_out:
            return t
        pos = torch.arange(n_out, device=t.device, dtype=torch.float64) * (n_in / n_out)
        lo = pos.floor().long().clamp_max(n_in - 1)
        hi = (lo + 1).clamp_max(n_in - 1)
        shape = [1] * t.dim()
        shape[dim] = n_out
        frac = (pos - lo.to(torch.float64)).to(t.dtype).view(shape)
        a, b = t.index_select(dim, lo), t.index_select(dim, hi)
        return a + (b - a) * frac

    return axis(axis(x, 2, size[0]), 3, size[1])


class BaselineLoss(nn.Module):
    """Shared plumbing: checks the inputs, sums the finite per-output terms, reports them.

    Subclasses implement :meth:`terms`, one unweighted scalar per output image, and set ``name`` and
    ``weight``.
    """

    name = "loss"
    weight = 1.0

    def terms(self, images: list[torch.Tensor], target: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"weight={self.weight}"

    def forward(self, output, target: torch.Tensor, mask: torch.Tensor | None = None) -> LossResult:
        images = list(output.images)
        if target.ndim != 4 or target.shape[1] != images[-1].shape[1]:
            raise ValueError(f"{type(self).__name__}: target must be (B, 3, H, W), got {tuple(target.shape)}")
        if tuple(images[-1].shape) != tuple(target.shape):
            raise ValueError(f"{type(self).__name__}: full-scale output {tuple(images[-1].shape)} does not "
                             f"match the target {tuple(target.shape)}")
        parts = self.terms(images, target)
        values = torch.stack([p.detach().float() for p in parts]).tolist()  # one device-to-host copy
        finite = [(p, v) for p, v in zip(parts, values) if math.isfinite(v)]
        n_nan = len(parts) - len(finite)
        if finite:
            total = self.weight * sum(p for p, _ in finite)
            terms = {self.name: sum(v for _, v in finite)}
        else:  # nothing finite: a zero the optimiser step can safely ignore
            total = torch.zeros((), device=target.device, dtype=target.dtype, requires_grad=True)
            terms = {}
        terms["total"] = self.weight * terms.get(self.name, 0.0)
        return LossResult(total=total, terms=terms, n_nan=n_nan)


class MultiScaleL1Loss(BaselineLoss):
    """DeepDeblur's multi-scale content loss: sum over scales of mean |output - Gaussian-pyramid target|.

    Args:
        rgb_range: the range the official loss is computed in (255: the official values).
        weight: factor of the sum (official ``1*L1``: 1).
    """

    name = "l1"

    def __init__(self, rgb_range: float = 255.0, weight: float = 1.0) -> None:
        super().__init__()
        self.rgb_range, self.weight = float(rgb_range), float(weight)

    def terms(self, images: list[torch.Tensor], target: torch.Tensor) -> list[torch.Tensor]:
        from .models.deepdeblur import PAD_MULTIPLE, gaussian_pyramid

        h, w = target.shape[-2:]
        # The model edge-pads its input before building the pyramid; the targets are made the same way.
        padded = F.pad(target, (0, (-w) % PAD_MULTIPLE, 0, (-h) % PAD_MULTIPLE), mode="replicate")
        pyramid = gaussian_pyramid(padded, len(images))[::-1]  # coarse -> fine, like the outputs
        out = []
        for pred, level in zip(images, pyramid):
            tgt = level[..., :pred.shape[-2], :pred.shape[-1]]
            if tgt.shape != pred.shape:
                raise ValueError(f"MultiScaleL1Loss: output {tuple(pred.shape)} does not fit the pyramid level "
                                 f"{tuple(level.shape)}")
            out.append((pred - tgt).abs().mean() * self.rgb_range)
        return out


class MultiScaleMSELoss(BaselineLoss):
    """SRN-DeblurNet's loss: sum over scales of the MSE to the target resized as TF1 resizes it."""

    name = "mse"

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = float(weight)

    def terms(self, images: list[torch.Tensor], target: torch.Tensor) -> list[torch.Tensor]:
        return [((pred - tf1_resize_bilinear(target, tuple(pred.shape[-2:]))) ** 2).mean() for pred in images]


class PSNRLoss(BaselineLoss):
    """BasicSR's PSNR loss, ``10 / ln 10 * mean_b log(MSE_b + 1e-8)`` per output, summed and weighted.

    Every output must have the target's size (HINet's two stages, NAFNet's single output).
    """

    name = "psnr"

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = float(weight)

    def terms(self, images: list[torch.Tensor], target: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for pred in images:
            if pred.shape != target.shape:
                raise ValueError(f"PSNRLoss: every output must match the target {tuple(target.shape)}, got "
                                 f"{tuple(pred.shape)}")
            mse = ((pred - target) ** 2).mean(dim=(1, 2, 3))
            out.append(10.0 / math.log(10.0) * torch.log(mse + 1e-8).mean())
        return out


# loss.kind -> the published objective of that family.
KINDS = {
    "deepdeblur": lambda: MultiScaleL1Loss(rgb_range=255.0, weight=1.0),
    "srn": lambda: MultiScaleMSELoss(weight=1.0),
    "hinet": lambda: PSNRLoss(weight=0.5),
    "nafnet": lambda: PSNRLoss(weight=1.0),
}


def baseline_loss(kind: str) -> BaselineLoss:
    """The published training objective of a baseline family (``deepdeblur``, ``srn``, ``hinet``, ``nafnet``)."""
    try:
        return KINDS[kind]()
    except KeyError:
        raise ValueError(f"unknown baseline loss {kind!r}; choose one of {sorted(KINDS)}") from None
