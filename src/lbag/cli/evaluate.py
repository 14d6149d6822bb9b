"""``lbag evaluate``: the published metrics over a folder of predictions (library: lbag.metrics.evaluate)."""

from __future__ import annotations

import os


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="PSNR, SSIM, PSNR_w, SSIM_w, PSNR_a over a results folder",
                       description="Evaluate deblurred images against ground truth with the published "
                                   "protocol (8-bit quantised; PSNR_a by ECC alignment).")
    p.add_argument("--pred", help="predictions: PRED/<scene>/<seq>/<idx>.png (published layout) or "
                                  "PRED/<name>.png (flat); may be omitted with --blurred")
    p.add_argument("--gt", required=True, help="dataset root (ROOT/dataset/<split>/...), one split folder, "
                                               "or a flat folder of <name>.png")
    p.add_argument("--masks", help="blur masks folder (default: ROOT/masks/<split> when present)")
    p.add_argument("--split", default="test", help="split of a dataset root (default: test)")
    p.add_argument("--out", help="report folder for per_image.csv, summary.json, table.md")
    p.add_argument("--blurred", action="store_true", help="also evaluate the blurred inputs (baseline row)")
    p.add_argument("--exact", action="store_true",
                   help="reference full-resolution ECC for PSNR_a (~18 s per 2152x1436 image)")
    p.add_argument("--denominator", choices=("all", "valid"), default="all",
                   help="PSNR_a divides by all pixels (LBAG, default) or the valid ones (RealBlur)")
    p.add_argument("--no-quantize", action="store_true", help="skip the 8-bit quantisation (not the protocol)")
    p.add_argument("--no-aligned", action="store_true", help="skip PSNR_a (fast)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="parallel processes")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from ..atomic import WriteError
    from ..metrics.evaluate import EvalOptions, EvaluationInputError, evaluate
    from . import UserError

    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    options = EvalOptions(exact=args.exact, quantize=not args.no_quantize, denominator=args.denominator,
                          aligned=not args.no_aligned)
    write_error = None
    try:
        summary = evaluate(args.pred, args.gt, masks=args.masks, split=args.split, out=args.out,
                           blurred=args.blurred, options=options, workers=args.workers)
    except EvaluationInputError as exc:
        raise UserError(str(exc)) from None
    except WriteError as exc:
        if not hasattr(exc, "summary"):
            raise  # the report folder was refused before the work: nothing was computed
        summary, write_error = exc.summary, exc
    if options.aligned:
        from ..metrics.aligned import describe_fast_path

        print("PSNR_a: " + ("reference full-resolution ECC (--exact)" if args.exact else
                            f"fast {describe_fast_path()} (--exact for the reference)"))
    print(summary["table"])
    print(f"\n{summary['n_images']} images; {summary['n_empty_mask']} with an empty mask (left out of "
          f"PSNR_w/SSIM_w); {summary['n_ecc_failed']} with ECC not converged (identity used)")
    for f in summary["failed"]:
        print(f"failed: {f['error']}", file=sys.stderr)
    for n in summary["notes"]:
        print(f"note: {n['name']}: {n['note']}", file=sys.stderr)
    if write_error is not None:
        print(f"lbag evaluate: error: {write_error}; the results above were not saved", file=sys.stderr)
        return 1
    if args.out:
        print(f"report written to {args.out}")
    return 1 if summary["failed"] else 0
