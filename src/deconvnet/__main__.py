"""Command line: ``python -m deconvnet COMMAND ...`` (or ``deconvnet COMMAND``).

Each command is a small function that parses nothing itself: ``add_*`` registers its arguments, ``run_*``
calls into the package. Errors a user can act on (bad preset, missing file) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys


def add_summary(sub) -> None:
    p = sub.add_parser("summary", help="print the layer table (name, output shape, parameters) and totals")
    p.add_argument("--preset", default="paper", help="preset whose model to summarise (default: paper)")
    p.add_argument("--model", default="deconvnet", choices=["deconvnet", "fcn8s"])
    p.set_defaults(func=run_summary)


def run_summary(args) -> None:
    from .config import get_preset
    from .summary import format_table, layer_table

    cfg = get_preset(args.preset).model
    print(format_table(layer_table(cfg, kind=args.model)))


def add_book(sub) -> None:
    p = sub.add_parser("book", help="execute the chapter notebooks with papermill, in _toc.yml order")
    p.add_argument("--preset", default="auto", help="quick, cpu, paper or auto (paper with CUDA, else cpu)")
    p.add_argument("--only", nargs="*", default=None, metavar="CHAPTER",
                   help="run only these chapters (e.g. 01 or 01_architecture); default: all")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="extra notebook parameter (must exist in every selected notebook's parameters cell)")
    p.add_argument("--list", action="store_true", help="list the chapters and exit")
    p.set_defaults(func=run_book)


def run_book(args) -> None:
    from .book import chapters, run_chapters

    if args.list:
        for ch in chapters():
            print(ch.name)
        return
    params = {name: _literal(value) for name, value in args.parameter}
    run_chapters(preset=args.preset, only=args.only, parameters=params)


def _literal(text: str):
    """``-p n 3`` gives the int 3, ``-p name abc`` the string 'abc'."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


COMMANDS = [add_summary, add_book]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deconvnet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"deconvnet {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
