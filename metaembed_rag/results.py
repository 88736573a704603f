"""Retrieved pages as framework adapters hand them on: text, score, budget, metadata and the page image.

Page images are never kept in memory or in the index: a result carries a path (``image_path`` metadata, when
page images were saved at indexing time) or the PDF source and page number, and the image is read or
re-rendered only when asked for (:meth:`RetrievedPage.image`, :meth:`RetrievedPage.image_base64`).

Example:
    >>> page = RetrievedPage(id="a.pdf#1", score=0.5, budget=(8, 16), text="Hello", metadata={"page": 1})
    >>> page.as_metadata(image=None)["score"], page.as_metadata(image=None)["budget"]
    (0.5, [8, 16])
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from .errors import ImageLoadError, InvalidInputError
from .inputs import load_image

TEXT_KEY = "text"
"""Metadata key under which a page's text is stored next to its vectors."""

IMAGE_PATH_KEY = "image_path"
"""Metadata key of a saved page image (set when page images are saved at indexing time)."""

ImageMode = Literal["path", "base64", None]
"""How a result carries its page image: a file path, base64 PNG/JPEG data, or not at all."""

DEFAULT_RENDER_DPI = 96


@dataclass(frozen=True)
class RetrievedPage:
    """One search result with the text and metadata stored for it."""

    id: str
    score: float
    budget: tuple[int, int]
    text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str | None:
        return self.metadata.get("source")

    @property
    def page(self) -> int | None:
        return self.metadata.get("page")

    @property
    def has_image(self) -> bool:
        """Whether a page image can be produced (a saved image, or a PDF page that can be re-rendered)."""
        return page_image_available(self.metadata)

    def image(self, dpi: int = DEFAULT_RENDER_DPI) -> Image.Image | None:
        """The page image (RGB), read from disk or re-rendered from the PDF; ``None`` when there is none."""
        return page_image(self.metadata, dpi=dpi)

    def image_path(self) -> str | None:
        """Path of the saved page image, if any."""
        path = self.metadata.get(IMAGE_PATH_KEY)
        return str(path) if path else None

    def image_base64(self, image_format: str = "PNG", dpi: int = DEFAULT_RENDER_DPI) -> str | None:
        """The page image as base64 text (``None`` when there is none)."""
        img = self.image(dpi=dpi)
        return None if img is None else image_to_base64(img, image_format)

    def as_metadata(
        self, image: ImageMode = "path", image_format: str = "PNG", cache: PageImageCache | None = None
    ) -> dict[str, Any]:
        """Flat, JSON-ready metadata for a framework document: stored metadata plus id, score, budget, image.

        With a ``cache``, ``image="base64"`` reads the page's PNG from it (rendered once per page) instead of
        rendering the page again.
        """
        data = {k: v for k, v in self.metadata.items() if k != TEXT_KEY}
        data.update({"id": self.id, "score": float(self.score), "budget": list(self.budget)})
        if image == "base64" and cache is not None:
            path = cache.ensure(self.metadata)
            if path is not None:
                data["image_base64"] = base64.b64encode(Path(path).read_bytes()).decode("ascii")
                data["image_mime_type"] = "image/png"
        elif image == "base64":
            encoded = self.image_base64(image_format)
            if encoded is not None:
                data["image_base64"] = encoded
                data["image_mime_type"] = mime_type(image_format)
        elif image == "path":
            path = self.image_path()
            if path is None:
                data.pop(IMAGE_PATH_KEY, None)
        elif image is None:
            data.pop(IMAGE_PATH_KEY, None)
        else:
            raise InvalidInputError(f"image must be 'path', 'base64' or None, got {image!r}")
        return data


