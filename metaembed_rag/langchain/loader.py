"""``VisualPDFLoader``: PDF and image pages as LangChain documents, streamed over the core loaders."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document

from ..loaders import load_pages, require_existing
from ..results import image_to_base64, mime_type


class VisualPDFLoader(BaseLoader):
    """One ``Document`` per page: the page text as ``page_content``, the loader's metadata, and optionally the
    rendered page image as base64 (``include_image=True``; off by default to keep memory low).

    A path or glob that does not exist raises :class:`~metaembed_rag.errors.InputNotFoundError` (a
    ``FileNotFoundError``). Other keyword arguments go to :func:`metaembed_rag.loaders.load_pages` (``dpi``,
    ``ocr``, ``password`` …).

    Example:
        >>> for doc in VisualPDFLoader("examples/").lazy_load():      # doctest: +SKIP
        ...     print(doc.metadata["source"], doc.metadata["page"], len(doc.page_content))
    """

    def __init__(self, paths: Any, *, include_image: bool = False, image_format: str = "PNG", **load_options: Any):
        require_existing(paths)  # a missing path is an InputNotFoundError now, as with PyPDFLoader
        self.paths = paths
        self.include_image = include_image
        self.image_format = image_format
        load_options.setdefault("render", include_image)
        self.load_options = load_options

    def lazy_load(self) -> Iterator[Document]:
        for record in load_pages(self.paths, **self.load_options):
            metadata = record.metadata()
            if record.problem:
                metadata["problem"] = record.problem
            if self.include_image and record.image is not None:
                metadata["image_base64"] = image_to_base64(record.image, self.image_format)
                metadata["image_mime_type"] = mime_type(self.image_format)
            yield Document(page_content=record.text, metadata=metadata)
