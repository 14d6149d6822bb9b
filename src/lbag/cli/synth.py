"""``lbag synth``: generate a locally blurred dataset with exact masks (the embedded default data)."""

from __future__ import annotations

import os

from . import UserError


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--size must look like WIDTHxHEIGHT (e.g. 2152x1436), got {text!r}") from None
    return w, h


def _range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"expected LOW,HIGH, got {text!r}") from None
    return lo, hi


def register(sub) -> None:
    p = sub.add_parser("synth", help="generate synthetic local motion blur pairs with exact masks")
    p.add_argument("--out", required=True, help="output root (gets dataset/ and masks/)")
    p.add_argument("--scenes", type=int, default=8, help="number of scenes (default 8)")
    p.add_argument("--size", default="512x384", help="WIDTHxHEIGHT (ReLoBlur: 2152x1436; default 512x384)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images-per-scene", type=int, default=6, help="pairs per scene (one sequence)")
    p.add_argument("--test-fraction", type=float, default=0.25, help="share of scenes in the test split")
    p.add_argument("--blur-extent", default="15,70", help="LOW,HIGH blur extent in pixels")
    p.add_argument("--blurred-area", default="0.05,0.20", help="LOW,HIGH blurred fraction of the frame")
    p.add_argument("--images", default=None, help="folder of your own sharp photos to use as sources")
    p.add_argument("--no-noise", action="store_true", help="noise-free pairs")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.synth import SynthConfig, generate

    kw = {}
    if args.images:
        if not os.path.isdir(args.images):
            raise UserError(f"--images {args.images}: not a folder")
        kw["images_dir"] = args.images
    if args.no_noise:
        kw.update(full_well=float("inf"), read_noise=0.0)
    try:
        cfg = SynthConfig(size=_size(args.size), scenes=args.scenes, seed=args.seed,
                          images_per_sequence=args.images_per_scene, test_fraction=args.test_fraction,
                          blur_extent=_range(args.blur_extent), blurred_area=_range(args.blurred_area), **kw)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    summary = generate(args.out, cfg, workers=max(1, args.workers))
    n = len(summary["samples"])
    areas = [s["blurred_area"] for s in summary["samples"]]
    mean = sum(areas) / n if n else 0.0
    print(f"{args.out}: {n} pairs ({sum(1 for s in summary['samples'] if s['split'] == 'test')} test), "
          f"mean blurred area {mean:.1%}")
    return 0
