"""``lbag report RUN_DIR``: training curves and validation metrics of a run as a PNG
(runs of the LBAG training recipe, Li et al., AAAI 2023)."""

from __future__ import annotations

from . import UserError


def register(sub) -> None:
    p = sub.add_parser("report", help="draw a training run's curves and validation metrics as PNG")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by `lbag train` (holds metrics.csv)")
    p.add_argument("-o", "--output", default=None, metavar="PNG", help="output file (default: RUN_DIR/report.png)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report import plot_run

    try:
        path = plot_run(args.run_dir, args.output)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(f"lbag report: wrote {path}")
    return 0
