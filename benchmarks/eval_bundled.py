"""Metrics of the bundled model on a held-out synthetic test split, against the blurred input.

The test split of the bundled model's data (configs/bundled_photos_stage2.yaml) is made from photos that no
training scene uses (``lbag synth --images`` splits by photo). This deblurs every test image and reports
PSNR, SSIM, PSNR_w, SSIM_w (the paper's protocol: 8-bit quantised), the PSNR on the static (unblurred)
pixels against the sharp image, and the PSNR between output and input on those static pixels (how much
the model touched what it should leave alone).

The model runs through the float32 reference path (``eager``) and through the default path of this
machine (``lbag.accel.auto_path``), so the table also shows what the default path changes.

Make the data first (see configs/bundled_photos_stage2.yaml for the exact command; the photos are in
../shared/data/photos, not part of the package).

Usage: python benchmarks/eval_bundled.py --data runs/photo_data_shared [--weights FILE] [--name NAME]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from common import markdown_table, write_result

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / "runs" / "photo_data_shared"),
                    help="dataset root made by lbag synth --images (default: the repository's runs/photo_data_shared)")
    ap.add_argument("--name", default="bundled_model", help="result name (benchmarks/results/NAME.md)")
    ap.add_argument("--weights", default=None, help="weights (default: the bundled model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-images", type=int, default=None, help="first N test images only (smoke runs)")
    args = ap.parse_args()
    from lbag.accel import auto_path, prepare
    from lbag.data import ValDataset
    from lbag.data.layout import has_split
    from lbag.infer import deblur_tensor, load_for_inference
    from lbag.metrics import compute_metrics, psnr_float, psnr_weighted

    torch.set_num_threads(args.threads)
    root = Path(args.data)
    if not has_split(root, "test"):
        raise SystemExit(f"{root}: no test split; make it as configs/bundled_photos_stage2.yaml says")
    ds = ValDataset(root, split="test", max_images=args.max_images)
    model = load_for_inference(args.weights)
    paths = ["eager"] + ([auto_path("cpu")] if auto_path("cpu") not in ("eager", "channels_last") else [])
    runners = {name: prepare(load_for_inference(args.weights), "cpu", name) for name in paths}
    keys = ("psnr", "ssim", "psnr_w", "ssim_w", "psnr_static", "static_vs_input")
    names = ["blurred input"] + [f"deblurred ({name})" for name in paths]
    acc = {name: {k: [] for k in keys} for name in names}
    agreement = []  # PSNR of the default path's output against the eager output, per image
    t0 = time.perf_counter()
    for i in range(len(ds)):
        item = ds[i]
        blur, sharp, mask = item["blur"][None], item["sharp"][None], item["mask"][None]
        outs = {name: deblur_tensor(model, blur, tile=0, forward=r).image for name, r in runners.items()}
        if len(outs) > 1:
            agreement.append(float(psnr_float(outs[paths[1]], outs["eager"])[0]))
        for name, img in [("blurred input", blur)] + [(f"deblurred ({n})", o) for n, o in outs.items()]:
            m = compute_metrics(img, sharp, mask, aligned=False)
            vals = {k: float(m[k][0]) for k in ("psnr", "ssim", "psnr_w", "ssim_w")}
            vals["psnr_static"] = float(psnr_weighted(img, sharp, 1 - mask)[0])
            vals["static_vs_input"] = float(psnr_weighted(img, blur, 1 - mask)[0])
            for k in keys:
                acc[name][k].append(vals[k])
    dt = time.perf_counter() - t0

    def mean(v):
        v = [x for x in v if math.isfinite(x)]
        return float(np.mean(v)) if v else float("inf")

    rows = [[name] + [f"{mean(acc[name][k]):.4f}" if "ssim" in k else f"{mean(acc[name][k]):.2f}" for k in keys]
            for name in acc]
    gain = {k: mean(acc["deblurred (eager)"][k]) - mean(acc["blurred input"][k]) for k in keys[:4]}
    h, w = ds[0]["blur"].shape[-2:]
    body = (f"{len(ds)} held-out synthetic test images ({w}x{h}, scenes never seen in training; generator "
            f"{root}, photos held out from training), untiled CPU inference ({dt:.0f} s in total). dB figures are 8-bit quantised "
            "as in the paper's protocol; PSNR_w / SSIM_w over the exact blur mask; 'psnr_static' against the "
            "sharp image over pixels no object touched (with independent noise in the two exposures it is bounded "
            "by that noise; with shared noise the input's static pixels equal the sharp ones); 'static_vs_input' = PSNR between output and input over those pixels (inf for the "
            "input itself).\n\n" + markdown_table(["image"] + list(keys), rows)
            + "\n\nGain of the deblurred output (eager) over the blurred input: "
            + ", ".join(f"{k} {v:+.4f}" if "ssim" in k else f"{k} {v:+.2f} dB" for k, v in gain.items()) + ".")
    if agreement:
        body += (f"\n\n`{paths[1]}` (this machine's default path) vs `eager` output: PSNR min "
                 f"{min(agreement):.1f} dB, median {float(np.median(agreement)):.1f} dB over {len(agreement)} images.")
    write_result(args.name, f"Model {args.weights or 'bundled'} on held-out synthetic test images", body)


if __name__ == "__main__":
    main()
