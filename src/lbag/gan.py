"""The DeblurGAN-v2 training objective (Kupyn et al., ICCV 2019), for the Table 1 baseline.

    L_G = w_c * L_content + w_p * L_perceptual + w_adv * L_adv,G        (paper: 0.5, 0.006, 0.01)
    L_D = w_adv * L_adv,D

* ``L_content``: MSE between the ImageNet-normalised images (the official ``PerceptualLoss`` adds
  ``0.5 * MSE`` of the images it has normalised for VGG);
* ``L_perceptual``: MSE between VGG19 ``conv3_3`` feature maps (before its ReLU; layers 0-14 of
  torchvision's ``vgg19().features``) of the result and of the sharp image. The ImageNet VGG19 weights
  are read from a file named in the config (``gan.vgg19_weights``); nothing is downloaded;
* ``L_adv``: RaGAN-LS, the relativistic average least-squares GAN, with the double-scale discriminator:
  a 3-layer PatchGAN (70x70 patches) and a 5-layer one that sees the whole 256x256 crop, each with its
  own loss, averaged. As in the official code, the "average" of the other class is the mean of the
  discriminator outputs of the last 50 images seen by that discriminator (detached), and the
  discriminator loss is scaled by ``w_adv`` too (``loss_D = adv_lambda * ...``).

Differences from the official code, on purpose: every image of a batch is ImageNet-normalised (the
official code normalises only the first one, which is the whole batch at its batch size of 1); the
default adversarial weight is the paper's 0.01 (the official config uses ``adv_lambda: 0.001``).

Images passed in are RGB in [0, 1] (what :class:`lbag.models.DeblurOutput` holds); the discriminators
see them in [-1, 1], as in the official training. A training step, as the official trainer orders it::

    out = generator(blur).images[-1]
    loss_d = objective.discriminator_step(out, sharp, opt_d)   # D first, on the detached result
    result = objective.generator_loss(out, sharp)               # then G
    opt_g.zero_grad(); result.total.backward(); opt_g.step()
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import ConfigError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "DeblurGANv2Criterion", "DeblurGANv2Loss", "GLossResult",
           "NLayerDiscriminator", "RaGANLS", "VGG19Conv33", "load_vgg19_features"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG_KEY = "gan.vgg19_weights"


# --- perceptual features ----------------------------------------------------------------------------
class VGG19Conv33(nn.Module):
    """VGG19 (Simonyan & Zisserman 2015) from the input to ``conv3_3``, frozen.

    ``features.0`` ... ``features.14`` have torchvision's indices (conv, ReLU, max-pool as in
    ``vgg19().features``), so its ImageNet state_dict loads directly. Input: RGB in [0, 1]; the
    ImageNet mean/std normalisation happens inside.
    """

    # channels of the 3x3 convs, "M" a 2x2 max-pool: conv1_1 ... conv3_3
    LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256)

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in self.LAYOUT:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                cin = int(v)
        layers.pop()  # conv3_3 is taken before its ReLU (the official cut at index 14)
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.normalize(x))

    def train(self, mode: bool = True) -> VGG19Conv33:
        return super().train(False)  # a fixed feature extractor: always in eval mode


def _read_tensors(path: Path) -> Mapping[str, Any]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"expected a state_dict, got {type(obj).__name__}")
    return obj


def load_vgg19_features(path: str | os.PathLike | None, key: str = VGG_KEY) -> VGG19Conv33:
    """Build :class:`VGG19Conv33` with ImageNet weights from ``path``.

    Accepts torchvision's ``vgg19`` state_dict (``.pth``, keys ``features.N.weight``; the classifier is
    ignored), the same keys in a ``.safetensors`` file, or bare ``N.weight`` keys.

    Raises:
        ConfigError: no path, a missing/unreadable file or tensors that do not fit; the message names
            the config key ``key``.
    """
    if path is None or str(path).strip() == "":
        raise ConfigError(f"{key}: the DeblurGAN-v2 perceptual loss needs ImageNet VGG19 weights; set {key} "
                          "to a torchvision vgg19 state_dict (e.g. vgg19-dcbb9e9d.pth) or a .safetensors file "
                          "with its features.* tensors")
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{key}: {p}: no such file")
    try:
        raw = _read_tensors(p)
    except Exception as exc:  # torch/safetensors raise many private error types
        raise ConfigError(f"{key}: {p}: not a readable weights file ({type(exc).__name__}: {exc})") from None
    sd = {k.removeprefix("module.").removeprefix("features."): v for k, v in raw.items()
          if not k.removeprefix("module.").startswith("classifier.")}
    model = VGG19Conv33()
    own = model.features.state_dict()
    missing = [k for k in own if k not in sd]
    bad = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or bad:
        raise ConfigError(f"{key}: {p}: not VGG19 weights ({len(missing)} missing tensors {missing[:4]}, "
                          f"shape mismatches {bad[:4]})")
    model.features.load_state_dict({k: sd[k] for k in own}, strict=True)
    return model


# --- discriminators ---------------------------------------------------------------------------------
class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator (Isola et al. 2017) as DeblurGAN-v2 builds it.

    4x4 convs (padding 2): ``n_layers`` with stride 2 (64, 128, 256, 512, 512 channels), one more with
    stride 1 and a 1-channel stride-1 output conv; InstanceNorm (no affine, running statistics) and
    LeakyReLU(0.2) between them, no norm after the first conv. ``n_layers=3`` is the 70x70 patch
    discriminator, ``n_layers=5`` the full-image one. Keys ``model.N.*`` as in the official networks.
    """

    def __init__(self, n_layers: int = 3, ndf: int = 64, in_ch: int = 3) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        layers: list[nn.Module] = [nn.Conv2d(in_ch, ndf, 4, 2, 2), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in list(range(1, n_layers)) + [n_layers]:
            prev, mult = mult, min(2 ** n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2 if n < n_layers else 1, 2),
                       nn.InstanceNorm2d(ndf * mult, affine=False, track_running_stats=True),
                       nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 2))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class RaGANLS(nn.Module):
    """Relativistic average least-squares GAN loss for one discriminator (Jolicoeur-Martineau 2019):

        L_D = ( E[(D(real) - mean D(fake) - 1)^2] + E[(D(fake) - mean D(real) + 1)^2] ) / 2
        L_G = ( E[(D(real) - mean D(fake) + 1)^2] + E[(D(fake) - mean D(real) - 1)^2] ) / 2

    where the means are over the outputs for the last ``pool_size`` real / fake images seen by
    :meth:`discriminator_loss` (detached; the official ``ImagePool(50)``). The pools are saved in
    ``state_dict`` (extra state), so a resumed run continues with them.
    """

    def __init__(self, pool_size: int = 50) -> None:
        super().__init__()
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size}")
        self.pool_size = pool_size
        self.real_pool: deque[float] = deque(maxlen=pool_size)
        self.fake_pool: deque[float] = deque(maxlen=pool_size)

    @staticmethod
    def _push(pool: deque, pred: torch.Tensor) -> None:
        # Every image's output map has the same size within a run, so the mean of per-image means is
        # the mean of the concatenated pool.
        pool.extend(pred.detach().float().flatten(1).mean(1).tolist())

    @staticmethod
    def _mean(pool: deque, fallback: torch.Tensor) -> torch.Tensor | float:
        return sum(pool) / len(pool) if pool else fallback.detach().float().mean()

    def discriminator_loss(self, pred_fake: torch.Tensor, pred_real: torch.Tensor) -> torch.Tensor:
        self._push(self.fake_pool, pred_fake)
        self._push(self.real_pool, pred_real)
        mean_fake, mean_real = self._mean(self.fake_pool, pred_fake), self._mean(self.real_pool, pred_real)
        return (torch.mean((pred_real - mean_fake - 1) ** 2) + torch.mean((pred_fake - mean_real + 1) ** 2)) / 2

    def generator_loss(self, pred_fake: torch.Tensor, pred_real: torch.Tensor) -> torch.Tensor:
        mean_fake, mean_real = self._mean(self.fake_pool, pred_fake), self._mean(self.real_pool, pred_real)
        return (torch.mean((pred_real - mean_fake + 1) ** 2) + torch.mean((pred_fake - mean_real - 1) ** 2)) / 2

    def get_extra_state(self) -> dict:
        return {"real": list(self.real_pool), "fake": list(self.fake_pool)}

    def set_extra_state(self, state: dict) -> None:
        self.real_pool = deque(state.get("real", []), maxlen=self.pool_size)
        self.fake_pool = deque(state.get("fake", []), maxlen=self.pool_size)


