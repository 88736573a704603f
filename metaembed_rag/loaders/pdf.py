"""PDF pages to :class:`PageRecord`: rendered image (pymupdf), text layer, OCR for scans, metadata.

Pages are produced one at a time, so a 1000-page file never has more than the pages a caller keeps in memory.
Huge pages are rendered at a lower dpi so that no image exceeds ``max_pixels``; a page whose embedded images
exceed ``max_image_pixels`` (a decompression bomb) is not rendered, and its record says why.

pymupdf is AGPL-3.0 licensed.

Example:
    >>> import pymupdf
    >>> doc = pymupdf.open(); _ = doc.new_page().insert_text((72, 72), "Hello"); data = doc.tobytes()
    >>> with PdfDocument.open(data, name="hello.pdf") as pdf:
    ...     [(r.page, r.text, r.render_size) for r in pdf.pages(dpi=72)]
    [(1, 'Hello', (595, 842))]
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from ..errors import LoaderError
from .ocr import default_ocr_workers, ocr_available, ocr_image, warn_ocr_unavailable_once
from .records import PageRecord

logger = logging.getLogger(__name__)

DEFAULT_DPI = 144
DEFAULT_MAX_PIXELS = 4096 * 4096
"""Largest rendered page, in pixels; bigger pages are rendered at a reduced dpi."""
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000
"""Largest embedded image a page may contain to be rendered (decompression-bomb guard)."""
DEFAULT_OCR_DPI = 200
PDF_MAGIC = b"%PDF-"
_HASH_CHUNK = 1 << 20


def _pymupdf():
    import pymupdf

    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    return pymupdf


def sha256_of(source: str | os.PathLike | bytes) -> str:
    """SHA-256 hex digest of a file (read in chunks) or of bytes."""
    digest = hashlib.sha256()
    if isinstance(source, (bytes, bytearray, memoryview)):
        digest.update(source)
        return digest.hexdigest()
    with open(source, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def looks_like_pdf(head: bytes) -> bool:
    """Whether a file's first bytes carry a PDF header (allowed anywhere in the first 1024 bytes)."""
    return PDF_MAGIC in head[:1024]


def render_zoom(width_pt: float, height_pt: float, dpi: float, max_pixels: int) -> float:
    """Zoom factor for rendering a page at ``dpi``, reduced so the image stays within ``max_pixels``.

    Example:
        >>> render_zoom(612, 792, 144, 10**9)
        2.0
        >>> round(render_zoom(612 * 100, 792 * 100, 144, 4_000_000), 4)
        0.0286
    """
    zoom = dpi / 72.0
    pixels = max(width_pt * zoom, 1.0) * max(height_pt * zoom, 1.0)
    if pixels > max_pixels:
        zoom *= math.sqrt(max_pixels / pixels)
        # The rasteriser rounds the pixel size up; shrink a little until the rounded size fits too.
        while zoom > 1e-6 and (math.ceil(width_pt * zoom) + 1) * (math.ceil(height_pt * zoom) + 1) > max_pixels:
            zoom *= 0.995
    return zoom


