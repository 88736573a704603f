"""The indexing pipeline: files → page records → embeddings → a :class:`~metaembed_rag.collection.DocumentCollection`.

Files already indexed with the same SHA-256 are skipped, changed files are re-indexed (their old pages are
removed only once the new version is in), and pages are streamed in batches so memory stays bounded. A file
that cannot be loaded is reported with its reason and never stops the run; a page that cannot be embedded is
reported and leaves its file incomplete (retried next run) without failing the rest of its batch. The whole run
holds the collection's write lock; the collection is saved periodically (every ``save_interval_s`` seconds or
``save_every_pages`` pages, also inside one large file) and on interruption (Ctrl-C, SIGTERM in the CLI), and
an interrupted file resumes where it stopped, so pages already encoded are never encoded or lost again.

Example:
    >>> import tempfile
    >>> from metaembed_rag.collection import DocumentCollection
    >>> folder = tempfile.TemporaryDirectory()
    >>> collection = DocumentCollection.open_or_create(f"{folder.name}/index", model="starter")
    >>> report = index_files(collection, ["examples/"], ocr=False, show_progress=False)  # from the repository root
    >>> report.files_indexed, report.pages_indexed, [(f.page, f.reason) for f in report.pages_skipped]
    (4, 4, [(1, 'no text layer (scanned page) and OCR was turned off')])
    >>> index_files(collection, ["examples/"], ocr=False, show_progress=False).files_unchanged
    4
    >>> folder.cleanup()
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .collection import DocumentCollection, FileEntry, check_collection_path, folder_size
from .errors import InvalidInputError
from .loaders import LoadFailure, discover_files, ocr_available, open_document, sha256_of
from .loaders.ocr import INSTALL_HINT
from .page_policy import NO_OCR_REASON, page_id, source_key
from .progress import progress

logger = logging.getLogger(__name__)


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
    index_windows: int = 0
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
            "index_windows": self.index_windows,
            "index_bytes": self.index_bytes,
        }


def _needs_indexing(entry: FileEntry | None, digest: str, reindex: bool) -> bool:
    if entry is None or reindex or not entry.complete or entry.sha256 != digest:
        return True
    # Scanned pages skipped for lack of OCR are retried once Tesseract is installed.
    return any(reason == NO_OCR_REASON for _, reason in entry.skipped_pages) and ocr_available()


class _Saver:
    """Saves the collection every ``interval_s`` seconds or ``every_pages`` pages, and once more at the end."""

    def __init__(self, collection: DocumentCollection, enabled: bool, interval_s: float, every_pages: int) -> None:
        self.collection = collection
        self.enabled = enabled
        self.interval_s = interval_s
        self.every_pages = every_pages
        self.pending = 0
        self.changed = False
        self.last = time.monotonic()

    def note(self, pages: int) -> None:
        self.changed = self.changed or pages > 0
        self.pending += pages
        if self.pending >= self.every_pages or time.monotonic() - self.last > self.interval_s:
            self.save()

    def save(self) -> None:
        if self.enabled and self.changed:
            self.collection.save()
            logger.info("saved %s (%d pages)", self.collection.path, len(self.collection.index))
        self.pending, self.changed, self.last = 0, False, time.monotonic()


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
    save_every_pages: int = 500,
    save: bool = True,
) -> IndexReport:
    """Index the PDFs and images under ``paths`` into ``collection`` and save it; return a report.

    The run holds the collection's write lock (the one the CLI takes), so concurrent runs never lose pages.
    """
    if isinstance(save_every_pages, bool) or not isinstance(save_every_pages, int) or save_every_pages < 1:
        raise InvalidInputError(f"save_every_pages must be a positive integer, got {save_every_pages!r}")
    if not save_interval_s > 0:
        raise InvalidInputError(f"save_interval_s must be positive, got {save_interval_s!r}")
    start = time.perf_counter()
    sources = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    check_collection_path(collection.path, sources)
    report = IndexReport()
    with collection.writing():
        saver = _Saver(collection, save, save_interval_s, save_every_pages)
        try:
            _run(collection, sources, password, ocr, batch_size, reindex, show_progress, report, saver)
        except KeyboardInterrupt:
            logger.warning("interrupted: saving the %d page(s) indexed so far", report.pages_indexed)
            raise
        finally:
            saver.save()
            report.seconds = time.perf_counter() - start
            report.index_pages = len(collection)
            report.index_windows = collection.window_count
            report.index_bytes = folder_size(collection.path) if collection.path.exists() else 0
    if any(f.reason == NO_OCR_REASON for f in report.pages_skipped):
        logger.warning("%d scanned page(s) were skipped; %s", len(report.pages_skipped), INSTALL_HINT)
    return report


def _run(
    collection: DocumentCollection,
    sources: list[str | os.PathLike],
    password: str | None,
    ocr: bool | None,
    batch_size: int,
    reindex: bool,
    show_progress: bool | None,
    report: IndexReport,
    saver: _Saver,
) -> None:
    files, failures = discover_files(sources)
    report.files_failed.extend(failures)
    report.files_seen = len(files) + len(failures)
    plan: list[tuple[os.PathLike, str, str, int]] = []
    for path in files:
        key = source_key(path)
        try:
            digest = sha256_of(path)
        except OSError as exc:
            report.files_failed.append(LoadFailure(key, f"cannot read file: {exc.strerror or exc}"))
            continue
        if not _needs_indexing(collection.files.get(key), digest, reindex):
            report.files_unchanged += 1
            continue
        try:
            with open_document(path, password=password) as document:
                plan.append((path, key, digest, document.page_count))
        except Exception as exc:  # a LoaderError, or anything else a broken file provokes
            report.files_failed.append(LoadFailure(key, _reason(exc, path)))
    with progress(sum(p[3] for p in plan), "indexing", "page", enabled=show_progress) as bar:
        for path, key, digest, _ in plan:
            bar.set_postfix_str(key.rsplit(os.sep, 1)[-1], refresh=False)
            _index_one(collection, path, key, digest, password, ocr, batch_size, reindex, report, bar, saver)
            saver.note(0)


def _index_one(
    collection: DocumentCollection,
    path: os.PathLike,
    key: str,
    digest: str,
    password: str | None,
    ocr: bool | None,
    batch_size: int,
    reindex: bool,
    report: IndexReport,
    bar: Any,
    saver: _Saver,
) -> None:
    """Index one file into ``collection``. Never raises for a bad file or page."""
    old = collection.files.get(key)
    old_ids = list(old.ids) if old else []
    try:
        document = open_document(path, password=password)
    except Exception as exc:
        report.files_failed.append(LoadFailure(key, _reason(exc, path)))
        return
    if old is not None and old.complete and old.sha256 != digest and getattr(document, "repaired", False):
        readable = document.page_count
        document.close()
        report.files_failed.append(
            LoadFailure(
                key,
                f"the file is damaged (MuPDF had to repair it; {readable} of {old.page_count} pages readable); "
                f"kept the {len(old_ids)} page(s) indexed from its earlier version",
            )
        )
        return
    # An interrupted run of the same file version resumes: pages already stored are not encoded again.
    resume = set() if reindex or old is None or old.sha256 != digest else {i for i in old_ids if i in collection.index}
    entry = FileEntry(sha256=digest, page_count=document.page_count, ids=list(old_ids))
    collection.files[key] = entry
    new_ids: list[str] = []
    records: list[Any] = []
    inputs: list[Any] = []
    failed_pages = 0
    text_mode = collection.embedding_mode == "text"

    def store(batch_records: list[Any], batch_inputs: list[Any]) -> None:
        nonlocal failed_pages
        try:
            ids = collection.add_pages(batch_records, batch_inputs, batch_size=batch_size)
        except Exception as exc:
            if len(batch_records) > 1:  # one bad page must not sink its batch: retry one by one
                for record, value in zip(batch_records, batch_inputs, strict=True):
                    store([record], [value])
                return
            failed_pages += 1
            report.pages_failed.append(LoadFailure(key, f"cannot embed: {exc}", batch_records[0].page))
            return
        new_ids.extend(ids)
        known = set(entry.ids)
        entry.ids.extend(i for i in ids if i not in known)
        report.pages_indexed += len(ids)
        saver.note(len(ids))

    def flush() -> None:
        if records:
            store(list(records), list(inputs))
        records.clear()
        inputs.clear()

    try:
        with document:
            # Pages already stored are neither read nor recognised again (OCR of a scan costs seconds).
            ids = {n: page_id(key, n) for n in range(1, document.page_count + 1)}
            todo = [n for n, doc_id in ids.items() if doc_id not in resume]
            done = [doc_id for doc_id in ids.values() if doc_id in resume]
            new_ids.extend(done)
            bar.update(len(done))
            pages = document.pages(
                dpi=collection.dpi, render=not text_mode, text=True, ocr=ocr, page_numbers=todo or None
            )
            for record in pages if todo else ():
                bar.update(1)
                value = collection.model_input(record)
                if value is None:
                    reason = collection.page_policy.why_skipped(record, ocr=ocr)
                    target = report.pages_failed if record.problem else report.pages_skipped
                    target.append(LoadFailure(key, reason, record.page))
                    entry.skipped_pages.append((record.page, reason))
                    failed_pages += bool(record.problem)
                    continue
                records.append(record)
                inputs.append(value)
                if len(records) >= batch_size:
                    flush()
            flush()
    except Exception as exc:  # the file broke mid-way: keep what was indexed, report the rest
        report.files_failed.append(LoadFailure(key, _reason(exc, path)))
        return
    new_ids.sort(key=lambda doc_id: int(doc_id.rsplit("#page=", 1)[1]))
    keep = set(new_ids)
    report.pages_removed += collection.delete_pages([i for i in old_ids if i not in keep])
    entry.ids = new_ids
    entry.complete = failed_pages == 0
    report.files_indexed += 1
    if failed_pages:
        logger.warning("%s: %d page(s) failed; the file will be retried on the next run", key, failed_pages)


def _reason(exc: BaseException, path: os.PathLike | str) -> str:
    message = str(exc)
    prefix = f"{path}: "
    if message.startswith(prefix):
        message = message[len(prefix) :]
    if not isinstance(exc, OSError) and not message:
        message = type(exc).__name__
    return message
