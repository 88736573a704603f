"""Visual document loading: PDFs and images to page records (image, text, metadata), streamed page by page.

Example:
    >>> from pathlib import Path
    >>> from metaembed_rag.loaders import load_pages
    >>> for record in load_pages("examples/", dpi=72, ocr=False):   # run from the repository root
    ...     print(Path(record.source).name, record.page, record.text_source, record.image.size)
    field-guide.pdf 1 layer (595, 842)
    field-guide.pdf 2 layer (595, 842)
    rainfall-chart.pdf 1 layer (595, 842)
    sales-table.pdf 1 layer (595, 842)
    scanned-memo.pdf 1 none (420, 595)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal, Union

from PIL import Image

from ..errors import InvalidInputError, LoaderError
from .discovery import SUPPORTED_SUFFIXES, discover_files, require_existing
from .images import IMAGE_SUFFIXES, ImageDocument, looks_like_image
from .ocr import INSTALL_HINT, ocr_available, ocr_image
from .pdf import (
    DEFAULT_DPI,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_PIXELS,
    PdfDocument,
    looks_like_pdf,
    render_zoom,
    sha256_of,
)
from .records import LoadFailure, PageRecord, TextSource

logger = logging.getLogger(__name__)

Document = Union[PdfDocument, ImageDocument]
Source = Union[str, os.PathLike, bytes, Image.Image]


def open_document(
    source: Source,
    *,
    password: str | None = None,
    name: str | None = None,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> Document:
    """Open one PDF or image (path, bytes or PIL image); the content decides the type, not the file name.

    Raises :class:`~metaembed_rag.errors.LoaderError` with the reason when the input cannot be loaded.
    """
    if isinstance(source, Image.Image):
        return ImageDocument.open(source, name=name, max_image_pixels=max_image_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        head, label = bytes(source[:1024]), name or "<bytes>"
        if not head:
            raise LoaderError(f"{label}: empty input (0 bytes)")
    else:
        label = name or str(source)
        try:
            with open(source, "rb") as handle:
                head = handle.read(1024)
        except OSError as exc:
            raise LoaderError(f"{label}: cannot read file: {exc.strerror or exc}") from exc
        if not head:
            raise LoaderError(f"{label}: empty file (0 bytes)")
    if looks_like_pdf(head):
        return PdfDocument.open(source, password=password, name=name)
    if looks_like_image(head):
        return ImageDocument.open(source, name=name, max_image_pixels=max_image_pixels)
    suffix = Path(label).suffix.lower()
    if suffix == ".pdf":
        raise LoaderError(f"{label}: not a PDF (no %PDF- header in the first 1024 bytes)")
    raise LoaderError(f"{label}: unsupported file type (neither a PDF nor a known image format)")


def load_pages(
    sources: Source | Iterable[Source],
    *,
    dpi: float = DEFAULT_DPI,
    render: bool = True,
    text: bool = True,
    ocr: bool | None = None,
    password: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    on_error: Literal["warn", "raise"] = "warn",
    failures: list[LoadFailure] | None = None,
) -> Iterator[PageRecord]:
    """Stream page records from files, folders (recursive), glob patterns, bytes or PIL images.

    A path or glob that does not exist (matches nothing) raises
    :class:`~metaembed_rag.errors.InputNotFoundError` (a ``FileNotFoundError``) before any page is read. Files
    that exist but cannot be loaded are logged and appended to ``failures`` (``on_error="warn"``), or raise
    :class:`~metaembed_rag.errors.LoaderError` (``on_error="raise"``).
    """
    if isinstance(sources, (str, os.PathLike, bytes, bytearray, Image.Image)):
        sources = [sources]
    if sources is None:
        raise InvalidInputError("no input given: pass a file, folder, glob, bytes or a PIL image")
    sources = list(sources)
    require_existing(sources)
    failures = failures if failures is not None else []

    def fail(failure: LoadFailure) -> None:
        if on_error == "raise":
            raise LoaderError(str(failure))
        logger.warning("skipping %s", failure)
        failures.append(failure)

    options = {"render": render, "text": text, "ocr": ocr, "max_pixels": max_pixels}
    for source in sources:
        if isinstance(source, (bytes, bytearray, Image.Image)):
            documents: list[Source] = [source]
        else:
            found, problems = discover_files([source])
            for problem in problems:
                fail(problem)
            documents = list(found)
        for item in documents:
            try:
                document = open_document(item, password=password, max_image_pixels=max_image_pixels)
            except LoaderError as exc:
                fail(LoadFailure(_label(item), str(exc).removeprefix(f"{_label(item)}: ")))
                continue
            with document:
                if isinstance(document, PdfDocument):
                    yield from document.pages(dpi=dpi, max_image_pixels=max_image_pixels, **options)
                else:
                    yield from document.pages(**options)


def _label(item: Source) -> str:
    if isinstance(item, (bytes, bytearray)):
        return "<bytes>"
    if isinstance(item, Image.Image):
        return "<image>"
    return str(item)


__all__ = [
    "DEFAULT_DPI",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "INSTALL_HINT",
    "SUPPORTED_SUFFIXES",
    "Document",
    "ImageDocument",
    "LoadFailure",
    "PageRecord",
    "PdfDocument",
    "TextSource",
    "discover_files",
    "load_pages",
    "ocr_available",
    "ocr_image",
    "open_document",
    "render_zoom",
    "require_existing",
    "sha256_of",
]