def _utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class PdfDocument:
    """An open PDF. Open it with :meth:`open` (raises :class:`LoaderError` for anything unreadable).

    Use as a context manager; iterate pages with :meth:`pages`.
    """

    def __init__(self, doc, source: str, sha256: str) -> None:
        self._doc = doc
        self.source = source
        self.sha256 = sha256
        self.repaired = bool(getattr(doc, "is_repaired", False))
        """MuPDF had to repair the file (damaged or truncated): pages may be missing or empty."""
        meta = doc.metadata or {}
        self.title = (meta.get("title") or "").strip() or None
        self.author = (meta.get("author") or "").strip() or None

    @classmethod
    def open(
        cls,
        source: str | os.PathLike | bytes,
        *,
        password: str | None = None,
        name: str | None = None,
        sha256: str | None = None,
    ) -> PdfDocument:
        """Open a PDF file or PDF bytes; ``name`` labels bytes in records and errors."""
        pymupdf = _pymupdf()
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            label = name or "<bytes>"
            if not data:
                raise LoaderError(f"{label}: empty input (0 bytes)")
            if not looks_like_pdf(data[:1024]):
                raise LoaderError(f"{label}: not a PDF (no %PDF- header in the first 1024 bytes)")
            digest = sha256 or sha256_of(data)
            opener = {"stream": data, "filetype": "pdf"}
        else:
            path = Path(source)
            label = name or str(path)
            try:
                size = path.stat().st_size
                with open(path, "rb") as handle:
                    head = handle.read(1024)
            except OSError as exc:
                raise LoaderError(f"{label}: cannot read file: {exc.strerror or exc}") from exc
            if size == 0:
                raise LoaderError(f"{label}: empty file (0 bytes)")
            if not looks_like_pdf(head):
                raise LoaderError(f"{label}: not a PDF (no %PDF- header in the first 1024 bytes)")
            try:
                digest = sha256 or sha256_of(path)
            except OSError as exc:
                raise LoaderError(f"{label}: cannot read file: {exc.strerror or exc}") from exc
            opener = {"filename": str(path), "filetype": "pdf"}
        handle_fd = None
        if "filename" in opener and not _utf8_encodable(opener["filename"]):
            # MuPDF takes UTF-8 file names only; reach a file whose name is not UTF-8 through its descriptor.
            label = os.fsencode(label).decode("utf-8", "backslashreplace")
            handle_fd = os.open(path, os.O_RDONLY)
            if os.path.exists(f"/proc/self/fd/{handle_fd}"):
                opener = {"filename": f"/proc/self/fd/{handle_fd}", "filetype": "pdf"}
            else:  # pragma: no cover - no /proc: read the file into memory
                opener = {"stream": path.read_bytes(), "filetype": "pdf"}
        try:
            doc = pymupdf.open(**opener)
        except Exception as exc:  # pymupdf raises FileDataError, RuntimeError, ValueError …
            detail = str(exc)
            if "filename" in opener:  # MuPDF repeats the full path; the label already names the file
                detail = detail.replace(opener["filename"], Path(label).name)
            raise LoaderError(f"{label}: malformed PDF: {detail}") from exc
        finally:
            if handle_fd is not None:
                os.close(handle_fd)  # MuPDF holds its own descriptor from here on
        try:
            if doc.needs_pass:
                if password is None:
                    raise LoaderError(f"{label}: encrypted PDF; pass its password to open it")
                if not doc.authenticate(password):
                    raise LoaderError(f"{label}: encrypted PDF; the password given is wrong")
            if doc.page_count == 0:
                raise LoaderError(f"{label}: the PDF has no pages (damaged or empty)")
        except BaseException:
            doc.close()
            raise
        return cls(doc, label, digest)

    @property
    def page_count(self) -> int:
        return self._doc.page_count

    def close(self) -> None:
        self._doc.close()

    def __enter__(self) -> PdfDocument:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def pages(
        self,
        *,
        dpi: float = DEFAULT_DPI,
        render: bool = True,
        text: bool = True,
        ocr: bool | None = None,
        ocr_dpi: float = DEFAULT_OCR_DPI,
        ocr_language: str = "eng",
        ocr_workers: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        page_numbers: list[int] | None = None,
    ) -> Iterator[PageRecord]:
        """Yield one record per page (numbered from 1), in order.

        ``ocr=None`` (default) runs OCR on pages without a text layer when Tesseract is installed; ``False``
        never does; ``True`` is the same as ``None`` but is meant for callers that require it. Scanned pages are
        recognised by up to ``ocr_workers`` Tesseract processes at once (default: the cores this process may
        use, see :func:`~metaembed_rag.loaders.ocr.default_ocr_workers`), a few pages ahead of the caller, so
        OCR overlaps with whatever the caller does with the pages already yielded (encoding, when indexing).
        A page that cannot be rendered or read yields a record with ``problem`` set rather than stopping the file.
        """
        if dpi <= 0 or ocr_dpi <= 0:
            raise LoaderError(f"dpi must be positive, got {dpi} (ocr_dpi {ocr_dpi})")
        workers = default_ocr_workers() if ocr_workers is None else ocr_workers
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise LoaderError(f"ocr_workers must be a positive integer, got {ocr_workers!r}")
        numbers = page_numbers or range(1, self.page_count + 1)
        prepared = (
            self._page(
                number,
                dpi=dpi,
                render=render,
                text=text,
                ocr=ocr is not False,
                ocr_dpi=ocr_dpi,
                max_pixels=max_pixels,
                max_image_pixels=max_image_pixels,
            )
            for number in numbers
        )
        if workers == 1 or ocr is False or not text:
            for record, scan in prepared:
                if scan is not None:
                    _apply_ocr(record, lambda scan=scan: ocr_image(scan, language=ocr_language))
                yield record
            return
        yield from _ocr_ahead(prepared, workers, ocr_language)

    def _page(
        self, number: int, *, dpi, render, text, ocr, ocr_dpi, max_pixels, max_image_pixels
    ) -> tuple[PageRecord, Image.Image | None]:
        """The page's record without OCR, and the image to recognise when the page needs OCR (else ``None``)."""
        record = PageRecord(
            source=self.source,
            page=number,
            page_count=self.page_count,
            kind="pdf",
            sha256=self.sha256,
            title=self.title,
            author=self.author,
        )
        if self.repaired:
            record.extra["repaired"] = True
        try:
            page = self._doc.load_page(number - 1)
        except Exception as exc:
            record.problem = f"cannot read page: {exc}"
            return record, None
        if text:
            try:
                record.text = _clean_text(page.get_text("text", flags=_text_flags()))
            except Exception as exc:
                record.problem = f"cannot extract text: {exc}"
            record.text_source = "layer" if record.has_text else "none"
        bomb = _oversized_image(page, max_image_pixels)
        if bomb:
            record.problem = bomb
        elif self.repaired and not record.has_text and not _has_content(page):
            record.problem = "the page has no content (damaged PDF, repaired by MuPDF)"
            return record, None
        if render and not bomb:
            try:
                record.image, record.dpi = _render(page, dpi, max_pixels)
                record.render_size = record.image.size
            except Exception as exc:
                record.problem = f"cannot render page: {exc}"
        if text and not record.has_text and not bomb and not record.problem and _is_blank(page):
            record.extra["blank"] = True  # nothing to recognise: no OCR, and "blank" rather than "scanned"
            return record, None
        if not (text and ocr and not record.has_text and not bomb) or not ocr_available():
            if text and ocr and not record.has_text and not bomb:
                warn_ocr_unavailable_once()
            return record, None
        if record.image is not None and (record.dpi or 0) >= ocr_dpi:
            return record, record.image
        try:
            return record, _render(page, ocr_dpi, max_pixels)[0]
        except Exception as exc:
            record.problem = record.problem or f"OCR failed: cannot render the page for OCR: {exc}"
            return record, None