# --- the objective ----------------------------------------------------------------------------------
@dataclass
class GLossResult:
    """What :meth:`DeblurGANv2Loss.generator_loss` returns: the weighted total (backpropagate it) and
    the unweighted terms as floats for logging (``content``, ``perceptual``, ``adv``)."""

    total: torch.Tensor
    terms: dict[str, float]


def _to_gan_range(x: torch.Tensor) -> torch.Tensor:
    return x * 2.0 - 1.0


class DeblurGANv2Loss(nn.Module):
    """Content + perceptual + double-scale RaGAN-LS, with both discriminators inside.

    Args:
        vgg: the frozen ImageNet feature extractor (:func:`load_vgg19_features`).
        content, perceptual, adversarial: the term weights (paper: 0.5, 0.006, 0.01).
        pool_size: images per RaGAN "average" pool (official: 50).
        patch_layers, full_layers: strided layers of the patch and full-image discriminators (3, 5).
    """

    def __init__(self, vgg: VGG19Conv33, content: float = 0.5, perceptual: float = 0.006,
                 adversarial: float = 0.01, pool_size: int = 50, patch_layers: int = 3,
                 full_layers: int = 5) -> None:
        super().__init__()
        for name, w in (("content", content), ("perceptual", perceptual), ("adversarial", adversarial)):
            if not w >= 0:
                raise ValueError(f"{name} weight must be >= 0, got {w}")
        self.vgg = vgg
        self.w_content, self.w_perceptual, self.w_adv = float(content), float(perceptual), float(adversarial)
        self.patch_d = NLayerDiscriminator(patch_layers)
        self.full_d = NLayerDiscriminator(full_layers)
        self.patch_loss = RaGANLS(pool_size)
        self.full_loss = RaGANLS(pool_size)

    @classmethod
    def from_config(cls, gan: Any) -> DeblurGANv2Loss:
        """Build from a ``gan`` config section (:class:`lbag.config.GANConfig`) or a whole
        :class:`lbag.config.TrainConfig`; fails with a :class:`ConfigError` naming ``gan.vgg19_weights``
        when the VGG19 weights are not given or unusable."""
        gan = getattr(gan, "gan", gan)
        if gan is None:
            raise ConfigError("gan: the DeblurGAN-v2 objective needs a 'gan' section (at least "
                              f"{VGG_KEY}: PATH)")
        return cls(load_vgg19_features(gan.vgg19_weights), content=gan.content, perceptual=gan.perceptual,
                   adversarial=gan.adversarial, pool_size=gan.pool_size, patch_layers=gan.patch_layers,
                   full_layers=gan.full_layers)

    def discriminators(self) -> tuple[tuple[NLayerDiscriminator, RaGANLS], ...]:
        return (self.patch_d, self.patch_loss), (self.full_d, self.full_loss)

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return list(self.patch_d.parameters()) + list(self.full_d.parameters())

    def make_discriminator_optimizer(self, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.999)
                                     ) -> torch.optim.Adam:
        """Adam over both discriminators (official: Adam, the generator's learning rate)."""
        return torch.optim.Adam(self.discriminator_parameters(), lr=lr, betas=betas)

    # --- discriminator side ---------------------------------------------------------------------
    def discriminator_loss(self, fake: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
        """Unweighted RaGAN-LS discriminator loss, mean of the two scales; ``fake`` is detached here.
        Updates the average pools (call it once per step)."""
        fake, sharp = _to_gan_range(fake.detach()), _to_gan_range(sharp)
        losses = [crit.discriminator_loss(d(fake), d(sharp)) for d, crit in self.discriminators()]
        return (losses[0] + losses[1]) / 2

    def discriminator_step(self, fake: torch.Tensor, sharp: torch.Tensor, optimizer: torch.optim.Optimizer
                           ) -> float:
        """One discriminator update on ``w_adv * discriminator_loss`` (as the official ``_update_d``);
        returns the unweighted loss. Skipped (returns 0.0) when the adversarial weight is 0."""
        if self.w_adv == 0:
            return 0.0
        optimizer.zero_grad(set_to_none=True)
        loss = self.discriminator_loss(fake, sharp)
        (self.w_adv * loss).backward()
        optimizer.step()
        return float(loss.detach())

    # --- generator side -------------------------------------------------------------------------
    def adversarial_generator_loss(self, fake: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
        """Unweighted RaGAN-LS generator loss, mean of the two scales. The discriminators' parameters
        get no gradient from it (they are temporarily frozen)."""
        fake, sharp = _to_gan_range(fake), _to_gan_range(sharp)
        flags = [p.requires_grad for p in self.discriminator_parameters()]
        self.patch_d.requires_grad_(False)
        self.full_d.requires_grad_(False)
        try:
            losses = []
            for d, crit in self.discriminators():
                with torch.no_grad():
                    pred_real = d(sharp)  # its term does not depend on the generator
                losses.append(crit.generator_loss(d(fake), pred_real))
        finally:
            for p, flag in zip(self.discriminator_parameters(), flags):
                p.requires_grad_(flag)
        return (losses[0] + losses[1]) / 2

    def content_losses(self, fake: torch.Tensor, sharp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(content, perceptual): MSE of the ImageNet-normalised images and of their VGG19 conv3_3 maps."""
        if fake.shape != sharp.shape or fake.ndim != 4 or fake.shape[1] != 3:
            raise ValueError(f"expected two (B, 3, H, W) tensors of the same shape, got {tuple(fake.shape)} "
                             f"and {tuple(sharp.shape)}")
        content = F.mse_loss(self.vgg.normalize(fake), self.vgg.normalize(sharp))
        with torch.no_grad():
            target = self.vgg(sharp)
        perceptual = F.mse_loss(self.vgg(fake), target)
        return content, perceptual

    def generator_loss(self, fake: torch.Tensor, sharp: torch.Tensor) -> GLossResult:
        """The generator objective for a result ``fake`` and its sharp target, both RGB in [0, 1]."""
        content, perceptual = self.content_losses(fake, sharp)
        total = self.w_content * content + self.w_perceptual * perceptual
        terms = {"content": float(content.detach()), "perceptual": float(perceptual.detach())}
        if self.w_adv > 0:
            adv = self.adversarial_generator_loss(fake, sharp)
            total = total + self.w_adv * adv
            terms["adv"] = float(adv.detach())
        return GLossResult(total, terms)


class DeblurGANv2Criterion(nn.Module):
    """:class:`DeblurGANv2Loss` behind the interface of :class:`lbag.losses.MultiScaleLoss`, for a training
    loop that only knows ``criterion(output, target, mask) -> LossResult``.

    Each call in training mode with gradients enabled first updates the discriminators (their own Adam,
    inside this module) on the detached result, then returns the generator loss to backpropagate, as the
    official trainer orders a step. ``state_dict()`` holds the discriminators, the RaGAN pools and the
    discriminator optimizer, so saving and loading it resumes the adversarial game exactly. Not handled
    here: synchronising the discriminators across DDP ranks.
    """

    def __init__(self, objective: DeblurGANv2Loss, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.999)):
        super().__init__()
        self.objective = objective
        self.opt_d = objective.make_discriminator_optimizer(lr, betas)

    @classmethod
    def from_config(cls, cfg: Any) -> DeblurGANv2Criterion:
        """From a :class:`lbag.config.TrainConfig`: the ``gan`` section and ``optim.lr``/``optim.betas``."""
        return cls(DeblurGANv2Loss.from_config(cfg), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))

    def forward(self, output: Any, target: torch.Tensor, mask: torch.Tensor | None = None) -> Any:
        from .losses import LossResult

        fake = output.images[-1] if hasattr(output, "images") else output
        terms: dict[str, float] = {}
        if self.training and torch.is_grad_enabled():
            terms["d"] = self.objective.discriminator_step(fake, target, self.opt_d)
        result = self.objective.generator_loss(fake, target)
        terms.update(result.terms)
        terms["total"] = float(result.total.detach())
        return LossResult(result.total, terms, 0)

    def get_extra_state(self) -> dict:
        return {"opt_d": self.opt_d.state_dict()}

    def set_extra_state(self, state: dict) -> None:
        self.opt_d.load_state_dict(state["opt_d"])
