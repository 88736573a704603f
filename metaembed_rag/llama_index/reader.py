"""``VisualPDFReader``: PDF and image pages as LlamaIndex documents with page image and text."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document, MediaResource

from ..loaders import load_pages, require_existing
from .nodes import encode_image_resource


class VisualPDFReader(BaseReader):
    """One ``Document`` per page with ``text_resource`` (page text) and ``image_resource`` (the rendered page,
    base64 in memory; ``include_image=False`` leaves it out). Keyword arguments go to
    :func:`metaembed_rag.loaders.load_pages` (``dpi``, ``ocr``, ``password`` …).

    Example:
        >>> docs = VisualPDFReader(dpi=96).load_data("examples/report.pdf")        # doctest: +SKIP
    """

    def __init__(self, *, include_image: bool = True, image_format: str = "PNG", **load_options: Any) -> None:
        self.include_image = include_image
        self.image_format = image_format
        load_options.setdefault("render", include_image)
        self.load_options = load_options

    def lazy_load_data(self, file: Any = None, extra_info: dict | None = None, **kwargs: Any) -> Iterable[Document]:
        sources = file if file is not None else kwargs.pop("files", None)
        require_existing([] if sources is None else sources)
        for record in load_pages(sources, **{**self.load_options, **kwargs}):
            metadata = {**record.metadata(), **(extra_info or {})}
            if record.problem:
                metadata["problem"] = record.problem
            image = None
            if self.include_image and record.image is not None:
                image = encode_image_resource(record.image, self.image_format)
            yield Document(
                text_resource=MediaResource(text=record.text),
                image_resource=image,
                metadata=metadata,
                id_=f"{record.source}#page={record.page}",
            )

    def load_data(self, file: Any = None, extra_info: dict | None = None, **kwargs: Any) -> list[Document]:
        """All pages of ``file`` (a path, folder, glob or a list of them); a missing one raises
        :class:`~metaembed_rag.errors.InputNotFoundError` (a ``FileNotFoundError``)."""
        return list(self.lazy_load_data(file, extra_info, **kwargs))
