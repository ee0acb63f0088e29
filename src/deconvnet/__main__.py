"""``python -m deconvnet COMMAND ...``: the command line of ``deconvnet.cli``."""

import sys

from deconvnet.cli import main

if __name__ == "__main__":
    sys.exit(main())
