"""The ``metaembed-rag`` command line.

Each sub-command lives in its own module under :mod:`metaembed_rag.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``. Modules are discovered, so a
new command is one new file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from ._version import __version__
from .errors import MetaEmbedError

logger = logging.getLogger("metaembed_rag.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metaembed-rag",
        description="MetaEmbed multi-vector retrieval: index documents and search them at any budget.",
    )
    parser.add_argument("--version", action="version", version=f"metaembed-rag {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{info.name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if level > logging.INFO:  # long runs report progress even when stderr is not a terminal (log lines)
        logging.getLogger("metaembed_rag.progress").setLevel(logging.INFO)
    if args.command is None:
        parser.print_help(sys.stdout)
        return 0
    try:
        return int(args.func(args) or 0)
    except MetaEmbedError as exc:
        from .commands._common import printable

        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
