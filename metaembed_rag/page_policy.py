"""The page policy: how a loaded page becomes what is indexed — its id, its model input and its metadata.

Every caller that indexes pages (the CLI's pipeline, :class:`~metaembed_rag.collection.DocumentCollection`, the
adapters' ``add_pages`` / ``add_pdfs`` and ``from_pdfs``) goes through :class:`PagePolicy`, so a page gets the same
id, the same input and the same metadata whichever way it was indexed, and a page that cannot be embedded is
skipped with the same reason.

- **Embedding mode** ``text`` / ``image`` / ``image+text``: what the model reads of a page. The default follows
  the model: a vision-language model reads the page image (as the method embeds document pages), a text model
  the page text.
- **Ids** are ``"<source>#page=<n>"``, with the source as an absolute path when the page came from a file, so
  indexing a file again replaces its pages.
- **Metadata** is the record's (source, page, page_count, sha256, title, author …) plus the page text under
  ``"text"`` (what results and hybrid search read).

Example:
    >>> from metaembed_rag.loaders import PageRecord
    >>> record = PageRecord(source="report.pdf", page=2, page_count=3, kind="pdf", text="Revenue rose.")
    >>> unit = PagePolicy("text").unit(record)
    >>> unit.id.endswith("report.pdf#page=2"), unit.input.text, unit.metadata["page"]
    (True, 'Revenue rose.', 2)
    >>> PagePolicy("image").unit(record) is None   # no rendered image: nothing to embed in image mode
    True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import InvalidInputError, UnsupportedInputError
from .inputs import ModelInput
from .results import TEXT_KEY

if TYPE_CHECKING:  # pragma: no cover
    from .loaders import PageRecord
    from .modeling.model import MetaEmbedModel

__all__ = [
    "BLANK_REASON",
    "EMBEDDING_MODES",
    "NO_OCR_REASON",
    "EmbeddingMode",
    "PagePolicy",
    "PageUnit",
    "check_embedding_mode",
    "default_embedding_mode",
    "page_id",
    "source_key",
]

EmbeddingMode = Literal["text", "image", "image+text"]
EMBEDDING_MODES: tuple[str, ...] = ("text", "image", "image+text")
BLANK_REASON = "blank page (no text, no image)"
NO_OCR_REASON = "no text layer (scanned page) and OCR is not available"


def default_embedding_mode(model: MetaEmbedModel) -> EmbeddingMode:
    """A vision-language model embeds the page image, a text model the page text."""
    return "image" if model.supports_images else "text"


def check_embedding_mode(mode: str | None, model: MetaEmbedModel) -> EmbeddingMode:
    """Validate an embedding mode (``None``: the model's default) against what the model can encode."""
    if mode is None:
        return default_embedding_mode(model)
    if mode not in EMBEDDING_MODES:
        raise InvalidInputError(f"unknown embedding mode {mode!r}; choose one of {', '.join(EMBEDDING_MODES)}")
    if mode != "text" and not model.supports_images:
        raise UnsupportedInputError(
            f"embedding mode {mode!r} needs a vision-language model, but {model.identity['name']} reads text only"
        )
    return mode  # type: ignore[return-value]


def page_id(source: str, page: int) -> str:
    """The id of a page: ``"<source>#page=<n>"``.

    Example:
        >>> page_id("/data/a.pdf", 3)
        '/data/a.pdf#page=3'
    """
    return f"{source}#page={page}"


def source_key(path: str | os.PathLike) -> str:
    r"""How a file is named in an index: its absolute, normalised path (symlinks kept).

    Bytes of a file name that are not UTF-8 are written as ``\xNN`` escapes, so the key is valid Unicode.

    Example:
        >>> source_key(os.fsdecode(b"/data/caf\xe9.pdf"))
        '/data/caf\\xe9.pdf'
    """
    return os.fsencode(os.path.abspath(os.fspath(path))).decode("utf-8", "backslashreplace")


def page_source(record: PageRecord) -> str:
    """The source a page is stored under: the absolute path of its file, or the record's label for a page
    loaded from bytes (a name that is not a file here)."""
    return source_key(record.source) if Path(record.source).exists() else record.source


@dataclass(frozen=True)
class PageUnit:
    """One page ready to index: its id, what the model encodes, and the metadata stored with it."""

    id: str
    input: ModelInput
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PagePolicy:
    """Turns :class:`~metaembed_rag.loaders.PageRecord` s into :class:`PageUnit` s for one embedding mode."""

    mode: EmbeddingMode = "text"

    def __post_init__(self) -> None:
        if self.mode not in EMBEDDING_MODES:
            raise InvalidInputError(f"unknown embedding mode {self.mode!r}; choose one of {', '.join(EMBEDDING_MODES)}")

    @classmethod
    def for_model(cls, model: MetaEmbedModel, mode: str | None = None) -> PagePolicy:
        """The policy for ``model``: ``mode`` checked against what it can encode (``None``: its default)."""
        return cls(check_embedding_mode(mode, model))

    def model_input(self, record: PageRecord) -> ModelInput | None:
        """What gets embedded for a page in this mode; ``None`` when the page has nothing to embed.

        The kind of input is explicit: a page whose text looks like a file path is still embedded as text.
        """
        text = record.text.strip()
        if self.mode == "text":
            return ModelInput(text=text) if text else None
        if record.image is None:
            return None
        if self.mode == "image+text" and text:
            return ModelInput(text=text, image=record.image)
        return ModelInput(image=record.image)

    def metadata(self, record: PageRecord, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The metadata stored with a page: the record's, its source as stored, its text, then ``extra``."""
        metadata = dict(record.metadata())
        metadata["source"] = page_source(record)
        metadata[TEXT_KEY] = record.text
        metadata.update(extra or {})
        return metadata

    def unit(self, record: PageRecord, extra: Mapping[str, Any] | None = None) -> PageUnit | None:
        """The page as one unit to index, or ``None`` when it has nothing to embed in this mode."""
        value = self.model_input(record)
        if value is None:
            return None
        return PageUnit(page_id(page_source(record), record.page), value, self.metadata(record, extra))

    def why_skipped(self, record: PageRecord, *, ocr: bool | None = None) -> str:
        """Why :meth:`unit` gave nothing for ``record``, in words for a report (``ocr``: the caller's OCR setting)."""
        from .loaders import ocr_available

        if record.problem:
            return record.problem
        if record.extra.get("repaired"):
            return "no text on this page of a damaged PDF (MuPDF repaired it)"
        if record.extra.get("blank"):
            return BLANK_REASON
        if self.mode == "text":
            if ocr is False:
                return "no text layer (scanned page) and OCR was turned off"
            return NO_OCR_REASON if not ocr_available() else "no text found on the page (blank page?)"
        return "the page could not be rendered"
