"""``metaembed-rag delete --source FILE``: remove a file's pages from an index."""

from __future__ import annotations

import argparse
import sys

from ..atomic import folder_lock
from ..collection import DocumentCollection, resolve_collection_path
from ._common import add_index_option, display_path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("delete", help="remove a file's pages from an index", description=__doc__)
    parser.add_argument(
        "--source", action="append", required=True, metavar="FILE", help="indexed file to remove (repeatable)"
    )
    add_index_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = resolve_collection_path(args.index)
    with folder_lock(path):
        collection = DocumentCollection.open(path)
        removed = {source: collection.delete_source(source) for source in args.source}  # all or nothing
        collection.save()
    for source, count in removed.items():
        sys.stdout.write(f"removed {count} page(s) of {display_path(source)}\n")
    sys.stdout.write(f"index: {display_path(str(path))} ({len(collection)} pages)\n")
    return 0
