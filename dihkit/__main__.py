"""``python -m dihkit``: the command line."""

import sys

from dihkit.cli import main

sys.exit(main())
