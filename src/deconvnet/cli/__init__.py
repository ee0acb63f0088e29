"""Command line: ``python -m deconvnet COMMAND ...`` (or ``deconvnet COMMAND``).

Each command is a small function that parses nothing itself: ``add_*`` registers its arguments, ``run_*``
calls into the package. Errors a user can act on (bad preset, missing or unreadable file, a folder that
cannot be written) print one line and exit 2; ``--debug`` shows the traceback instead. Output locations are
checked before the slow part.
"""

from __future__ import annotations

import argparse
import sys

from deconvnet.cli.commands import add_book, add_explain, add_make_data, add_summary, add_train
from deconvnet.cli.segment import add_segment

COMMANDS = [add_summary, add_book, add_train, add_explain, add_make_data, add_segment]


DEBUG_HELP = "on an error, show the full traceback instead of one line"


def main(argv: list[str] | None = None) -> int:
    from PIL import Image

    parser = argparse.ArgumentParser(prog="deconvnet", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    for command in sub.choices.values():  # also after the command: `deconvnet segment x.jpg --debug`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError, Image.DecompressionBombError) as err:
        if args.debug:
            raise
        print(f"deconvnet {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    return 0


def _one_line(err: Exception) -> str:
    """The error as one line; a bare OS error (errno, file) gets a pointer to ``--debug``."""
    if isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename else ""
        also = f" -> {err.filename2}" if err.filename2 else ""
        return f"{where}{err.strerror}{also} (--debug shows where)"
    return " ".join(str(err).split()) or type(err).__name__

