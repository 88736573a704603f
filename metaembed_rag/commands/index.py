"""``metaembed-rag index PATH...``: build or extend an index from PDFs and images."""

from __future__ import annotations

import argparse
import sys

from ..atomic import folder_lock
from ..collection import DocumentCollection, check_collection_path, resolve_collection_path
from ..page_policy import EMBEDDING_MODES
from ..pipeline import index_files
from ._common import (
    add_index_option,
    add_model_options,
    display_path,
    human_bytes,
    interrupts_as_keyboard_interrupt,
    print_json,
    printable,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "index",
        help="index PDFs and images (files, folders, globs); unchanged files are skipped",
        description="Build or extend an index: every page of every PDF/image under PATH becomes a searchable "
        "document. Files already indexed unchanged (same SHA-256) are skipped; changed files are re-indexed.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="PDF or image files, folders (recursive), globs")
    add_index_option(parser)
    add_model_options(parser)
    parser.add_argument(
        "--embed",
        choices=EMBEDDING_MODES,
        default=None,
        help="what to embed per page (default: image for a vision-language model, text for a text model)",
    )
    parser.add_argument("--dpi", type=float, default=144, help="page rendering resolution (new index; default 144)")
    parser.add_argument("--password", default=None, help="password for encrypted PDFs")
    parser.add_argument("--no-ocr", action="store_true", help="never run OCR on pages without a text layer")
    parser.add_argument("--batch-size", type=int, default=16, help="pages encoded per batch (default 16)")
    parser.add_argument(
        "--storage",
        default="float32",
        choices=("float32", "float16", "bfloat16", "int8"),
        help="how vectors are stored (new index; default float32)",
    )
    parser.add_argument("--reindex", action="store_true", help="re-index files even when unchanged")
    parser.add_argument(
        "--save-every", type=int, default=500, metavar="PAGES", help="save progress every PAGES pages (default 500)"
    )
    parser.add_argument(
        "--save-interval", type=float, default=60.0, metavar="S", help="save progress every S seconds (default 60)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = resolve_collection_path(args.index)
    check_collection_path(path, args.paths)
    with folder_lock(path), interrupts_as_keyboard_interrupt():
        collection = DocumentCollection.open_or_create(
            path,
            model=args.model,
            embedding_mode=args.embed,
            dpi=args.dpi,
            storage=args.storage,
            device=args.device,
            dtype=args.dtype,
        )
        report = index_files(
            collection,
            args.paths,
            password=args.password,
            ocr=False if args.no_ocr else None,
            batch_size=args.batch_size,
            reindex=args.reindex,
            save_every_pages=args.save_every,
            save_interval_s=args.save_interval,
            show_progress=False if args.no_progress else None,
        )
    if args.json:
        print_json({"index": str(path), **report.to_dict()})
    else:
        out = sys.stdout
        out.write(
            f"files: {report.files_seen} seen, {report.files_indexed} indexed, {report.files_unchanged} unchanged "
            f"(skipped), {len(report.files_failed)} failed\n"
            f"pages: {report.pages_indexed} indexed, {len(report.pages_skipped)} skipped, "
            f"{len(report.pages_failed)} failed, {report.pages_removed} removed\n"
            f"time: {report.seconds:.1f} s\n"
            f"index: {printable(display_path(str(path)))} ({report.index_pages} pages in "
            f"{report.index_windows} windows, {human_bytes(report.index_bytes)}, "
            f"embedding {collection.embedding_mode})\n"
        )
        for title, items in (
            ("failed files", report.files_failed),
            ("failed pages", report.pages_failed),
            ("skipped pages", report.pages_skipped),
        ):
            if items:
                out.write(f"{title}:\n")
                for item in items[:50]:
                    where = display_path(item.source) + (f" p.{item.page}" if item.page else "")
                    out.write(f"  {printable(where)}: {printable(item.reason)}\n")
                if len(items) > 50:
                    out.write(f"  … and {len(items) - 50} more\n")
    return 1 if report.files_failed and not (report.files_indexed or report.files_unchanged) else 0
