"""``lbag masks DATASET_ROOT --out MASK_ROOT``: LBFMG blur masks by background subtraction."""

from __future__ import annotations

from dataclasses import fields

from . import UserError


def register(sub) -> None:
    from ..data.layout import SPLITS
    from ..masks import LBFMGParams

    p = sub.add_parser("masks", help="LBFMG ground-truth blur masks by MOG2 background subtraction")
    p.add_argument("root", help="dataset root holding dataset/{train,test}/<scene>/<seq>/")
    p.add_argument("--out", required=True, help="mask root; masks go to OUT/<split>/<scene>/<seq>/<idx>.png")
    p.add_argument("--split", choices=SPLITS, default=None, help="only this split")
    p.add_argument("--overwrite", action="store_true", help="recompute masks that already exist")
    g = p.add_argument_group("LBFMG parameters (defaults: the best found against exact synthetic masks)")
    for f in fields(LBFMGParams):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            g.add_argument(flag, dest=f.name, action="store_true", default=None)
            g.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false")
        else:
            g.add_argument(flag, dest=f.name, type=int if f.type in ("int", int) else float, default=None,
                           help=f"default {f.default}")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..masks import LBFMGParams, generate_masks

    given = {f.name: getattr(args, f.name) for f in fields(LBFMGParams) if getattr(args, f.name) is not None}
    try:
        params = LBFMGParams(**given)
        result = generate_masks(args.root, args.out, args.split, params, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    for msg in result["problems"]:
        print(f"problem: {msg}")
    print(f"{args.out}: {len(result['written'])} masks written, {len(result['skipped'])} kept, "
          f"{len(result['problems'])} problem(s)")
    return 1 if result["problems"] else 0  # like every other command: exit 1 when a problem was reported
