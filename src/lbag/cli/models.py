"""``lbag models``: every architecture of the paper's Table 1 (Li et al., AAAI 2023) side by side:
parameters, MACs, padding and tiling needs, published checkpoints, the paper's numbers."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("models", help="list every architecture: parameters, MACs, checkpoints, Table 1 row",
                       description="List the networks lbag builds (MIMO-UNet family and the Table 1 baselines) "
                                   "with parameter counts, MACs at 256x256 and 2152x1436 (torch FlopCounterMode "
                                   "on the meta device), padding multiple, receptive field, default tile "
                                   "overlap, the published checkpoints and the paper's Table 1 row.")
    p.add_argument("--no-macs", action="store_true", help="skip the MAC counts (instant)")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    p.add_argument("--identify", nargs="+", metavar="FILE", help="only say which architecture each weights "
                   "file holds (any published container; nothing is built)")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from ..models.registry import unavailable

    if args.identify:
        return _identify(args.identify)
    from ..table1 import format_models, model_rows

    rows = model_rows(macs=not args.no_macs)
    broken = unavailable()
    if args.json:
        print(json.dumps({"architectures": rows, "unavailable": broken}, indent=2))
    else:
        print(format_models(rows))
        for module, error in broken.items():
            print(f"\nnot importable: lbag.models.{module}: {error}")
    return 0


def _identify(files: list[str]) -> int:
    from ..models import CheckpointError, identify

    failed = 0
    for f in files:
        try:
            print(f"{f}: {identify(f)}")
        except CheckpointError as exc:
            print(f"lbag models: {exc}")
            failed += 1
    return 1 if failed else 0
