"""``python -m expr_models <command> ...``: the command line of :mod:`expr_models.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
