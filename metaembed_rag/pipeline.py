"""The indexing pipeline: files → page records → embeddings → a :class:`~metaembed_rag.collection.DocumentCollection`.

Files already indexed with the same SHA-256 are skipped, changed files are re-indexed (their old pages are
removed only once the new version is in), and pages are streamed in batches so memory stays bounded. A file
that cannot be loaded is reported with its reason and never stops the run; the collection is saved
periodically and on interruption, so pages already indexed are never lost.

Example:
    >>> from metaembed_rag.collection import DocumentCollection
    >>> collection = DocumentCollection.open_or_create(".metaembed/default")      # doctest: +SKIP
    >>> report = index_files(collection, ["examples/"])                           # doctest: +SKIP
    >>> report.pages_indexed, [str(f) for f in report.files_failed]               # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .collection import DocumentCollection, FileEntry, folder_size, source_key
from .loaders import LoadFailure, discover_files, ocr_available, open_document, sha256_of
from .loaders.ocr import INSTALL_HINT
from .progress import progress

logger = logging.getLogger(__name__)

NO_OCR_REASON = "no text layer (scanned page) and OCR is not available"


@dataclass
class IndexReport:
    """What an indexing run did."""

    files_seen: int = 0
    files_indexed: int = 0
    files_unchanged: int = 0
    files_failed: list[LoadFailure] = field(default_factory=list)
    pages_indexed: int = 0
    pages_skipped: list[LoadFailure] = field(default_factory=list)
    pages_failed: list[LoadFailure] = field(default_factory=list)
    pages_removed: int = 0
    seconds: float = 0.0
    index_pages: int = 0
    index_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        def rows(items: list[LoadFailure]) -> list[dict[str, Any]]:
            return [{"source": f.source, "page": f.page, "reason": f.reason} for f in items]

        return {
            "files_seen": self.files_seen,
            "files_indexed": self.files_indexed,
            "files_unchanged": self.files_unchanged,
            "files_failed": rows(self.files_failed),
            "pages_indexed": self.pages_indexed,
            "pages_skipped": rows(self.pages_skipped),
            "pages_failed": rows(self.pages_failed),
            "pages_removed": self.pages_removed,
            "seconds": round(self.seconds, 3),
            "index_pages": self.index_pages,
            "index_bytes": self.index_bytes,
        }


def _needs_indexing(entry: FileEntry | None, digest: str, reindex: bool) -> bool:
    if entry is None or reindex or not entry.complete or entry.sha256 != digest:
        return True
    # Scanned pages skipped for lack of OCR are retried once Tesseract is installed.
    return any(reason == NO_OCR_REASON for _, reason in entry.skipped_pages) and ocr_available()


def index_files(
    collection: DocumentCollection,
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    password: str | None = None,
    ocr: bool | None = None,
    batch_size: int = 16,
    reindex: bool = False,
    show_progress: bool | None = None,
    save_interval_s: float = 60.0,
    save: bool = True,
) -> IndexReport:
    """Index the PDFs and images under ``paths`` into ``collection`` and save it; return a report."""
    start = time.perf_counter()
    report = IndexReport()
    files, failures = discover_files(paths)
    report.files_failed.extend(failures)
    report.files_seen = len(files) + len(failures)

    plan: list[tuple[os.PathLike, str, str, int]] = []
    for path in files:
        key = source_key(path)
        try:
            digest = sha256_of(path)
        except OSError as exc:
            report.files_failed.append(LoadFailure(str(path), f"cannot read file: {exc.strerror or exc}"))
            continue
        if not _needs_indexing(collection.files.get(key), digest, reindex):
            report.files_unchanged += 1
            continue
        try:
            with open_document(path, password=password) as document:
                plan.append((path, key, digest, document.page_count))
        except Exception as exc:  # a LoaderError, or anything else a broken file provokes
            report.files_failed.append(LoadFailure(str(path), _reason(exc, path)))

    changed = False
    last_save = time.monotonic()
    try:
        with progress(sum(p[3] for p in plan), "indexing", "page", enabled=show_progress) as bar:
            for path, key, digest, _ in plan:
                bar.set_postfix_str(os.path.basename(path), refresh=False)
                changed |= _index_one(collection, path, key, digest, password, ocr, batch_size, report, bar)
                if save and changed and time.monotonic() - last_save > save_interval_s:
                    collection.save()
                    last_save = time.monotonic()
    finally:
        if save and changed:
            collection.save()
        report.seconds = time.perf_counter() - start
        report.index_pages = len(collection.index)
        report.index_bytes = folder_size(collection.path) if collection.path.exists() else 0
    if any(f.reason == NO_OCR_REASON for f in report.pages_skipped):
        logger.warning("%d scanned page(s) were skipped; %s", len(report.pages_skipped), INSTALL_HINT)
    return report


def _index_one(
    collection: DocumentCollection,
    path: os.PathLike,
    key: str,
    digest: str,
    password: str | None,
    ocr: bool | None,
    batch_size: int,
    report: IndexReport,
    bar: Any,
) -> bool:
    """Index one file; returns whether the collection changed. Never raises for a bad file."""
    old = collection.files.get(key)
    old_ids = list(old.ids) if old else []
    try:
        document = open_document(path, password=password)
    except Exception as exc:
        report.files_failed.append(LoadFailure(str(path), _reason(exc, path)))
        return False
    entry = FileEntry(sha256=digest, page_count=document.page_count, ids=list(old_ids))
    collection.files[key] = entry
    new_ids: list[str] = []
    records: list[Any] = []
    inputs: list[Any] = []
    text_mode = collection.embedding_mode == "text"

    def flush() -> None:
        if not records:
            return
        try:
            ids = collection.add_pages(records, inputs, batch_size=batch_size)
        except Exception as exc:
            for record in records:
                report.pages_failed.append(LoadFailure(key, f"cannot embed: {exc}", record.page))
        else:
            new_ids.extend(ids)
            known = set(entry.ids)
            entry.ids.extend(i for i in ids if i not in known)
            report.pages_indexed += len(ids)
        records.clear()
        inputs.clear()

    try:
        with document:
            pages = document.pages(dpi=collection.dpi, render=not text_mode, text=True, ocr=ocr)
            for record in pages:
                bar.update(1)
                value = collection.model_input(record)
                if value is None:
                    reason = _why_empty(record, text_mode, ocr)
                    target = report.pages_failed if record.problem else report.pages_skipped
                    target.append(LoadFailure(key, reason, record.page))
                    entry.skipped_pages.append((record.page, reason))
                    continue
                records.append(record)
                inputs.append(value)
                if len(records) >= batch_size:
                    flush()
            flush()
    except Exception as exc:  # the file broke mid-way: keep what was indexed, report the rest
        report.files_failed.append(LoadFailure(str(path), _reason(exc, path)))
        return bool(new_ids)
    keep = set(new_ids)
    stale = [i for i in old_ids if i not in keep and i in collection.index]
    if stale:
        collection.index.delete(stale)
        report.pages_removed += len(stale)
    entry.ids = new_ids
    entry.complete = True
    report.files_indexed += 1
    return True


def _why_empty(record, text_mode: bool, ocr: bool | None) -> str:
    if record.problem:
        return record.problem
    if record.extra.get("repaired"):
        return "no text on this page of a damaged PDF (MuPDF repaired it)"
    if text_mode:
        if ocr is False:
            return "no text layer (scanned page) and OCR was turned off"
        return NO_OCR_REASON if not ocr_available() else "no text found on the page (blank page?)"
    return "the page could not be rendered"


def _reason(exc: BaseException, path: os.PathLike | str) -> str:
    message = str(exc)
    prefix = f"{path}: "
    if message.startswith(prefix):
        message = message[len(prefix) :]
    if not isinstance(exc, OSError) and not message:
        message = type(exc).__name__
    return message
