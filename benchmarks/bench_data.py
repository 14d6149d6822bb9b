"""Data pipeline speed: TrainDataset patches/s from the decode-once cache vs decoding PNGs per patch,
and ``lbag synth`` images/s at ReLoBlur resolution (2152x1436).

Usage: python benchmarks/bench_data.py [--images 4] [--patches 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


from common import markdown_table, timeit, write_result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=4, help="pairs rendered at 2152x1436")
    ap.add_argument("--patches", type=int, default=200, help="patches per timed run")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    import cv2
    import torch

    from lbag.data import TrainDataset
    from lbag.data.synth import SynthConfig, generate

    torch.set_num_threads(1)
    cv2.setNumThreads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        cfg = SynthConfig(size=(2152, 1436), scenes=1, images_per_sequence=args.images, test_fraction=0.0)
        t0 = time.perf_counter()
        generate(root, cfg, progress=False, workers=1)
        gen_s = (time.perf_counter() - t0) / args.images

        def patches(ds: TrainDataset, n: int) -> None:
            for k in range(n):
                ds.set_epoch(k // len(ds))
                ds[k % len(ds)]

        cached = TrainDataset(root, patch_size=256, cache_dir=Path(tmp) / "cache")
        t0 = time.perf_counter()
        patches(cached, len(cached))  # first touch decodes and stores every file
        fill_s = time.perf_counter() - t0
        png = TrainDataset(root, patch_size=256, cache_dir=False)
        t_cache = timeit(lambda: patches(cached, args.patches), warmup=1, runs=args.runs)
        n_png = max(8, args.patches // 20)
        t_png = timeit(lambda: patches(png, n_png), warmup=1, runs=args.runs)
    cache_ps = args.patches / t_cache["median"]
    png_ps = n_png / t_png["median"]
    rows = [["TrainDataset, decode-once cache (memory-mapped .npy)", f"{cache_ps:.0f} patches/s",
             f"{cache_ps / png_ps:.1f}x"],
            ["TrainDataset, PNG decoded per patch (reference)", f"{png_ps:.1f} patches/s", "1.0x"],
            ["cache fill (first epoch, decode + store)", f"{fill_s / len(cached):.2f} s/pair", ""],
            ["`lbag synth` at 2152x1436, 1 process (render + 3 PNG writes)", f"{1 / gen_s:.2f} images/s",
             f"{gen_s:.1f} s/image"]]
    body = (f"256x256 BAPC patches (p=0.5, h-flip) from {args.images} synthetic 2152x1436 pairs, one process "
            f"(a DataLoader worker's view), torch 1 thread, OpenCV 2 threads; median of {args.runs} runs "
            f"after 1 warm-up ({args.patches} cached / {n_png} PNG patches per run). The ratio, measured "
            "in the same run, is the robust figure. Generator: the same run's rendering time per "
            "pair, single process (`--workers N` parallelises over scenes).\n\n"
            + markdown_table(["path", "throughput", "ratio / note"], rows))
    write_result("data", "Data pipeline: cached vs PNG patches, generator speed", body)


if __name__ == "__main__":
    main()
