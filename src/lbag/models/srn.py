"""SRN-DeblurNet, the colour model: Tao et al., "Scale-Recurrent Network for Deep Image Deblurring",
CVPR 2018 (official TensorFlow code: jiangsutx/SRN-Deblur, MIT licence).

One encoder-decoder (3 stages of 32/64/128 channels, 5x5 convolutions, ResBlocks of two convs) is run
coarse to fine at 1/4, 1/2 and full scale with the same weights. Each scale sees the blurred input
resized to its size concatenated with the previous scale's prediction resized up (the coarsest scale
gets the input twice); the previous prediction is a constant (``tf.stop_gradient``). The colour model
of the official release has no ConvLSTM (only its ``--model lstm`` variant builds one), so its 84
variables hold 6,881,251 parameters.

Exactness with the TensorFlow graph:

* parameter names map 1:1 to the TF variables: ``enc1_2.conv1.weight`` is ``g_net/enc1_2/conv1/weights``
  (:func:`tf_variable_name`, :func:`state_dict_from_tf` converts a checkpoint's arrays);
* convolutions pad as TF ``'SAME'`` does: a 5x5 stride-2 conv on an even size pads 1 before and 2
  after (PyTorch's symmetric ``padding=2`` would shift the grid by one pixel);
* ``tf.image.resize_images(method=0)`` of TF 1.x is bilinear with ``align_corners=False`` and
  ``half_pixel_centers=False`` (source = destination * in/out, no pixel-centre offset), reproduced
  by :func:`resize_bilinear_tf1`; ``F.interpolate`` would differ;
* the test pipeline (``DEBLUR.test``) transposes portrait images to landscape, edge-pads bottom/right,
  runs, crops and transposes back. Here the pad goes to a multiple of 16 (what the three scales need)
  instead of the fixed 720x1280 placeholder, and full-resolution images are never downscaled first.

Input: float RGB in [0, 1], (B, 3, H, W), any size. Output: :class:`DeblurOutput` with the three
predictions coarse -> fine (unclamped, as the network computes them; the official tool clips the last
one to [0, 1]); masks are ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import CheckpointError
from .mimo_unet import DeblurOutput

__all__ = ["SRNDeblur", "srn_deblur", "resize_bilinear_tf1", "tf_variable_name", "state_dict_from_tf",
           "read_tf_checkpoint", "MODELS", "INFO", "PAD_MULTIPLE", "receptive_field"]

# Two stride-2 stages inside each scale and three scales 1, 1/2, 1/4: every scale's size must be a
# multiple of 4, so the full image is padded to a multiple of 16.
PAD_MULTIPLE = 16
KERNEL = 5
TF_SCOPE = "g_net"
# (scope, channels) of the ResBlock stages, in the order the TF graph creates them.
_ENCODER = (("enc1", 32), ("enc2", 64), ("enc3", 128))
_DECODER = (("dec3", 128), ("dec2", 64), ("dec1", 32))


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME': output ceil(size / stride), the extra pixel of an odd total goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class TFSameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow 'SAME' padding computed from the input size at run time."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(in_ch, out_ch, kernel_size, stride=stride, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = _same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = _same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class ResnetBlock(nn.Module):
    """``util.ResnetBlock``: conv + ReLU, conv, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = TFSameConv2d(channels, channels, KERNEL)
        self.conv2 = TFSameConv2d(channels, channels, KERNEL)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def resize_bilinear_tf1(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``tf.image.resize_images(x, [height, width], method=0)`` of TensorFlow 1.x on NCHW tensors.

    Bilinear without pixel-centre offset: output row ``y`` samples input row ``y * in/out`` (float32
    arithmetic as TF), between rows ``floor`` and ``min(floor + 1, in - 1)``. Halving a size exactly
    therefore picks every second pixel.
    """
    h, w = x.shape[-2:]
    if (h, w) == (height, width):
        return x

    def axis(size_in: int, size_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scale = torch.tensor(size_in, dtype=torch.float32) / torch.tensor(size_out, dtype=torch.float32)
        pos = torch.arange(size_out, dtype=torch.float32) * scale
        lo = pos.floor()
        frac = (pos - lo).to(device=x.device, dtype=x.dtype)
        lo = lo.long()
        hi = (lo + 1).clamp(max=size_in - 1)
        return lo.to(x.device), hi.to(x.device), frac

    y0, y1, fy = axis(h, height)
    x0, x1, fx = axis(w, width)
    top_rows, bottom_rows = x.index_select(-2, y0), x.index_select(-2, y1)
    tl, tr = top_rows.index_select(-1, x0), top_rows.index_select(-1, x1)
    bl, br = bottom_rows.index_select(-1, x0), bottom_rows.index_select(-1, x1)
    top = tl + (tr - tl) * fx
    bottom = bl + (br - bl) * fx
    return top + (bottom - top) * fy[:, None]


class SRNDeblur(nn.Module):
    """The scale-recurrent network (colour model); see the module docstring.

    Args:
        n_levels: number of scales (published: 3).
        scale: size ratio between neighbouring scales (published: 0.5).
        transpose_portrait: transpose images taller than wide before the network and back after, as
            the official test pipeline does (the network is not transpose-invariant).

    Shape:
        input (B, 3, H, W) float in [0, 1] -> images [(B, 3, ceil(H/4), ceil(W/4)), (..., H/2), (..., H, W)].
    """

    def __init__(self, n_levels: int = 3, scale: float = 0.5, transpose_portrait: bool = True) -> None:
        super().__init__()
        if n_levels < 1:
            raise ValueError(f"n_levels must be >= 1, got {n_levels}")
        self.n_levels, self.scale, self.transpose_portrait = n_levels, scale, transpose_portrait
        # Registration order = the TF variable order (state_dict order).
        cin = 6
        for i, (name, ch) in enumerate(_ENCODER):
            setattr(self, f"{name}_1", TFSameConv2d(cin, ch, KERNEL, stride=1 if i == 0 else 2))
            for k in (2, 3, 4):
                setattr(self, f"{name}_{k}", ResnetBlock(ch))
            cin = ch
        for i, (name, ch) in enumerate(_DECODER):
            if i > 0:  # 4x4 stride-2 transposed conv; TF 'SAME' doubles the size = PyTorch padding 1
                setattr(self, f"{name}_4", nn.ConvTranspose2d(2 * ch, ch, 4, stride=2, padding=1))
            for k in (3, 2, 1):
                setattr(self, f"{name}_{k}", ResnetBlock(ch))
        self.dec1_0 = TFSameConv2d(32, 3, KERNEL)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation: Xavier uniform weights, zero biases."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def _stage(self, name: str, x: torch.Tensor, order: tuple[int, ...]) -> torch.Tensor:
        for k in order:
            x = getattr(self, f"{name}_{k}")(x)
        return x

    def _level(self, x: torch.Tensor) -> torch.Tensor:
        """One encoder-decoder pass (``generator`` body for one scale)."""
        conv1_4 = self._stage("enc1", F.relu(self.enc1_1(x)), (2, 3, 4))
        conv2_4 = self._stage("enc2", F.relu(self.enc2_1(conv1_4)), (2, 3, 4))
        z = self._stage("enc3", F.relu(self.enc3_1(conv2_4)), (2, 3, 4))
        z = self._stage("dec3", z, (3, 2, 1))
        z = self._stage("dec2", F.relu(self.dec2_4(z)) + conv2_4, (3, 2, 1))
        z = self._stage("dec1", F.relu(self.dec1_4(z)) + conv1_4, (3, 2, 1))
        return self.dec1_0(z)

    def forward(self, x: torch.Tensor) -> DeblurOutput:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected input of shape (B, 3, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        transposed = self.transpose_portrait and h > w
        if transposed:
            x = x.transpose(-2, -1)
        th, tw = x.shape[-2:]
        ph, pw = (-th) % PAD_MULTIPLE, (-tw) % PAD_MULTIPLE
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")  # numpy 'edge', as the official test
        big_h, big_w = x.shape[-2:]
        preds: list[torch.Tensor] = []
        pred = None
        for i in range(self.n_levels):
            s = self.scale ** (self.n_levels - i - 1)
            hi, wi = math.floor(big_h * s + 0.5), math.floor(big_w * s + 0.5)  # Python 2 round()
            blur = resize_bilinear_tf1(x, hi, wi)
            prev = blur if pred is None else resize_bilinear_tf1(pred.detach(), hi, wi)
            pred = self._level(torch.cat([blur, prev], dim=1))
            preds.append(pred)
        images = []
        for i, p in enumerate(preds):
            s = self.scale ** (self.n_levels - i - 1)
            p = p[..., :math.ceil(th * s), :math.ceil(tw * s)]
            images.append(p.transpose(-2, -1) if transposed else p)
        return DeblurOutput(images, [None] * len(images))


def srn_deblur(**kwargs) -> SRNDeblur:
    """SRN-DeblurNet colour model (Tao et al. 2018): 6,881,251 parameters, 3 scales sharing them."""
    return SRNDeblur(**kwargs)


def receptive_field(n_levels: int = 3) -> int:
    """Theoretical receptive field of the full-scale output, in input pixels.

    Within one scale, 5x5 convs at strides 1, 2 and 4 and the two 4x4 stride-2 transposed convs (two
    input pixels per output pixel) give 363 px at that scale's resolution. A coarser scale's prediction
    reaches 2x / 4x further, and each bilinear upsampling of a prediction adds one source pixel.
    """
    # (kernel taps, jump before the layer, jump after) along the longest path of one scale.
    chain = [(5, 1, 1)] + [(5, 1, 1)] * 6 + [(5, 1, 2)] + [(5, 2, 2)] * 6 + [(5, 2, 4)] + [(5, 4, 4)] * 12
    chain += [(2, 4, 2)] + [(5, 2, 2)] * 6 + [(2, 2, 1)] + [(5, 1, 1)] * 6 + [(5, 1, 1)]
    per_scale = 1 + sum((taps - 1) * before for taps, before, _after in chain)
    total = 1
    for level in range(n_levels):
        total += (per_scale - 1) * 2 ** level + (2 ** level if level else 0)
    return total


MODELS = {"srn_deblur": srn_deblur}
INFO = {"srn_deblur": {"pad_multiple": PAD_MULTIPLE, "receptive_field": receptive_field()}}


# --- TensorFlow checkpoints -----------------------------------------------------------------------
def tf_variable_name(key: str) -> str:
    """Our state_dict key -> the TF variable name (``enc1_2.conv1.weight`` -> ``g_net/enc1_2/conv1/weights``)."""
    *scopes, leaf = key.split(".")
    return "/".join([TF_SCOPE, *scopes, {"weight": "weights", "bias": "biases"}[leaf]])


def _is_optimizer_slot(name: str) -> bool:
    return any(part.startswith("Adam") for part in name.split("/")[1:])


def state_dict_from_tf(variables: Mapping[str, np.ndarray], source: str = "<TF variables>",
                       model: SRNDeblur | None = None) -> dict[str, torch.Tensor]:
    """Convert the arrays of the official checkpoint into our state_dict.

    Args:
        variables: TF variable name (``g_net/enc1_1/weights``, with or without ``:0``) -> array.
            Variables outside ``g_net/`` and Adam slots are ignored; any other ``g_net`` variable (e.g.
            the ConvLSTM of the ``lstm`` model) is an error.
        source: name used in error messages (the file).
        model: the model whose keys and shapes to fill (default: a fresh colour model).

    Returns:
        ``{key: tensor}`` with kernels converted from HWIO (conv) / HW-out-in (transposed conv) to
        PyTorch's OIHW / in-out-HW layout; load it with ``strict=True``.

    Raises:
        CheckpointError: a missing or extra variable, or a shape that does not match.
    """
    arrays = {k[:-2] if k.endswith(":0") else k: v for k, v in variables.items()}
    arrays = {k: v for k, v in arrays.items() if k.startswith(TF_SCOPE + "/") and not _is_optimizer_slot(k)}
    own = (model or srn_deblur()).state_dict()
    wanted = {tf_variable_name(k): k for k in own}
    missing = sorted(n for n in wanted if n not in arrays)
    extra = sorted(n for n in arrays if n not in wanted)
    if missing or extra:
        raise CheckpointError(f"{source}: not the SRN-DeblurNet colour model: {len(missing)} variables missing "
                              f"{missing[:5]}, {len(extra)} unexpected {extra[:5]}")
    out: dict[str, torch.Tensor] = {}
    for name, key in wanted.items():
        arr = np.asarray(arrays[name], dtype=np.float32)
        tensor = torch.from_numpy(np.ascontiguousarray(arr.transpose(3, 2, 0, 1) if arr.ndim == 4 else arr))
        if tensor.shape != own[key].shape:
            raise CheckpointError(f"{source}: variable {name} has shape {list(arr.shape)}, which converts to "
                                  f"{list(tensor.shape)}; the model needs {list(own[key].shape)}")
        out[key] = tensor
    return out


def read_tf_checkpoint(prefix: str) -> dict[str, np.ndarray]:
    """Every variable of a TF checkpoint (``.../deblur.model-523000``); needs ``tensorflow`` importable.

    Raises:
        CheckpointError: tensorflow missing, or the checkpoint unreadable.
    """
    try:
        import tensorflow as tf  # optional: never a dependency of lbag
    except ImportError:
        raise CheckpointError(
            f"{prefix}: reading a TensorFlow checkpoint needs tensorflow, which is not installed here; on a "
            "machine that has it, save the variables with numpy.savez (name -> array) and load the .npz, "
            "or call lbag.models.srn.state_dict_from_tf") from None
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    except Exception as exc:  # TF raises several error types for unreadable checkpoints
        raise CheckpointError(f"{prefix}: not a readable TensorFlow checkpoint ({exc})") from exc
