"""``lbag table EVAL_DIR...``: the paper's Table 1 (Li et al., AAAI 2023) from several ``lbag evaluate``
report folders, as Markdown and CSV, beside the paper's numbers."""

from __future__ import annotations

from . import UserError


def register(sub) -> None:
    p = sub.add_parser("table", help="build Table 1 (Markdown + CSV) from `lbag evaluate --out` folders",
                       description="One row per evaluation folder, in the order given. A folder evaluated with "
                                   "--blurred adds the 'Blurred input' row. Methods the paper reports (matched "
                                   "by label: deepdeblur, deblurganv2, srn_deblur, hinet, mimo_unet_plus, lbag, "
                                   "lbag_plus) get the paper's row and the difference.")
    p.add_argument("eval_dirs", nargs="+", metavar="EVAL_DIR",
                   help="`lbag evaluate --out` folder (holds summary.json), or LABEL=EVAL_DIR to name the row "
                        "(default label: the predictions folder's name)")
    p.add_argument("-o", "--out", metavar="DIR", help="write DIR/table1.md and DIR/table1.csv")
    p.add_argument("--no-paper", action="store_true", help="leave out the paper's rows")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..table1 import parse_entry, read_eval_dir, table1, write_table1

    entries = []
    for arg in args.eval_dirs:
        label, path = parse_entry(arg)
        try:
            entries.append(read_eval_dir(path, label))
        except ValueError as exc:
            raise UserError(str(exc)) from None
    markdown, csv_text = table1(entries, paper=not args.no_paper)
    print(markdown, end="")
    if args.out:
        md, csv_path = write_table1(args.out, markdown, csv_text)
        print(f"lbag table: wrote {md} and {csv_path}")
    return 0
