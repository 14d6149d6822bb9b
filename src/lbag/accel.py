"""Inference execution paths: the plain float32 reference and faster equivalents.

A *path* turns a model into a callable ``forward(x) -> DeblurOutput`` that computes the same function
faster on a given device:

``eager``          float32, ``torch.no_grad``, NCHW: the reference every other path is measured against.
``channels_last``  float32, ``torch.inference_mode``, NHWC memory layout (oneDNN / cuDNN pick faster
                   convolution kernels for it). Output within ~1e-6 of ``eager``.
``bf16``           ``channels_last`` under bfloat16 autocast; needs a CUDA GPU with bf16 or a CPU with
                   AVX512-BF16 / AMX. Output PSNR vs ``eager`` is well above 50 dB (see
                   ``benchmarks/bench_infer_paths.py``).
``compile``        ``torch.compile`` (inductor, weights frozen) of the ``channels_last`` model; the first
                   call compiles for a minute or more, so it only pays off on long jobs.

``auto`` picks the fastest path that stays within the accuracy targets for the device (float32 paths:
max abs difference to ``eager`` below 1e-3; reduced precision: PSNR against ``eager`` above 50 dB), from
the measurements of ``benchmarks/bench_infer_paths.py`` (``benchmarks/RESULTS.md``). On a 2-core AMD EPYC
with AVX512-BF16, 256x256: ``bf16`` 2.2x (LBAG) / 3.8x (lbag_small) faster than ``eager`` at 67 / 76 dB;
``channels_last`` 1.1x / 2.0x at ~1e-7. ``compile`` is never automatic: its minute-long compilation
per input shape outweighs its gain for a command-line run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .models import DeblurOutput, MIMOUNet

__all__ = ["PATHS", "InferencePath", "prepare", "auto_path", "cpu_has_bf16", "bf16_supported", "resolve_device"]

PATHS = ("eager", "channels_last", "bf16", "compile")


def cpu_has_bf16() -> bool:
    """True when the CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...

    Raises:
        ValueError: an unknown device string, or a CUDA device this machine / torch build lacks.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested, but no CUDA device is usable here "
                             f"(torch {torch.__version__})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} requested, but only {torch.cuda.device_count()} CUDA "
                             "device(s) exist")
    elif device.type != "cpu":
        raise ValueError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def bf16_supported(device: torch.device | str) -> bool:
    """True when ``device`` computes in bfloat16 natively (CUDA with bf16, or a CPU with AVX512-BF16/AMX)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16()


def auto_path(device: torch.device | str) -> str:
    """The default path for ``device``: bf16 where the hardware does it natively, else channels_last."""
    return "bf16" if bf16_supported(device) else "channels_last"


@dataclass
class InferencePath:
    """A prepared model: call it with a (B, 3, H, W) float32 batch in [0, 1] on its device."""

    name: str
    device: torch.device
    forward: Callable[[torch.Tensor], DeblurOutput]

    def __call__(self, x: torch.Tensor) -> DeblurOutput:
        return self.forward(x)

    @property
    def description(self) -> str:
        return f"{self.name} on {self.device}"


def _float_output(out: DeblurOutput) -> DeblurOutput:
    return DeblurOutput([i.float() for i in out.images], [None if m is None else m.float() for m in out.masks])


def prepare(model: MIMOUNet, device: torch.device | str = "cpu", path: str = "auto") -> InferencePath:
    """Put ``model`` in eval mode on ``device`` and wrap it in the requested execution path.

    Args:
        model: any network of :mod:`lbag.models` (its weights are not modified; it may be moved or
            converted to channels_last in place); ``auto`` picks bf16 for the MIMO-UNet family only.
        device: where to run.
        path: one of :data:`PATHS` or ``"auto"``.

    Returns:
        An :class:`InferencePath`; its outputs are float32 whatever the path computes in.
    """
    device = torch.device(device)
    if path == "auto":
        # bf16 was measured on the MIMO-UNet family only (benchmarks/bench_infer_paths.py); the other
        # networks (DeepDeblur works in [0, 255] without normalisation) get the float32 fast path.
        path = auto_path(device) if isinstance(model, MIMOUNet) else "channels_last"
    if path not in PATHS:
        raise ValueError(f"unknown inference path {path!r}; choose one of {PATHS} or 'auto'")
    if path == "bf16" and not bf16_supported(device):
        raise ValueError(f"the bf16 path needs native bfloat16 support, which {device} lacks")
    model = model.eval().to(device)

    if path == "eager":
        model = model.to(memory_format=torch.contiguous_format)

        def forward(x: torch.Tensor) -> DeblurOutput:
            with torch.no_grad():
                return model(x.to(device))
        return InferencePath(path, device, forward)

    model = model.to(memory_format=torch.channels_last)
    net: Callable[[torch.Tensor], DeblurOutput] = model
    if path == "compile":
        # Frozen weights let inductor pre-pack convolution weights for oneDNN; an option of this compile
        # only, not a process-wide inductor setting.
        net = torch.compile(model, dynamic=False, options={"freezing": True})
    dtype = torch.bfloat16 if path == "bf16" else None

    def forward(x: torch.Tensor) -> DeblurOutput:
        x = x.to(device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32,
                                                    enabled=dtype is not None):
            return _float_output(net(x))

    return InferencePath(path, device, forward)
