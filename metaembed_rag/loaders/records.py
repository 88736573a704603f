"""What the loaders produce: one :class:`PageRecord` per PDF page or image frame, and :class:`LoadFailure`.

Example:
    >>> record = PageRecord(source="a.pdf", page=1, page_count=3, text="Hello", text_source="layer")
    >>> record.metadata()["page"], record.has_text
    (1, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image

TextSource = Literal["layer", "ocr", "none"]
"""Where a page's text came from: the PDF text layer, Tesseract OCR, or nowhere (a scan without OCR)."""


@dataclass
class PageRecord:
    """One page of a document (or one image / TIFF frame).

    ``image`` is the rendered page (RGB) when rendering was asked for and succeeded; ``problem`` says why it is
    missing otherwise. ``text`` is the text layer, or OCR text for a scanned page, or ``""``.
    """

    source: str
    page: int
    page_count: int
    text: str = ""
    text_source: TextSource = "none"
    image: Image.Image | None = None
    kind: Literal["pdf", "image"] = "pdf"
    sha256: str | None = None
    title: str | None = None
    author: str | None = None
    render_size: tuple[int, int] | None = None
    dpi: float | None = None
    problem: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_text(self) -> bool:
        return bool(self.text.strip())

    def metadata(self) -> dict[str, Any]:
        """JSON-ready metadata (no image), as stored next to the page's vectors in an index."""
        data: dict[str, Any] = {
            "source": self.source,
            "page": self.page,
            "page_count": self.page_count,
            "kind": self.kind,
            "text_source": self.text_source,
        }
        optional = {
            "sha256": self.sha256,
            "title": self.title,
            "author": self.author,
            "dpi": self.dpi,
            "render_size": list(self.render_size) if self.render_size else None,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        data.update(self.extra)
        return data


@dataclass(frozen=True)
class LoadFailure:
    """A file (or a page of it, when ``page`` is set) that could not be loaded, and why; ``missing``: the path
    (or glob) given does not exist (matches nothing)."""

    source: str
    reason: str
    page: int | None = None
    missing: bool = False

    def __str__(self) -> str:
        where = f"{self.source} (page {self.page})" if self.page is not None else self.source
        return f"{where}: {self.reason}"
