"""``lbag data check ROOT``: validate a dataset folder in the ReLoBlur layout."""

from __future__ import annotations

from . import UserError


def register(sub) -> None:
    from ..data.layout import SPLITS

    p = sub.add_parser("data", help="dataset tools (check a dataset folder)")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = dsub.add_parser("check", help="report missing/corrupt/mismatched files and blurred-area statistics")
    c.add_argument("root", help="dataset root holding dataset/{train,test}/<scene>/<seq>/")
    c.add_argument("--masks", default=None, help="mask folder with {train,test}/<scene>/<seq>/<idx>.png "
                   "(default ROOT/masks)")
    c.add_argument("--split", action="append", choices=SPLITS, help="check only this split")
    c.add_argument("--strict", action="store_true", help="exit 1 on any problem, not only when unusable")
    c.set_defaults(func=run_check)


def run_check(args) -> int:
    from ..data.check import check_dataset

    try:
        report = check_dataset(args.root, args.masks, tuple(args.split) if args.split else None,
                               progress=True)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    print(report.format())
    if not report.usable:
        return 1
    return 1 if (args.strict and report.problems) else 0
