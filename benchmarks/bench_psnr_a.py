"""PSNR_a agreement: the default (fast) coarse-to-fine ECC of ``lbag evaluate`` against the reference
full-resolution ECC, on locally blurred pairs where the prediction is the blurred input itself (the hard
case of issue 12: the optimum of ECC on a locally blurred image moves between pyramid levels) and on
outputs of the bundled model.

Data: ``lbag synth`` scenes at 1076x718 and 2152x1436 (ReLoBlur size), generated into a temporary
folder unless ``--data`` names an earlier one. Every pair is measured three ways on the protocol's
8-bit images (``lbag.metrics.aligned.psnr_aligned_u8``): the reference (``exact=True``), the fast
default, and the fast path as it was before issue 12 (one full-resolution iteration:
``refine_iterations=1, refine_tol=None``). Writes ``benchmarks/results/psnr_a.md``.

Usage: python benchmarks/bench_psnr_a.py [--data DIR] [--half-scenes 4] [--full-scenes 2] [--deblurred 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import markdown_table, write_result

from lbag.data.layout import decode_image
from lbag.metrics.aligned import describe_fast_path, psnr_aligned_u8

SIZES = {"1076x718": "half-scenes", "2152x1436": "full-scenes"}
OLD_FAST = {"refine_iterations": 1, "refine_tol": None}


def make_data(root: Path, size: str, scenes: int, seed: int) -> Path:
    out = root / size
    if not (out / "dataset").is_dir():
        subprocess.run([sys.executable, "-m", "lbag", "synth", "--out", str(out), "--scenes", str(scenes),
                        "--images-per-scene", "4", "--size", size, "--seed", str(seed), "--workers", "1"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def pairs(root: Path, size: str, n_deblurred: int, model) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(size, kind, prediction uint8, ground truth uint8) for every blurred image, plus the bundled
    model's output for the first ``n_deblurred``."""
    from lbag.infer import deblur_tensor

    out = []
    for k, blur_path in enumerate(sorted(root.glob("dataset/*/*/*/*_blur.png"))):
        blur = decode_image(blur_path)
        sharp = decode_image(blur_path.with_name(blur_path.name.replace("_blur", "_sharp")))
        out.append((size, "blurred input", blur, sharp))
        if k < n_deblurred:
            x = torch.from_numpy(blur.astype(np.float32) / 255).permute(2, 0, 1)
            res = deblur_tensor(model, x, tile=512)
            pred = np.rint(res.image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            out.append((size, "bundled model output", pred, sharp))
    return out


def psnr_a(pred: np.ndarray, gt: np.ndarray, **kwargs) -> tuple[float, float]:
    """(PSNR_a in dB, seconds) of one 8-bit pair."""
    t0 = time.perf_counter()
    v, _ = psnr_aligned_u8(pred[None], gt[None], np.zeros(1, bool), **kwargs)
    return float(v[0]), time.perf_counter() - t0


def summary_rows(rows: list[dict]) -> list[list[object]]:
    out = []
    for size in SIZES:
        for kind in ("blurred input", "bundled model output", "all"):
            sel = [r for r in rows if r["size"] == size and kind in ("all", r["kind"])]
            if not sel or (kind == "all" and len({r["kind"] for r in sel}) < 2):
                continue
            old = [abs(r["old"] - r["exact"]) for r in sel]
            new = [abs(r["fast"] - r["exact"]) for r in sel]
            te, tf = (statistics.median(r[k] for r in sel) for k in ("t_exact", "t_fast"))
            out.append([size, kind, len(sel), f"{max(old):.4f}", f"{statistics.median(old):.4f}",
                        f"{max(new):.1e}", f"{statistics.median(new):.1e}", f"{te:.2f}", f"{tf:.2f}",
                        f"{te / tf:.1f}x"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="folder for the synthetic scenes (kept; reused)")
    ap.add_argument("--half-scenes", type=int, default=4, help="scenes of 4 pairs at 1076x718")
    ap.add_argument("--full-scenes", type=int, default=2, help="scenes of 4 pairs at 2152x1436")
    ap.add_argument("--deblurred", type=int, default=3, help="bundled-model outputs per size")
    args = ap.parse_args()

    from lbag.infer import load_for_inference

    model = load_for_inference()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or Path(tmp)
        items = []
        for seed, (size, arg) in enumerate(SIZES.items(), start=11):
            scenes = getattr(args, arg.replace("-", "_"))
            if scenes > 0:
                items += pairs(make_data(root, size, scenes, seed), size, args.deblurred, model)
        rows = []
        for size, kind, pred, gt in items:
            exact, t_exact = psnr_a(pred, gt, exact=True)
            fast, t_fast = psnr_a(pred, gt)
            old, _ = psnr_a(pred, gt, **OLD_FAST)
            rows.append({"size": size, "kind": kind, "exact": exact, "fast": fast, "old": old,
                         "t_exact": t_exact, "t_fast": t_fast})
            print(f"{size} {kind}: exact {exact:.4f}  fast {fast - exact:+.5f}  before {old - exact:+.4f}  "
                  f"({t_exact:.1f} s / {t_fast:.2f} s)", flush=True)
    worst = max(abs(r["fast"] - r["exact"]) for r in rows)
    body = (f"{len(rows)} pairs from `lbag synth` (seeds 11 and 12, 4 pairs per scene), PSNR_a of the 8-bit "
            f"images, denominator 'all'. Fast path: {describe_fast_path()}. 'before' is the fast path before "
            f"issue 12 (one full-resolution iteration). Largest |fast - exact| over all pairs: {worst:.1e} dB "
            "(target: 0.005 dB on every pair). Times are medians per image, one process.\n\n"
            + markdown_table(["size", "prediction", "pairs", "before: max dB", "before: median dB",
                              "fast: max dB", "fast: median dB", "exact s", "fast s", "speed-up"],
                             summary_rows(rows))
            + "\n\nPer pair (dB; fast and before as differences to exact):\n\n"
            + markdown_table(["size", "prediction", "exact", "fast - exact", "before - exact", "exact s", "fast s"],
                             [[r["size"], r["kind"], f"{r['exact']:.4f}", f"{r['fast'] - r['exact']:+.1e}",
                               f"{r['old'] - r['exact']:+.4f}", f"{r['t_exact']:.1f}", f"{r['t_fast']:.2f}"]
                              for r in rows]))
    write_result("psnr_a", "PSNR_a: fast coarse-to-fine ECC vs the reference", body)


if __name__ == "__main__":
    main()
