"""Image files (PNG, JPEG, TIFF incl. multi-page, …) to :class:`PageRecord`: one record per image or frame.

Images larger than ``max_image_pixels`` are refused (decompression-bomb guard); images larger than
``max_pixels`` are downscaled. Text comes from OCR when Tesseract is installed.

Example:
    >>> from PIL import Image
    >>> with ImageDocument.open(Image.new("RGB", (40, 20), "white"), name="blank.png") as doc:
    ...     [(r.page, r.render_size) for r in doc.pages(ocr=False)]
    [(1, (40, 20))]
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageSequence

from ..errors import LoaderError
from .ocr import ocr_image
from .pdf import DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_PIXELS, sha256_of
from .records import PageRecord

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"})
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM", b"GIF8", b"RIFF")


def looks_like_image(head: bytes) -> bool:
    """Whether a file's first bytes are those of a common image format."""
    return head.startswith(_MAGIC)


class ImageDocument:
    """An open image (file, bytes or PIL image); each frame of a multi-page TIFF is one page."""

    def __init__(self, image: Image.Image, source: str, sha256: str | None, max_image_pixels: int) -> None:
        self._image = image
        self.source = source
        self.sha256 = sha256
        self.title = None
        self.author = None
        self._max_image_pixels = max_image_pixels
        self.page_count = max(int(getattr(image, "n_frames", 1) or 1), 1)

    @classmethod
    def open(
        cls,
        source: str | os.PathLike | bytes | Image.Image,
        *,
        name: str | None = None,
        sha256: str | None = None,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> ImageDocument:
        if isinstance(source, Image.Image):
            return cls(source, name or "<image>", sha256, max_image_pixels)
        if isinstance(source, (bytes, bytearray, memoryview)):
            label = name or "<bytes>"
            if not source:
                raise LoaderError(f"{label}: empty input (0 bytes)")
            digest, handle = sha256 or sha256_of(bytes(source)), io.BytesIO(bytes(source))
        else:
            label = name or str(source)
            try:
                if Path(source).stat().st_size == 0:
                    raise LoaderError(f"{label}: empty file (0 bytes)")
                digest, handle = sha256 or sha256_of(source), Path(source)
            except OSError as exc:
                raise LoaderError(f"{label}: cannot read file: {exc.strerror or exc}") from exc
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(handle)
        except Image.DecompressionBombError as exc:
            raise LoaderError(f"{label}: image refused (decompression-bomb guard): {exc}") from exc
        except (OSError, ValueError, SyntaxError) as exc:
            raise LoaderError(f"{label}: not a readable image: {exc}") from exc
        return cls(image, label, digest, max_image_pixels)

    def close(self) -> None:
        self._image.close()

    def __enter__(self) -> ImageDocument:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def pages(
        self,
        *,
        render: bool = True,
        text: bool = True,
        ocr: bool | None = None,
        ocr_language: str = "eng",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        **_ignored,
    ) -> Iterator[PageRecord]:
        """Yield one record per frame; a frame that cannot be decoded yields a record with ``problem`` set."""
        for index, frame in enumerate(ImageSequence.Iterator(self._image)):
            record = PageRecord(
                source=self.source, page=index + 1, page_count=self.page_count, kind="image", sha256=self.sha256
            )
            width, height = frame.size
            if width * height > self._max_image_pixels:
                record.problem = (
                    f"image of {width}x{height} pixels exceeds the {self._max_image_pixels} pixel limit "
                    "(decompression-bomb guard)"
                )
                yield record
                continue
            if width == 0 or height == 0:
                record.problem = "image has size zero"
                yield record
                continue
            try:
                image = _fit(frame.convert("RGB"), max_pixels)
            except (OSError, ValueError) as exc:
                record.problem = f"cannot decode image: {exc}"
                yield record
                continue
            record.render_size = image.size
            if render:
                record.image = image
            if text and ocr is not False:
                try:
                    recognised = ocr_image(image, language=ocr_language)
                except LoaderError as exc:
                    record.problem, recognised = str(exc), None
                if recognised:
                    record.text, record.text_source = recognised, "ocr"
            yield record


def _fit(image: Image.Image, max_pixels: int) -> Image.Image:
    width, height = image.size
    if width * height <= max_pixels:
        return image
    scale = math.sqrt(max_pixels / (width * height))
    return image.resize((max(int(width * scale), 1), max(int(height * scale), 1)), Image.Resampling.LANCZOS)
