"""No-reference evaluation of a model on REAL photos with local motion blur (no sharp ground truth).

For every image listed in benchmarks/real_boxes.json (boxes around the moving objects, marked by hand)
the model deblurs the photo (default inference path, tiled as ``lbag deblur`` does) and this reports:

* ``grad_ratio``: gradient energy (sum of squared finite differences of the luma) of the output over
  that of the input inside the boxes: > 1 means the moving objects got sharper (target >= 1.15);
* ``static_psnr``: PSNR between output and input outside the boxes: how little the model touched the
  static background (target >= 40 dB);
* ``mask_ratio``: mean predicted blur mask inside the boxes over its mean outside (target >= 2);
* ``shift_static`` / ``shift_bright``: the largest |mean per-channel change| (8-bit levels) over the
  static pixels and over the bright static pixels (luma >= 200): colour or brightness shifts
  (target < 1).

It also writes, per image, a side-by-side crop of the first box (input | output | predicted mask) to
``--crops`` for looking at. The photos live in ../shared/data/real_local_blur (not part of the package).

Usage: python benchmarks/eval_real.py [--weights FILE] [--data DIR] [--crops docs/real] [--name NAME]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from common import markdown_table, write_result

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "real_local_blur"


def box_mask(shape: tuple[int, int], boxes: list[list[int]]) -> np.ndarray:
    inside = np.zeros(shape, bool)
    for x0, y0, x1, y1 in boxes:
        inside[y0:y1, x0:x1] = True
    return inside


def luma(img: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an RGB float image (H, W, 3) in [0, 255]."""
    return img @ np.array([0.299, 0.587, 0.114])


def grad_energy(y: np.ndarray, region: np.ndarray) -> float:
    gx, gy = np.diff(y, axis=1)[:-1, :], np.diff(y, axis=0)[:, :-1]
    return float(((gx ** 2 + gy ** 2) * region[:-1, :-1]).sum())


def measures(inp: np.ndarray, out: np.ndarray, mask: np.ndarray | None, inside: np.ndarray) -> dict:
    """The no-reference figures of one image; ``inp``/``out`` float (H, W, 3) in [0, 255]."""
    from lbag.metrics import psnr_weighted

    static = ~inside
    bright = static & (luma(inp) >= 200)
    shift = lambda region: float(np.abs((out - inp)[region].mean(axis=0)).max()) if region.any() else float("nan")
    r = {"grad_ratio": grad_energy(luma(out), inside) / max(grad_energy(luma(inp), inside), 1e-9),
         "static_psnr": float(psnr_weighted(out / 255, inp / 255, static.astype(np.float32))[0]),
         "shift_static": shift(static), "shift_bright": shift(bright), "bright_px": int(bright.sum()),
         "mask_ratio": float("nan")}
    if mask is not None:
        r["mask_ratio"] = float(mask[inside].mean() / max(mask[static].mean(), 1e-6))
    return r


def crop_picture(inp: np.ndarray, out: np.ndarray, mask: np.ndarray | None, box: list[int], pad: int = 24):
    h, w = inp.shape[:2]
    x0, y0, x1, y1 = max(0, box[0] - pad), max(0, box[1] - pad), min(w, box[2] + pad), min(h, box[3] + pad)
    panels = [inp[y0:y1, x0:x1], out[y0:y1, x0:x1]]
    if mask is not None:
        panels.append(np.repeat(mask[y0:y1, x0:x1, None] * 255, 3, axis=2))
    gap = np.full((y1 - y0, 4, 3), 255.0)
    row = np.concatenate([p for pair in zip(panels, [gap] * len(panels)) for p in pair][:-1], axis=1)
    scale = max(1, int(256 // max(1, y1 - y0)))  # small objects enlarged (nearest) to be visible
    return np.repeat(np.repeat(row, scale, axis=0), scale, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", default=None, help="weights (default: the bundled model)")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--boxes", default=str(HERE / "real_boxes.json"))
    ap.add_argument("--crops", default=None, help="folder for the side-by-side crops (none: not written)")
    ap.add_argument("--name", default="real_photos", help="result name (benchmarks/results/NAME.md)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from lbag.accel import prepare
    from lbag.data.layout import read_image, write_image
    from lbag.infer import deblur_tensor, load_for_inference

    torch.set_num_threads(args.threads)
    boxes = json.loads(Path(args.boxes).read_text())["images"]
    model = load_for_inference(args.weights)
    path = prepare(model, "cpu", "auto")
    rows, all_r = [], []
    for name, bx in boxes.items():
        img = read_image(Path(args.data) / name)
        res = deblur_tensor(model, torch.from_numpy(img).permute(2, 0, 1)[None].float(), forward=path)
        out = res.image[0].permute(1, 2, 0).numpy()
        mask = None if res.mask is None else res.mask[0, 0].numpy()
        inp8, out8 = np.rint(img * 255), np.rint(np.clip(out, 0, 1) * 255)
        r = measures(inp8, out8, mask, box_mask(img.shape[:2], bx))
        all_r.append(r)
        rows.append([name, f"{r['grad_ratio']:.3f}", f"{r['static_psnr']:.2f}", f"{r['mask_ratio']:.2f}",
                     f"{r['shift_static']:.2f}", f"{r['shift_bright']:.2f}"])
        if args.crops:
            pic = crop_picture(inp8, out8, mask, bx[0])
            write_image(Path(args.crops) / (name.replace("/", "__")), np.clip(pic, 0, 255).astype(np.uint8))
    med = {k: float(np.nanmedian([r[k] for r in all_r])) for k in ("grad_ratio", "static_psnr", "mask_ratio",
                                                                      "shift_static", "shift_bright")}
    rows.append(["median"] + [f"{med[k]:.3f}" if k == "grad_ratio" else f"{med[k]:.2f}" for k in med])
    body = (f"Model: {args.weights or 'bundled'}; inference path: {path.description}. Boxes: "
            f"{Path(args.boxes).name}. Targets: grad_ratio >= 1.15, static_psnr >= 40 dB, mask_ratio >= 2, "
            "shifts < 1 level.\n\n" + markdown_table(
                ["image", "grad_ratio", "static_psnr dB", "mask_ratio", "shift_static", "shift_bright"], rows))
    print(body)
    write_result(args.name, "Real photos with local motion blur (no ground truth)", body)


if __name__ == "__main__":
    main()
