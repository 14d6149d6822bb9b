"""Shared benchmark helpers: timing with warm-up and medians, peak memory, machine description, and
writing result tables. Every benchmark script imports these instead of timing things its own way."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Callable

from lbag.atomic import write_text

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """One line naming the machine: CPU model, cores visible, torch threads, torch version, GPU."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    desc = f"{cpu}, {os.cpu_count()} cores"
    try:
        import torch
        desc += f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
        if torch.cuda.is_available():
            desc += f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return desc


def timeit(fn: Callable[[], object], warmup: int = 1, runs: int = 5, sync: Callable[[], None] | None = None) -> dict:
    """Call ``fn`` ``warmup`` times untimed, then ``runs`` times; return median/min/max seconds.

    ``sync`` (e.g. ``torch.cuda.synchronize``) is called before reading each clock so that asynchronous
    GPU work is counted.
    """
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "runs": runs}


def matmul_rate(dtype_name: str = "float32", device: str = "cpu", n: int = 2048, runs: int = 5) -> float:
    """Measured dense matrix-multiply rate (FLOP/s) of ``device`` in ``dtype_name``: median of ``runs``
    n x n x n products after a warm-up. The practical ceiling a convolution network can approach."""
    import torch

    dtype = getattr(torch, dtype_name)
    a = torch.rand(n, n, device=device).to(dtype)
    b = torch.rand(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else None
    t = timeit(lambda: a @ b, warmup=2, runs=runs, sync=sync)["median"]
    return 2.0 * n ** 3 / t


def model_flops(preset: str, shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of the model ``preset`` on an input of ``shape`` (torch's FlopCounterMode:
    2 per multiply-accumulate of convolutions and matrix products). Counted on the meta device, so any
    size costs no memory and no time."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from lbag.models import build_model

    model = build_model(preset).to("meta").eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(shape, device="meta"))
    return int(counter.get_total_flops())


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB). Run each measured case in a fresh process for a
    per-case figure.

    On Linux this is VmHWM of /proc/self/status, the high-water mark of this process's own address
    space. ``ru_maxrss`` is only the fallback: Linux carries it over from the parent through fork and
    exec, so a child started by a large benchmark process would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def write_result(name: str, title: str, body: str) -> Path:
    """Write ``benchmarks/results/<name>.md`` (title, machine line, body) and print it."""
    text = f"## {title}\n\nMachine: {machine()}. Measured {time.strftime('%Y-%m-%d %H:%M')}.\n\n{body}\n"
    path = write_text(RESULTS / f"{name}.md", text)
    print(text)
    return path
