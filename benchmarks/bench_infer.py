"""Full-resolution inference: tiled vs untiled agreement (chooses DEFAULT_OVERLAP), memory per pixel
(checks lbag.infer.bytes_per_pixel), and 2152x1436 (ReLoBlur size) tiled deblur time and peak memory.

Every memory figure comes from a fresh subprocess (peak RSS growth over the model-only baseline), started
before this process allocates anything big: Linux carries a process's peak RSS over into the children it
starts (fork + exec), so a large parent would mask a small child's peak. The
machine is shared with other jobs: ratios (tiled / untiled) matter more than absolute seconds.

Usage: python benchmarks/bench_infer.py [--weights FILE] [--full-lbag] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

from common import markdown_table, timeit, write_result


def _model(kind: str, weights: str | None):
    import torch

    from lbag.infer import load_for_inference
    from lbag.models import lbag

    if kind == "lbag":
        torch.manual_seed(0)
        return lbag().eval()  # untrained: timing and memory only
    return load_for_inference(weights)


def child_memory(kind: str, weights: str | None, h: int, w: int, tile: int, threads: int) -> None:
    """Peak RSS growth of one deblur_tensor call (tile=0: untiled)."""
    import torch
    from common import peak_rss_mb

    from lbag.infer import deblur_tensor

    torch.set_num_threads(threads)
    model = _model(kind, weights)
    x = torch.rand(1, 3, h, w)
    deblur_tensor(model, torch.rand(1, 3, 64, 64), tile=0)  # warm the allocator and kernels
    base = peak_rss_mb()
    t = timeit(lambda: deblur_tensor(model, x, tile=tile), warmup=0, runs=1)
    print(json.dumps({"seconds": t["median"], "peak_mb": peak_rss_mb(), "base_mb": base}))


def _isolated(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def agreement(weights: str | None, threads: int) -> str:
    """Tiled vs untiled on synthetic scenes the bundled model was trained for."""
    import numpy as np
    import torch

    from lbag.data.synth import SynthConfig, render_sample
    from lbag.infer import deblur_tensor
    from lbag.pixels import to_float01

    torch.set_num_threads(threads)
    model = _model("bundled", weights)
    imgs = []
    for seed in (11, 12):
        r = render_sample(SynthConfig(size=(512, 384), seed=seed), np.random.default_rng([seed, 0]))
        imgs.append(torch.from_numpy(to_float01(r.blur)).permute(2, 0, 1)[None])
    x = torch.cat(imgs)
    full = deblur_tensor(model, x, tile=0).image
    rows = []
    for tile in (128, 256):
        for overlap in (0, 16, 32, 48, 64, 96):
            if overlap >= tile // 2:
                continue
            res = deblur_tensor(model, x, tile=tile, overlap=overlap)
            d = (res.image - full).abs()
            mse = float((d ** 2).mean())
            p = 10 * math.log10(1 / mse) if mse > 0 else float("inf")
            rows.append([tile, overlap, res.tiles, f"{float(d.max()):.2e}", f"{float(d.mean()):.2e}", f"{p:.1f}"])
    table = markdown_table(["tile", "overlap", "tiles", "max abs diff", "mean abs diff", "PSNR tiled vs untiled (dB)"],
                           rows)
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", default=None, help="weights (default: the bundled model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--full-lbag", action="store_true", help="also time the full (untrained) LBAG at 2152x1436")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, h, w, tile, threads = args.child
        child_memory(kind, args.weights, int(h), int(w), int(tile), int(threads))
        return

    from lbag.infer import DEFAULT_OVERLAP, auto_tile_size, bytes_per_pixel
    from lbag.models import lbag, lbag_small

    wargs = ["--weights", args.weights] if args.weights else []
    sections = []

    # 2. memory per pixel, untiled, vs the estimate used for the automatic tile size
    rows = []
    for kind, model in (("bundled", lbag_small()), ("lbag", lbag())):
        side = 512
        r = _isolated(*wargs, "--child", kind, str(side), str(side), "0", str(args.threads))
        measured = (r["peak_mb"] - r["base_mb"]) * 2 ** 20 / side ** 2
        rows.append([kind, f"{side}x{side}", f"{r['peak_mb'] - r['base_mb']:.0f}", f"{measured / 1024:.1f}",
                     f"{bytes_per_pixel(model) / 1024:.1f}", f"{r['seconds']:.2f}"])
    sections.append("### Untiled memory per pixel\n\n" + markdown_table(
        ["model", "size", "peak RSS growth MB", "measured KB/px", "estimate used KB/px", "seconds"], rows))

    # 3. ReLoBlur-size image, tiled (automatic tile for this machine and a small one)
    import torch
    rows = []
    auto = auto_tile_size(lbag_small(), torch.device("cpu"))
    kinds = [("bundled", t) for t in dict.fromkeys((0, auto, 512, 256))] + ([("lbag", 512)] if args.full_lbag else [])
    for kind, tile in kinds:
        r = _isolated(*wargs, "--child", kind, "1436", "2152", str(tile), str(args.threads))
        rows.append([kind, "untiled" if tile == 0 else f"{tile}" + (" (auto)" if tile == auto else ""),
                     f"{r['seconds']:.2f}", f"{r['peak_mb'] - r['base_mb']:.0f}", f"{r['peak_mb']:.0f}"])
    sections.append("### 2152x1436 deblur (one image, batch 1)\n\n" + markdown_table(
        ["model", "tile", "seconds", "peak RSS growth MB", "peak RSS MB"], rows)
        + "\n\n`bundled` = lbag_small_synth (543k parameters); `lbag` = the full 16.1M-parameter network "
          "(untrained, same cost as trained).")
    # 1. agreement and the choice of the default overlap
    table = agreement(args.weights, args.threads)
    sections.insert(0, "### Tiled vs untiled (bundled model, two synthetic 512x384 scenes)\n\n"
                    f"{table}\n\nlbag.infer.DEFAULT_OVERLAP = {DEFAULT_OVERLAP} px.")

    body = (f"float32 eager, {args.threads} threads, `torch.inference_mode`; each memory/time figure from a "
            "fresh process, one run each (repeated full-resolution runs would be slow; treat seconds as "
            "indicative).\n\n" + "\n\n".join(sections))
    write_result("infer", "Full-resolution tiled inference (CPU)", body)


if __name__ == "__main__":
    main()
