"""``python -m lbag`` (and ``torchrun -m lbag train ...``) runs the command line."""

import sys

from .cli import main

sys.exit(main())