class PageImageCache:
    """Page images as PNG files: the one saved at indexing time, else the PDF page rendered once into a private
    folder (created on first use in the system temp folder) and reused afterwards.

    :meth:`planned_path` says where a page's image is or will be without rendering anything, so results can carry
    a path at no cost and the page is rendered only when someone reads it (:meth:`ensure`).

    Example:
        >>> cache = PageImageCache()
        >>> cache.planned_path({"source": "/no/such.pdf", "page": 1}) is None
        True
    """

    def __init__(self, folder: str | os.PathLike | None = None, dpi: int = DEFAULT_RENDER_DPI) -> None:
        self._folder = Path(folder) if folder is not None else None
        self.dpi = dpi
        self.renders = 0
        """How many pages this cache has rendered (each page at most once while its file stays)."""

    @property
    def folder(self) -> Path:
        if self._folder is None:
            import tempfile

            self._folder = Path(tempfile.mkdtemp(prefix="metaembed-pages-"))
        return self._folder

    def planned_path(self, metadata: Mapping[str, Any]) -> str | None:
        """The saved image's path, else the path the rendered PDF page gets; ``None`` when there is no image."""
        saved = metadata.get(IMAGE_PATH_KEY)
        if saved and Path(saved).is_file():
            return str(saved)
        located = _pdf_page(metadata)
        if located is None:
            return None
        source, page = located
        stat = Path(source).stat()
        key = f"{os.path.realpath(source)}\0{stat.st_mtime_ns}\0{stat.st_size}\0{page}\0{self.dpi}"
        import hashlib

        return str(self.folder / f"{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()[:24]}.png")

    def ensure(self, metadata: Mapping[str, Any]) -> str | None:
        """The path of the page image, rendering the PDF page first if this cache has not yet done so."""
        path = self.planned_path(metadata)
        if path is None or Path(path).is_file():
            return path
        located = _pdf_page(metadata)
        assert located is not None  # planned_path returned a render path
        image = render_pdf_page(located[0], located[1], dpi=self.dpi)
        from .atomic import atomic_path

        with atomic_path(Path(path)) as tmp:
            image.save(tmp, format="PNG")
        self.renders += 1
        return path


def hits_to_pages(hits, budget) -> list[RetrievedPage]:
    """Turn :class:`~metaembed_rag.index.base.SearchHit` s into :class:`RetrievedPage` s (text from metadata)."""
    pair = (int(budget[0]), int(budget[1]))
    pages = []
    for hit in hits:
        metadata = dict(hit.metadata or {})
        text = metadata.get(TEXT_KEY) or ""
        pages.append(RetrievedPage(id=hit.id, score=float(hit.score), budget=pair, text=str(text), metadata=metadata))
    return pages


def mime_type(image_format: str) -> str:
    """MIME type of a PIL format name (``"PNG"`` -> ``"image/png"``)."""
    fmt = image_format.upper()
    return {"JPG": "image/jpeg", "JPEG": "image/jpeg"}.get(fmt, f"image/{fmt.lower()}")


def image_to_base64(image: Image.Image, image_format: str = "PNG") -> str:
    """Encode a PIL image as base64 text.

    Example:
        >>> image_to_base64(Image.new("RGB", (2, 2)))[:8]
        'iVBORw0K'
    """
    buffer = io.BytesIO()
    fmt = "JPEG" if image_format.upper() == "JPG" else image_format.upper()
    image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def image_data_url(image: Image.Image, image_format: str = "PNG") -> str:
    """A ``data:`` URL for an image, as multimodal chat APIs accept."""
    return f"data:{mime_type(image_format)};base64,{image_to_base64(image, image_format)}"


def page_image_available(metadata: Mapping[str, Any]) -> bool:
    """Whether :func:`page_image` can produce an image for this metadata."""
    path = metadata.get(IMAGE_PATH_KEY)
    if path and Path(path).is_file():
        return True
    return _pdf_page(metadata) is not None


def page_image(metadata: Mapping[str, Any], dpi: int = DEFAULT_RENDER_DPI) -> Image.Image | None:
    """The page image for a stored page: the saved image file, else the PDF page re-rendered; or ``None``."""
    path = metadata.get(IMAGE_PATH_KEY)
    if path:
        return load_image(Path(path))
    located = _pdf_page(metadata)
    if located is None:
        return None
    source, page = located
    return render_pdf_page(source, page, dpi=dpi)


def render_pdf_page(
    source: str | os.PathLike, page: int, dpi: int = DEFAULT_RENDER_DPI, *, password: str | None = None
) -> Image.Image:
    """Render one page (1-based) of a PDF through the loaders (:func:`~metaembed_rag.loaders.pdf.render_page`)."""
    from .errors import LoaderError
    from .loaders.pdf import render_page

    try:
        return render_page(source, page, dpi=dpi, password=password)
    except LoaderError as exc:
        raise ImageLoadError(str(exc)) from exc


def _pdf_page(metadata: Mapping[str, Any]) -> tuple[str, int] | None:
    source, page = metadata.get("source"), metadata.get("page")
    if not source or not isinstance(page, int) or metadata.get("kind", "pdf") != "pdf":
        return None
    if not str(source).lower().endswith(".pdf") or not Path(source).is_file():
        return None
    return str(source), page
