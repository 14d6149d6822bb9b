"""Inference paths (lbag.accel) against the plain float32 eager reference, on the same weights/input.

Part 1, 256x256 patches: every path of ``lbag.accel`` (and ONNX Runtime when installed) is timed in
interleaved rounds (each round runs every path once, so machine noise hits all paths alike); median
over rounds after a warm-up; ratio = eager median / path median; max abs difference and PSNR of the
output against the eager output; peak memory of each path from a separate process (below).

Part 2, full resolution 2152x1436, tiled (``lbag.infer.deblur_tensor``): each (preset, path) runs in a
fresh process so its peak resident memory (VmHWM) is its own; the outputs are compared with the
eager output of the same preset.

Part 3, only where a CUDA device is present: full-resolution LBAG untiled on the GPU, synchronised
timing per path, against the floor of the model's FLOPs (~14.2 TFLOP per 2152x1436 image) over the
card's measured bf16 matrix rate.

Usage: python benchmarks/bench_infer_paths.py [--presets lbag_small,lbag] [--rounds 5] [--full]
       [--full-presets lbag_small,lbag] [--compile]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import markdown_table, matmul_rate, model_flops, peak_rss_mb, timeit, write_result

FULL = (1436, 2152)  # H, W of a ReLoBlur image


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two (1, 3, H, W) outputs in float (lbag.metrics.psnr_float: no 8-bit quantisation)."""
    import torch

    from lbag.metrics import psnr_float

    return float(psnr_float(torch.from_numpy(a), torch.from_numpy(b))[0])


def onnx_runner(model, x):
    """Export the full-scale output to ONNX and return a callable running it in ONNX Runtime."""
    import onnxruntime as ort
    import torch

    class FullScale(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, t):
            return self.net(t).images[-1]

    import warnings

    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # shape checks traced as constants
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:  # the session keeps the model in memory
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(FullScale(model), (x,), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {2: "h", 3: "w"}}, dynamo=False, opset_version=17)
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda t: torch.from_numpy(sess.run(None, {"x": t.numpy()})[0])


def part1(preset: str, paths: list[str], rounds: int, size: int, rates: dict[str, float]) -> list[list[str]]:
    import torch

    from lbag.accel import prepare
    from lbag.models import build_model

    torch.manual_seed(0)
    state = build_model(preset).state_dict()
    x = torch.rand(1, 3, size, size)
    runners = {}
    for name in paths:
        model = build_model(preset)
        model.load_state_dict(state)
        if name == "onnx":
            try:
                runners[name] = onnx_runner(model.eval(), x)
            except Exception as exc:  # optional dependency or exporter problem: report, carry on
                print(f"onnx skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        runners[name] = lambda t, runner=prepare(model, "cpu", name): runner(t).images[-1]
    outputs = {name: fn(x).float() for name, fn in runners.items()}  # warm-up (and compilation)
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            t0 = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - t0)
    ref_t = float(np.median(times["eager"]))
    ref = outputs["eager"].numpy()
    flops = model_flops(preset, tuple(x.shape))
    rows = []
    for name in runners:
        med = float(np.median(times[name]))
        out = outputs[name].numpy()
        rate = flops / med
        ceiling = rates["bfloat16" if name == "bf16" else "float32"]
        rows.append([preset, name, f"{med * 1000:.0f}", f"{ref_t / med:.2f}x",
                     f"{np.abs(out - ref).max():.1e}", f"{psnr(out, ref):.1f}",
                     f"{rate / 1e9:.0f}", f"{100 * rate / ceiling:.0f}%"])
    return rows


def child(preset: str, path: str, tile: int, h: int, w: int, out_file: str) -> None:
    """One (preset, path) in a fresh process: warm-up, one timed pass, output saved, peak RSS printed."""
    import torch

    from lbag.accel import prepare
    from lbag.infer import deblur_tensor
    from lbag.models import build_model

    torch.manual_seed(0)
    model = build_model(preset)
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1))
    runner = prepare(model, "cpu", path)
    # Warm-up on one tile (compilation, allocator), then one timed pass: a full LBAG image costs minutes
    # on 2 CPU cores, so several full runs per path would take too long.
    side = tile or max(h, w)
    deblur_tensor(model, x[..., :side, :side], tile=tile, forward=runner)
    t0 = time.perf_counter()
    res = deblur_tensor(model, x, tile=tile, forward=runner)
    dt = time.perf_counter() - t0
    np.save(out_file, res.image.numpy())
    print(json.dumps({"seconds": dt, "peak_rss_mb": peak_rss_mb(), "tiles": res.tiles}))


def isolated(preset: str, paths: list[str], tile: int, shape: tuple[int, int]) -> dict[str, dict]:
    """Run :func:`child` for every path; returns {path: {seconds, peak_rss_mb, tiles, out}}."""
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in paths:
            out_file = Path(tmp) / f"{preset}_{name}.npy"
            proc = subprocess.run([sys.executable, __file__, "--child", preset, name, str(tile), str(shape[0]),
                                   str(shape[1]), str(out_file)], capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr[-2000:], file=sys.stderr)
                continue
            results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
            results[name]["out"] = np.load(out_file)
    return results


def part2(preset: str, paths: list[str], tile: int) -> list[list[str]]:
    results = isolated(preset, paths, tile, FULL)
    ref, rows = results["eager"], []
    for name, r in results.items():
        rows.append([preset, name, f"{r['seconds']:.1f}", f"{ref['seconds'] / r['seconds']:.2f}x",
                     f"{r['peak_rss_mb']:.0f}", str(r["tiles"]), f"{np.abs(r['out'] - ref['out']).max():.1e}",
                     f"{psnr(r['out'], ref['out']):.1f}"])
    return rows


