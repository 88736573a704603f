"""``metaembed-rag info``: what an index holds (model, embedding mode, files, pages, size)."""

from __future__ import annotations

import argparse
import sys

from ..collection import DocumentCollection, resolve_collection_path
from ..errors import IndexFormatError
from ._common import add_index_option, display_path, human_bytes, print_json, printable


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="show what an index holds", description=__doc__)
    add_index_option(parser)
    parser.add_argument("--files", action="store_true", help="list every indexed file")
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = resolve_collection_path(args.index)
    try:
        collection = DocumentCollection.open(path, mmap=True)  # no model load: info stays fast
    except IndexFormatError as exc:
        if not DocumentCollection.exists(path):
            raise
        if args.json:
            print_json({"path": str(path), "damaged": True, "error": str(exc)})
        else:
            sys.stdout.write(
                f"index:      {printable(display_path(str(path)))}\nstatus:     DAMAGED: {printable(str(exc))}\n"
            )
        return 2
    info = {**collection.info(), "damaged": False}
    if args.json:
        print_json(info)
        return 0
    out = sys.stdout
    how = "page text; OCR for scans" if info["embedding_mode"] == "text" else f"pages rendered at {info['dpi']:g} dpi"
    incomplete = f" ({len(info['incomplete_files'])} incomplete)" if info["incomplete_files"] else ""
    out.write(
        f"index:      {printable(display_path(info['path']))}\n"
        f"model:      {info['model']} ({info['model_name']}, dim {info['embedding_dim']}, "
        f"fingerprint {info['model_fingerprint']})\n"
        f"embedding:  {info['embedding_mode']} ({how})\n"
        f"files:      {info['files']}{incomplete}\n"
        f"pages:      {info['pages']} ({info['skipped_pages']} skipped)\n"
        f"windows:    {_windows_line(info)}\n"
        f"size:       {human_bytes(info['size_bytes'])}\n"
    )
    if args.files:
        for source, entry in info["per_file"].items():
            out.write(f"  {printable(display_path(source))}: {entry['pages']}/{entry['page_count']} pages\n")
    return 0


def _windows_line(info: dict) -> str:
    """How many multi-vector units the pages became (pages longer than the model reads are split)."""
    windows = info.get("windows")
    if windows is None:
        return "unknown (index unreadable)"
    return f"{windows} ({info.get('windows_per_page', 0):g} per page; long pages are split to fit the model)"
