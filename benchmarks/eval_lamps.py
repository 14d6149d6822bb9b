"""Do models leave static lamps alone? The lamps of ``lbag synth --light-strips`` on still backgrounds.

For each seed, a 512x384 background is rendered twice from the same random stream, without and with
up to 6 static strip lights (70 % of them glowing), encoded to 8 bits, and deblurred. Nothing moves,
so every change is an error. Reported per model: the mean change (8-bit levels) and the mean predicted
mask over the lamp pixels (those the lamps changed), and the mean |change| elsewhere.

Usage: python benchmarks/eval_lamps.py [--images DIR] [--weights A.safetensors B.safetensors ...]
(default images: ../shared/data/photos when present, else the generator's embedded sources;
``bundled`` in --weights means the bundled model).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from common import markdown_table, write_result

HERE = Path(__file__).resolve().parent
DEFAULT_PHOTOS = HERE.parents[1] / "shared" / "data" / "photos"


def lamp_errors(weights: str | None, cfg_plain, cfg_lamps, seeds: int) -> tuple[float, float, float]:
    from lbag.accel import prepare
    from lbag.data.synth import _encode8, make_background
    from lbag.infer import deblur_tensor, load_for_inference

    model = load_for_inference(weights)
    path = prepare(model, "cpu", "auto")
    change, mask, rest = [], [], []
    for seed in range(seeds):
        plain = _encode8(make_background(cfg_plain, np.random.default_rng(seed)))
        lit = _encode8(make_background(cfg_lamps, np.random.default_rng(seed)))
        lamp = np.any(lit != plain, axis=2)
        if not lamp.any():
            continue
        img = lit.astype(np.float32) / 255
        res = deblur_tensor(model, torch.from_numpy(img).permute(2, 0, 1)[None], forward=path)
        diff = (np.clip(res.image[0].permute(1, 2, 0).numpy(), 0, 1) - img) * 255
        change.append(diff[lamp].mean())
        rest.append(np.abs(diff[~lamp]).mean())
        if res.mask is not None:
            mask.append(res.mask[0, 0].numpy()[lamp].mean())
    return float(np.mean(change)), float(np.mean(mask)) if mask else float("nan"), float(np.mean(rest))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", nargs="+", default=["bundled"])
    ap.add_argument("--images", default=str(DEFAULT_PHOTOS) if DEFAULT_PHOTOS.is_dir() else None)
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--name", default="lamps")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from lbag.data.synth import SynthConfig

    torch.set_num_threads(args.threads)
    src = dict(images_dir=args.images, sources=("folder",)) if args.images else {}
    plain, lamps = SynthConfig(**src), SynthConfig(**src, light_strips=6)
    rows = []
    for w in args.weights:
        c, m, r = lamp_errors(None if w == "bundled" else w, plain, lamps, args.seeds)
        rows.append([w, f"{c:+.2f}", f"{m:.2f}", f"{r:.2f}"])
        print(rows[-1], flush=True)
    body = (f"{args.seeds} still 512x384 backgrounds ({'photos' if args.images else 'embedded sources'}) with up to "
            "6 static strip lights each (`--light-strips`, 70 % glowing); nothing moves, so any change is an "
            "error. Gate floor of the LBAG family: mask 0.10.\n\n"
            + markdown_table(["weights", "mean change on lamps (levels)", "mean mask on lamps",
                              "mean |change| elsewhere"], rows))
    write_result(args.name, "Static lamps: changed by the model?", body)


if __name__ == "__main__":
    main()
