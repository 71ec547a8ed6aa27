"""``python -m dihkit.cli``: the command line."""

import sys

from dihkit.cli.main import main

sys.exit(main())
