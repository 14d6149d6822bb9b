"""``lbag deblur``: deblur images with LBAG (Li et al., AAAI 2023); no mask needed.

Full resolution on bounded memory (tiled with overlap and seamless blending); the bundled model by
default, ``--weights`` for our checkpoints or any published checkpoint of the Table 1 networks
(LBAG, MIMO-UNet, DeepDeblur, DeblurGAN-v2, SRN-DeblurNet, HINet, NAFNet; see ``lbag models``).
"""

from __future__ import annotations

from . import UserError


def register(sub) -> None:
    p = sub.add_parser("deblur", help="deblur images, folders, globs or a dataset split",
                       description="Deblur images (PNG/JPEG/TIFF, 8/16-bit). A dataset root or split folder "
                                   "writes OUT/<scene>/<seq>/<idx>.png, ready for `lbag evaluate`.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, glob patterns, or a "
                   "dataset root / split folder")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="weights file: ours or a published checkpoint of any `lbag models` architecture, "
                        "recognised from its keys (default: the bundled demonstration model)")
    p.add_argument("--save-mask", action="store_true", help="also write the predicted blur mask <stem>_mask.png")
    p.add_argument("--compare", action="store_true", help="also write <stem>_compare.png (blurred | deblurred | mask)")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help="tile side in pixels (default: automatic from free memory; 0: never tile)")
    p.add_argument("--overlap", type=int, default=None, metavar="N", help="overlap between tiles in pixels "
                   "(default: the model's, see `lbag models`; 64 for LBAG / MIMO-UNet)")
    p.add_argument("--split", default="test", help="split to deblur when INPUT is a dataset root (default: test)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--path", default="auto", metavar="PATH",
                   help="auto, eager, channels_last, bf16 or compile (default auto: bf16 where the hardware "
                        "computes bfloat16 natively, else channels_last float32; eager is the plain float32 "
                        "reference; compile adds torch.compile, worth it only for long jobs); see README "
                        "'Fast inference'")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..accel import prepare, resolve_device
    from ..atomic import check_output_dir
    from ..infer import (
        DEFAULT_OVERLAP,
        check_outputs,
        collect_inputs,
        deblur_files,
        load_for_inference,
        model_banner,
        model_tiling,
        tiling,
    )
    from ..models import CheckpointError

    try:
        tile, overlap = tiling(args.tile, DEFAULT_OVERLAP if args.overlap is None else args.overlap)
    except ValueError as exc:
        raise UserError(f"--tile/--overlap: {exc}") from None
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise UserError(f"--device: {exc}") from None
    try:
        jobs, problems = collect_inputs(args.inputs, split=args.split)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    for p in problems:
        print(f"lbag deblur: {p}")
    if not jobs:
        raise UserError("nothing to deblur")
    try:
        check_outputs(jobs, args.output, args.save_mask, args.compare)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    check_output_dir(args.output)  # a file, no permission, read-only: one line before any work
    try:
        model = load_for_inference(args.weights, device=device)
    except (CheckpointError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    try:  # again with the model's tile alignment and default overlap
        align, model_overlap = model_tiling(model)[:2]
        tile, overlap = tiling(args.tile, model_overlap if args.overlap is None else args.overlap, align)
    except ValueError as exc:
        raise UserError(f"--tile/--overlap: {exc}") from None
    try:
        runner = prepare(model, device, args.path)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    for line in model_banner(args.weights, model):
        print(f"lbag deblur: {line}")
    print(f"lbag deblur: inference path {runner.description}"
          + (" (chosen automatically; --path eager for the float32 reference)" if args.path == "auto" else ""))
    written, bad = deblur_files(jobs, args.output, model, tile=tile, overlap=overlap,
                                save_mask=args.save_mask, compare=args.compare, device=device,
                                forward=runner,
                                progress=not args.quiet, report=lambda m: print(f"lbag deblur: {m}"))
    print(f"lbag deblur: wrote {len(written)} image(s) to {args.output}"
          + (f"; {len(bad) + len(problems)} problem(s) reported above" if bad or problems else ""))
    return 0 if written and not bad and not problems else (1 if written else 2)