def gpu_part(compile_too: bool) -> str:
    """Full-resolution LBAG on the GPU, untiled: synchronised latency per path against the floor of
    (model FLOPs) / (the card's measured bf16 matrix rate)."""
    import torch

    from lbag.accel import prepare
    from lbag.models import build_model

    torch.manual_seed(0)
    state = build_model("lbag").state_dict()
    x = torch.rand(1, 3, *FULL, device="cuda")
    flops = model_flops("lbag", tuple(x.shape))
    rate = matmul_rate("bfloat16", "cuda", n=8192, runs=10)
    floor = flops / rate
    ref, ref_t = None, None
    rows = []
    for name in ["eager", "channels_last", "bf16"] + (["compile"] if compile_too else []):
        model = build_model("lbag")
        model.load_state_dict(state)
        runner = prepare(model, "cuda", name)
        torch.cuda.reset_peak_memory_stats()
        t = timeit(lambda r=runner: r(x), warmup=3, runs=10, sync=torch.cuda.synchronize)["median"]
        out = runner(x).images[-1].float().cpu().numpy()
        if ref is None:  # eager, the first path, is the reference
            ref, ref_t = out, t
        rows.append(["lbag", name, f"{t * 1000:.0f}", f"{ref_t / t:.2f}x",
                     f"{t / floor:.2f}x", f"{torch.cuda.max_memory_allocated() / 2**30:.1f}",
                     f"{np.abs(out - ref).max():.1e}", f"{psnr(out, ref):.1f}"])
        del runner, model
        torch.cuda.empty_cache()
    return (f"### GPU, {FULL[1]}x{FULL[0]} untiled, batch 1\n\n{torch.cuda.get_device_name(0)}: measured bf16 "
            f"matrix rate {rate / 1e12:.0f} TFLOP/s (8192^3 products); LBAG needs {flops / 1e12:.2f} TFLOP per "
            f"image, so the floor is {floor * 1000:.1f} ms. Median of 10 synchronised runs after 3 warm-ups.\n\n"
            + markdown_table(["preset", "path", "median ms", "speed-up", "x floor", "peak GiB", "max abs diff",
                              "PSNR vs eager dB"], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="lbag_small,lbag")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--compile", action="store_true", help="include torch.compile (minutes of compilation)")
    ap.add_argument("--full", action="store_true", help="also run part 2 (full resolution, tiled)")
    ap.add_argument("--full-presets", default="lbag_small,lbag")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        preset, path, tile, h, w, out_file = args.child
        child(preset, path, int(tile), int(h), int(w), out_file)
        return

    from lbag.accel import cpu_has_bf16

    paths = ["eager", "channels_last"] + (["bf16"] if cpu_has_bf16() else []) + \
            (["compile"] if args.compile else []) + ["onnx"]
    rates = {"float32": matmul_rate("float32")}
    rates["bfloat16"] = matmul_rate("bfloat16") if cpu_has_bf16() else float("nan")
    rows = []
    for preset in args.presets.split(","):
        # Peak memory per path needs a process per path; ONNX Runtime is left out there.
        memory = isolated(preset, [p for p in paths if p != "onnx"], 0, (args.size, args.size))
        rows += [row + [f"{memory[row[1]]['peak_rss_mb']:.0f}" if row[1] in memory else "-"]
                 for row in part1(preset, paths, args.rounds, args.size, rates)]
    body = (f"### {args.size}x{args.size}, batch 1\n\nInterleaved rounds, median of {args.rounds} after a "
            "warm-up; ratio and differences against `eager` (float32 NCHW, no_grad) in the same run. GFLOP/s: "
            "the model's FLOPs (torch FlopCounterMode) over the median time; % of matmul: against this "
            f"machine's measured 2048^3 matrix-product rate, {rates['float32'] / 1e9:.0f} GFLOP/s float32 and "
            f"{rates['bfloat16'] / 1e9:.0f} GFLOP/s bfloat16 (a practical ceiling, not the hardware peak: "
            "oneDNN's convolutions can run slightly faster than torch's matrix product, hence values over 100%). "
            "Peak RSS: a separate process per path (warm-up + one forward), the whole process."
            "\n\n" + markdown_table(["preset", "path", "median ms", "speed-up", "max abs diff", "PSNR vs eager dB",
                                     "GFLOP/s", "% of matmul", "peak RSS MB"], rows))
    if args.full:
        full_paths = [p for p in paths if p not in ("onnx", "compile")]
        rows2 = []
        for preset in args.full_presets.split(","):
            rows2 += part2(preset, full_paths, args.tile)
        body += (f"\n\n### {FULL[1]}x{FULL[0]}, tiled ({args.tile}px tiles, default overlap)\n\nOne process per "
                 "row (peak RSS is that process's); warm-up on one tile, then one timed full image.\n\n"
                 + markdown_table(["preset", "path", "seconds", "speed-up", "peak RSS MB", "tiles",
                                   "max abs diff", "PSNR vs eager dB"], rows2))
    import torch

    if torch.cuda.is_available():
        body += "\n\n" + gpu_part(args.compile)
    else:
        body += ("\n\n### GPU\n\nNot measured: no CUDA device on this machine (the GPU section runs "
                 "automatically where one is present).")
    write_result("infer_paths", "Inference paths", body)


if __name__ == "__main__":
    main()
