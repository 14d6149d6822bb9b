"""``lbag demo``: the end-to-end demo on embedded data (what ``make demo`` runs).

Renders one locally blurred synthetic scene (static background, moving objects, exact blur mask; the
image formation of Li et al., "Real-World Deep Local Motion Deblurring", AAAI 2023), deblurs it with
the bundled LBAG model, writes the pictures to ``outputs/demo/`` and prints the published metrics for
the blurred input and for the deblurred output.
"""

from __future__ import annotations

import time

from . import UserError


def register(sub) -> None:
    p = sub.add_parser("demo", help="deblur a synthetic locally blurred scene with the bundled model")
    p.add_argument("-o", "--output", default="outputs/demo", help="output folder (default: outputs/demo)")
    p.add_argument("--size", default="448x336", metavar="WxH",
                   help="scene size in pixels, WIDTHxHEIGHT as for lbag synth (default: 448x336)")
    p.add_argument("--seed", type=int, default=2026, help="scene seed (default: 2026)")
    p.add_argument("--weights", default=None, help="weights file (default: the bundled model)")
    p.add_argument("--path", default="auto", metavar="PATH",
                   help="inference path: auto (default), eager, channels_last, bf16, compile (see lbag deblur)")
    p.add_argument("--sharp-at", choices=("start", "middle"), default=None,
                   help="where the ground-truth sharp frame sits in the exposure (default: what the bundled "
                        "model was trained for; start with --weights, the ReLoBlur protocol)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    import numpy as np
    import torch

    from ..accel import prepare
    from ..atomic import check_output_dir
    from ..data.synth import SynthConfig, render_sample
    from ..infer import BUNDLED_SHARP_AT, deblur_tensor, load_for_inference, model_banner
    from ..models import CheckpointError
    from ..pixels import to_float01
    from .synth import _size

    w, h = _size(args.size)  # the WIDTHxHEIGHT form of lbag synth
    if w < 64 or h < 64:
        raise UserError(f"--size must be at least 64x64, got {w}x{h}")
    out = check_output_dir(args.output)  # before rendering: a file, no permission, read-only
    t0 = time.perf_counter()
    sharp_at = args.sharp_at or ("start" if args.weights else BUNDLED_SHARP_AT)
    scene = render_sample(SynthConfig(size=(w, h), seed=args.seed, sharp_at=sharp_at),
                          np.random.default_rng([args.seed, 0]))
    blur, sharp, mask = to_float01(scene.blur), to_float01(scene.sharp), scene.mask
    t_render = time.perf_counter() - t0

    try:
        model = load_for_inference(args.weights)
        runner = prepare(model, "cpu", args.path)
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    t0 = time.perf_counter()
    res = deblur_tensor(model, torch.from_numpy(blur).permute(2, 0, 1), tile=0, forward=runner)
    t_deblur = time.perf_counter() - t0
    deblurred = res.image.permute(1, 2, 0).numpy()
    pred_mask = res.mask[0].numpy() if res.mask is not None else None

    _write_pictures(out, blur, sharp, deblurred, mask, pred_mask)
    rows = _metric_rows(blur, sharp, deblurred, mask)

    weights = args.weights or "the bundled demonstration model"
    print(f"lbag demo: synthetic {w}x{h} scene (seed {args.seed}), {100 * mask.mean():.1f}% of the pixels "
          f"blurred, blur extents {', '.join(f'{e:.0f}' for e in scene.extents)} px, sharp frame at the {sharp_at} "
          f"of the exposure; rendered in {t_render:.1f} s")
    print(f"deblurred with {weights} in {t_deblur:.2f} s, inference path {runner.description}")
    for line in model_banner(args.weights, model):
        print(line)
    print()
    _print_table(rows)
    print()
    print("dB values are 8-bit quantised (the paper's protocol). PSNR_w/SSIM_w: over the blurred region. PSNR static:")
    print("vs the sharp image over the pixels no object touched (sensor noise of the two exposures bounds it).")
    print("static vs input: PSNR between output and input on those pixels (high = static pixels left alone).")
    print(f"wrote {out}/: blurred.png, deblurred.png, sharp.png, predicted_mask.png, true_mask.png, comparison.png")
    return 0


def _write_pictures(out, blur, sharp, deblurred, mask, pred_mask) -> None:
    """The images of the demo and the side-by-side comparison picture."""
    import numpy as np

    from ..data.layout import write_image, write_mask
    from ..panels import comparison_picture, mask_to_rgb, overlay_mask

    write_image(out / "blurred.png", blur)
    write_image(out / "sharp.png", sharp)
    write_image(out / "deblurred.png", deblurred)
    write_mask(out / "true_mask.png", mask)
    panels = [("blurred input", blur), ("deblurred", deblurred), ("sharp (ground truth)", sharp)]
    if pred_mask is not None:
        write_image(out / "predicted_mask.png", pred_mask)
        panels.append(("predicted blur mask", mask_to_rgb(pred_mask)))
    panels.append(("true blur mask", overlay_mask(sharp, mask.astype(np.float32))))
    write_image(out / "comparison.png", comparison_picture(panels))


def _metric_rows(blur, sharp, deblurred, mask) -> list[tuple]:
    """(name, PSNR, SSIM, PSNR_w, SSIM_w, PSNR static, static vs input) of the input and the output."""
    import numpy as np
    import torch

    from ..metrics import compute_metrics, psnr_weighted

    def chw(a):
        return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]

    m_t = torch.from_numpy(mask.astype(np.float32))[None, None]
    rows = []
    for name, img in (("blurred input", blur), ("deblurred", deblurred)):
        m = compute_metrics(chw(img), chw(sharp), m_t, aligned=False)
        static = psnr_weighted(chw(img), chw(sharp), 1 - m_t)  # PSNR over the pixels nothing moved in
        # How far the static pixels moved away from the input (inf for the input itself).
        kept = psnr_weighted(chw(img), chw(blur), 1 - m_t)
        rows.append((name, float(m["psnr"][0]), float(m["ssim"][0]), float(m["psnr_w"][0]),
                     float(m["ssim_w"][0]), float(static[0]), float(kept[0])))
    return rows


def _print_table(rows: list[tuple]) -> None:
    print(f"| {'image':<14} | {'PSNR':>6} | {'SSIM':>6} | {'PSNR_w':>6} | {'SSIM_w':>6} | {'PSNR static':>11} "
          f"| {'static vs input':>15} |")
    print(f"|{'-' * 16}|{'-' * 8}|{'-' * 8}|{'-' * 8}|{'-' * 8}|{'-' * 13}|{'-' * 17}|")
    for name, p, s, pw, sw, st, kept in rows:
        print(f"| {name:<14} | {p:6.2f} | {s:6.4f} | {pw:6.2f} | {sw:6.4f} | {st:11.2f} | {kept:15.2f} |")
