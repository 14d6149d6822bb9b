"""The ``lbag`` command line: argument parsing only; every subcommand calls a library function.

Each subcommand lives in its own module here with a ``register(subparsers)`` function that adds its
parser and sets ``func`` (called with the parsed arguments, returns an exit code).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from .. import __version__
from ..atomic import WriteError

# Errors of writing output that are the environment's, not a bug: reported in one line, exit code 1.
_WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG}

# Subcommand modules, in the order ``lbag --help`` lists them.
SUBCOMMANDS = ("demo", "synth", "capture", "masks", "data", "train", "evaluate", "deblur", "report", "models",
               "table", "compare")


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lbag", description="Real-world local motion deblurring: ReLoBlur data tools and the LBAG network.")
    parser.add_argument("--version", action="version", version=f"lbag {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"lbag {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # An output that cannot be written (permissions, read-only or full disk): one line naming it.
        if not isinstance(exc, WriteError) and exc.errno not in _WRITE_ERRNOS:
            raise
        where = f"{exc.filename}: " if exc.filename and not isinstance(exc, WriteError) else ""
        print(f"lbag {args.command}: error: {where}{exc if isinstance(exc, WriteError) else exc.strerror}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lbag {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
