"""``lbag compare``: the same crops of one test image from every method's outputs, with the blurred
input, ground truth and blur mask beside them, as one PNG (Fig. 6 of Li et al., AAAI 2023)."""

from __future__ import annotations

from . import UserError


def register(sub) -> None:
    p = sub.add_parser("compare", help="draw a Fig. 6-style comparison of several methods' outputs as PNG",
                       description="Rows of crops (input | each method | ground truth | mask) of one test image. "
                                   "Method folders hold <scene>/<seq>/<idx>.png as `lbag deblur` writes them "
                                   "(or <name>.png for a flat ground-truth folder).")
    p.add_argument("methods", nargs="+", metavar="METHOD_DIR", help="output folder, or LABEL=DIR (default label: "
                   "the folder name)")
    p.add_argument("--gt", required=True, help="dataset root, split folder, or flat folder of <name>.png")
    p.add_argument("-o", "--output", required=True, metavar="PNG", help="picture to write")
    p.add_argument("--image", help="scene/seq/idx (or flat name) of the image; default: the first with blur "
                                   "in its mask")
    p.add_argument("--crop", action="append", metavar="X,Y,SIZE", help="crop (repeatable); default: centred on "
                   "the largest blurred regions of the mask")
    p.add_argument("--crops", type=int, default=2, metavar="N", help="automatic crops (default 2)")
    p.add_argument("--size", type=int, default=192, help="side of the automatic crops in pixels (default 192)")
    p.add_argument("--zoom", type=int, default=2, help="magnification of the crops (default 2, nearest)")
    p.add_argument("--masks", help="blur masks folder (default: ROOT/masks/<split> when present)")
    p.add_argument("--inputs", help="blurred inputs <name>.png for a flat ground-truth folder")
    p.add_argument("--split", default="test", help="split of a dataset root (default: test)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..compare import Crop, draw_comparison
    from ..metrics.evaluate import EvaluationInputError
    from ..table1 import parse_entry

    if args.crops < 1 or args.size < 8 or args.zoom < 1:
        raise UserError("--crops and --zoom must be >= 1, --size >= 8")
    methods = []
    for arg in args.methods:
        label, path = parse_entry(arg)
        methods.append((label or Path(path).name or path, path))
    try:
        crops = [Crop.parse(c) for c in args.crop] if args.crop else None
        out = draw_comparison(args.gt, methods, args.output, image=args.image, crops=crops, masks=args.masks,
                              split=args.split, inputs=args.inputs, zoom=args.zoom, crop_count=args.crops,
                              crop_size=args.size)
    except (ValueError, EvaluationInputError) as exc:
        raise UserError(str(exc)) from None
    print(f"lbag compare: wrote {out}")
    return 0