def _apply_ocr(record: PageRecord, recognise: Callable[[], str | None]) -> None:
    """Run ``recognise`` and put its text in ``record`` (a failure becomes the record's ``problem``)."""
    try:
        recognised = recognise()
    except Exception as exc:
        record.problem = record.problem or f"OCR failed: {exc}"
        return
    if recognised:
        record.text, record.text_source = _clean_text(recognised), "ocr"


def _ocr_ahead(
    prepared: Iterator[tuple[PageRecord, Image.Image | None]], workers: int, language: str
) -> Iterator[PageRecord]:
    """Yield the records in order while up to ``workers`` Tesseract processes recognise the pages ahead.

    At most ``2 * workers`` pages are held ahead of the caller; closing the generator early waits for the
    running processes and cancels the queued ones.
    """
    pending: deque[tuple[PageRecord, Future | None]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="metaembed-ocr")

    def finished(item: tuple[PageRecord, Future | None]) -> PageRecord:
        record, future = item
        if future is not None:
            _apply_ocr(record, future.result)
        return record

    try:
        for record, scan in prepared:
            future = pool.submit(ocr_image, scan, language=language) if scan is not None else None
            pending.append((record, future))
            while pending and (len(pending) > 2 * workers or pending[0][1] is None or pending[0][1].done()):
                yield finished(pending.popleft())
        while pending:
            yield finished(pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def render_page(
    source: str | os.PathLike | bytes,
    page: int,
    *,
    dpi: float = DEFAULT_DPI,
    password: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> Image.Image:
    """Render one page (from 1) of a PDF as indexing does: same opening checks, password, pixel and bomb guards.

    Example:
        >>> import pymupdf
        >>> doc = pymupdf.open(); _ = doc.new_page(width=100, height=50).insert_text((10, 20), "Hi")
        >>> render_page(doc.tobytes(), 1, dpi=72).size
        (100, 50)
    """
    with PdfDocument.open(source, password=password) as document:
        if not 1 <= page <= document.page_count:
            raise LoaderError(f"{document.source} has {document.page_count} pages; page {page} does not exist")
        record = next(
            document.pages(
                dpi=dpi,
                text=False,
                ocr=False,
                max_pixels=max_pixels,
                max_image_pixels=max_image_pixels,
                page_numbers=[page],
            )
        )
    if record.image is None:
        raise LoaderError(f"cannot render page {page} of {document.source}: {record.problem or 'no image'}")
    return record.image


def _text_flags() -> int:
    pymupdf = _pymupdf()
    # Ligatures expanded ("ﬁ" -> "fi") so that text models see ordinary words.
    return pymupdf.TEXT_PRESERVE_WHITESPACE | pymupdf.TEXT_MEDIABOX_CLIP


def _clean_text(value: str) -> str:
    lines = [line.rstrip() for line in value.replace("\x00", "").splitlines()]
    return "\n".join(lines).strip()


def _is_blank(page) -> bool:
    """Whether a page without text has nothing else either (no image, no vector drawing)."""
    try:
        return not page.get_images(full=False) and not page.get_drawings()
    except Exception:
        return False


def _has_content(page) -> bool:
    try:
        return bool(page.get_contents())
    except Exception:
        return False


def _oversized_image(page, max_image_pixels: int) -> str | None:
    try:
        images = page.get_images(full=True)
    except Exception:
        return None
    for entry in images:
        width, height = int(entry[2]), int(entry[3])
        if width * height > max_image_pixels:
            return (
                f"not rendered: an embedded image of {width}x{height} pixels exceeds the "
                f"{max_image_pixels} pixel limit (decompression-bomb guard)"
            )
    return None


def _render(page, dpi: float, max_pixels: int) -> tuple[Image.Image, float]:
    pymupdf = _pymupdf()
    rect = page.rect
    zoom = render_zoom(rect.width, rect.height, dpi, max_pixels)
    pixmap = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), colorspace=pymupdf.csRGB, alpha=False)
    image = Image.frombytes("RGB", (pixmap.width, pixmap.height), pixmap.samples)
    return image, round(zoom * 72.0, 3)
