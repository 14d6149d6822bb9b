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
    p.add_argument("--images", default=None,
                   help="folder of your own sharp photos: backgrounds and moving objects come only from them, "
                        "split by photo so the test scenes use photos no training scene uses")
    p.add_argument("--sharp-at", choices=("start", "middle"), default="start",
                   help="where the sharp exposure sits in the long one: start (ReLoBlur's protocol, default) or "
                        "middle (centred; a symmetric streak then determines the target)")
    p.add_argument("--object-shape", choices=("cutout", "blob"), default="cutout",
                   help="moving objects cut from the texture photo along its colour edges (default) or smooth blobs")
    p.add_argument("--light-strips", type=int, default=0, metavar="N",
                   help="up to N static strip lights (lamps, rows of lamps, most with a glow) per background, clipped in both frames: "
                        "a model trained with them learns that a glowing static lamp is not a motion streak (default 0)")
    p.add_argument("--no-noise", action="store_true", help="noise-free pairs")
    p.add_argument("--noise", choices=("independent", "shared"), default="independent",
                   help="independent: each frame its own noise, as two real cameras (default); shared: one noise "
                        "draw for both frames, so untouched pixels are identical in the pair and a model trained "
                        "on it leaves static areas alone instead of denoising them")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from ..atomic import check_output_dir, remove_stale_temps
    from ..data.synth import SynthConfig, generate

    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    kw = {}
    if args.images:
        if not os.path.isdir(args.images):
            raise UserError(f"--images {args.images}: not a folder")
        kw.update(images_dir=args.images, sources=("folder",))  # only the user's photos
    if args.no_noise:
        kw.update(full_well=float("inf"), read_noise=0.0)
    try:
        cfg = SynthConfig(size=_size(args.size), scenes=args.scenes, seed=args.seed,
                          images_per_sequence=args.images_per_scene, test_fraction=args.test_fraction,
                          blur_extent=_range(args.blur_extent), blurred_area=_range(args.blurred_area),
                          sharp_at=args.sharp_at, object_shape=args.object_shape, noise=args.noise,
                          light_strips=args.light_strips, **kw)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    check_output_dir(args.out)  # a file, no permission, read-only: one line before any rendering
    removed = remove_stale_temps(args.out, recursive=True)  # half-written files of a killed run
    if removed:
        print(f"lbag synth: removed {len(removed)} temporary file(s) left by an interrupted run", file=sys.stderr)
    try:
        summary = generate(args.out, cfg, workers=args.workers, warn=lambda m: print(m, file=sys.stderr))
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    n = len(summary["samples"])
    areas = [s["blurred_area"] for s in summary["samples"]]
    mean = sum(areas) / n if n else 0.0
    skipped = summary.get("photos", {}).get("skipped", [])
    if skipped:
        print(f"{len(skipped)} unreadable photo(s) skipped (listed in synth.json)", file=sys.stderr)
    print(f"{args.out}: {n} pairs ({sum(1 for s in summary['samples'] if s['split'] == 'test')} test), "
          f"mean blurred area {mean:.1%}")
    return 0
