"""Forward time and peak memory of every Table 1 network (lbag.models.registry) on the default CPU path.

Each (model, size) case runs in a fresh process, so its peak resident memory (VmHWM) is its own. The
network runs through the path ``lbag deblur`` uses by default (``lbag.accel.prepare(model, 'cpu',
'auto')``: bf16 for the MIMO-UNet family where the CPU has it, float32 channels_last for the others),
with fresh random weights (timing does not depend on their values).

* ``256``: one 256x256 forward (batch 1), median of ``--runs`` after one warm-up.
* ``full``: one 2152x1436 image through ``lbag.infer.deblur_tensor`` with the model's default tiling
  (automatic tile size, the model's alignment and overlap), one timed run after no warm-up.

MACs: ``lbag.table1.count_macs`` (FlopCounterMode on the meta device, no compute).

Usage: python benchmarks/bench_baselines.py [--sizes 256,full] [--runs 3] [--warmup 1] [--threads 2]
       [--models a,b]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from common import markdown_table, timeit, write_result

FULL = (1436, 2152)  # H, W of a ReLoBlur image


def child(name: str, size: str, runs: int, threads: int, warmup: int = 1) -> None:
    import torch

    from common import peak_rss_mb
    from lbag.accel import prepare
    from lbag.infer import deblur_tensor
    from lbag.models import build

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build(name).eval()
    runner = prepare(model, "cpu", "auto")
    base = peak_rss_mb()
    if size == "256":
        x = torch.rand(1, 3, 256, 256)
        with torch.inference_mode():
            t = timeit(lambda: runner(x), warmup=warmup, runs=runs)
        tiles = tile = 0
    else:
        x = torch.rand(3, *FULL)
        result = {}

        def run() -> None:
            result["r"] = deblur_tensor(model, x, forward=runner)

        t = timeit(run, warmup=0, runs=1)
        tiles, tile = result["r"].tiles, result["r"].tile
    print(json.dumps({"name": name, "size": size, "path": runner.name, "median_s": t["median"], "min_s": t["min"],
                      "runs": t["runs"], "tiles": tiles, "tile": tile, "peak_rss_mb": peak_rss_mb(),
                      "model_rss_mb": base}))


def _measure(name: str, size: str, runs: int, threads: int, warmup: int) -> dict:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    proc = subprocess.run([sys.executable, __file__, "--child", name, "--size", size, "--runs", str(runs),
                           "--threads", str(threads), "--warmup", str(warmup)], capture_output=True, text=True)
    if proc.returncode:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"name": name, "size": size, "error": tail[:160], "load": load}
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "load": load}


def _rows(results: list[dict], size: str, macs: dict) -> list[list[object]]:
    rows = []
    for r in results:
        if r["size"] != size:
            continue
        if "error" in r:
            rows.append([r["name"], "-", "-", "-", "-", "-", f"failed: {r['error']}", f"{r['load']:.1f}"])
            continue
        where = f"{r['tiles']} tiles of {r['tile']} px" if r["tiles"] > 1 else ("whole image" if size == "full" else "")
        rows.append([r["name"], r["path"], macs.get((r["name"], size), "-"), f"{r['median_s']:.2f}",
                     f"{r['min_s']:.2f}", f"{r['peak_rss_mb']:.0f} ({r['model_rss_mb']:.0f})", where,
                     f"{r['load']:.1f}"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="256,full", help="256 and/or full (2152x1436 tiled)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs at 256x256 (full: one)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs before the timed ones at 256x256")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", help="comma-separated registry names (default: every architecture)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--size", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.size, args.runs, args.threads, args.warmup)
        return
    import torch

    from lbag.models import architectures
    from lbag.table1 import count_macs

    torch.set_num_threads(args.threads)  # the cases run with it; the result's machine line reports it

    start_load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    names = args.models.split(",") if args.models else list(architectures())
    sizes = [s for s in ("256", "full") if s in args.sizes.split(",")]
    results, macs = [], {}
    for name in names:
        for size in sizes:
            print(f"== {name} {size}", flush=True)
            results.append(_measure(name, size, args.runs, args.threads, args.warmup))
            h, w = (256, 256) if size == "256" else FULL
            try:
                macs[(name, size)] = f"{count_macs(name, h, w) / 1e9:,.1f}"
            except Exception:  # not countable: the table says '-'
                pass
    body = (f"1-minute load average when the run started: {start_load:.1f} on {os.cpu_count()} cores (other jobs slow "
            "every figure).\n\n"
            f"Random weights, batch 1, {args.threads} torch thread(s) per case, the default path of `lbag deblur` "
            "(`prepare(model, 'cpu', 'auto')`); each case in its own process. Peak RSS of the whole process "
            "(Python + torch + model + activations), the model alone in parentheses. 'load before': the 1-minute "
            "load average just before the case started.\n")
    header = ["model", "path", "GMAC", "median s", "min s", "peak RSS MB (model)", "tiling", "load before"]
    for size, title in (("256", f"256x256, median of {args.runs} after {args.warmup} warm-up"),
                        ("full", "2152x1436, `deblur_tensor` with the model's default tiling, one run")):
        if size in sizes:
            body += f"\n{title}:\n\n" + markdown_table(header, _rows(results, size, macs)) + "\n"
    write_result("baselines", "Table 1 networks: forward time and memory (CPU)", body)


if __name__ == "__main__":
    main()
