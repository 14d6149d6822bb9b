"""Forward time and peak memory of the model presets on the CPU.

Each case runs in a fresh subprocess so that its peak resident memory is its own.
Usage: python benchmarks/bench_model.py [--size 256] [--runs 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import markdown_table, model_flops, timeit, write_result


def child(preset: str, size: int, runs: int, threads: int) -> None:
    import torch

    from common import peak_rss_mb
    from lbag.models import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(preset).eval()
    x = torch.rand(1, 3, size, size)
    base = peak_rss_mb()
    with torch.inference_mode():
        t = timeit(lambda: model(x), warmup=1, runs=runs)
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"preset": preset, "params": params, "median_s": t["median"], "min_s": t["min"],
                      "peak_rss_mb": peak_rss_mb(), "model_rss_mb": base}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--presets", default="lbag,mimo_unet_plus,mimo_unet,lbag_small")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.size, args.runs, args.threads)
        return
    rows = []
    for preset in args.presets.split(","):
        out = subprocess.run([sys.executable, __file__, "--child", preset, "--size", str(args.size),
                              "--runs", str(args.runs), "--threads", str(args.threads)],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        gflop = model_flops(preset, (1, 3, args.size, args.size)) / 1e9
        tflop_full = model_flops(preset, (1, 3, 1436, 2152)) / 1e12
        rows.append([preset, f"{r['params']:,}", f"{gflop:.1f}", f"{tflop_full:.2f}", f"{r['median_s'] * 1000:.0f}",
                     f"{r['min_s'] * 1000:.0f}", f"{r['peak_rss_mb']:.0f}"])
    body = (f"Forward pass, batch 1, {args.size}x{args.size}, float32 eager, `torch.inference_mode`, "
            f"{args.threads} threads; median of {args.runs} runs after 1 warm-up; peak RSS of the whole "
            "process (Python + torch + model + activations). FLOPs: torch FlopCounterMode (2 per multiply-"
            "accumulate), counted on the meta device.\n\n"
            + markdown_table(["preset", "parameters", f"GFLOP at {args.size}x{args.size}", "TFLOP at 2152x1436",
                              "median ms", "min ms", "peak RSS MB"], rows))
    write_result("model", f"Model forward at {args.size}x{args.size} (CPU)", body)


if __name__ == "__main__":
    main()
