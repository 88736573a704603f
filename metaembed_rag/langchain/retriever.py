"""``MetaEmbedRetriever``: LangChain ``BaseRetriever`` over a MetaEmbed index, with a per-call budget."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from ..errors import InvalidInputError
from ..lazy_searcher import LazySearcher
from ..results import ImageMode, RetrievedPage

_OVERRIDABLE = ("budget", "k", "cascade", "filter", "hybrid")


def page_to_document(page: RetrievedPage, image: ImageMode = "path") -> Document:
    """A retrieved page as a LangChain ``Document`` (text as ``page_content``, the rest as metadata)."""
    return Document(page_content=page.text, metadata=page.as_metadata(image=image), id=page.id)


class MetaEmbedRetriever(BaseRetriever):
    """Retrieve pages by budgeted MaxSim; every field has a default.

    ``hybrid=True`` (or a dict of :class:`~metaembed_rag.fusion.HybridOptions`) fuses the ranking with BM25.
    ``budget``/``k``/``cascade``/``filter``/``hybrid`` may be overridden per call
    (``retriever.invoke(q, budget=(16, 64), k=10)``) or made configurable
    (``retriever.configurable_fields(budget=ConfigurableField(id="budget"))``).
    ``model``: a ``MetaEmbedModel``, a checkpoint path, or ``None`` for the starter model (loaded on first use).
    ``index``: a store, a ``MetaEmbedSearcher``, an index folder, or ``None`` for the default index
    (``./.metaembed/default`` when it exists, else a new in-memory index). ``image``: how documents carry the page
    image — ``"path"`` (saved page images), ``"base64"`` (read or re-rendered on demand) or ``None``.

    Example:
        >>> retriever = MetaEmbedRetriever(budget=(8, 16))            # cheap: nothing is loaded yet
        >>> docs = retriever.invoke("what is late interaction?")      # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    budget: Any = (8, 16)
    k: int = 5
    cascade: Any = None
    filter: Any = None
    hybrid: Any = None
    model: Any = None
    index: Any = None
    image: ImageMode = "path"
    engine: LazySearcher | None = Field(default=None, repr=False, exclude=True)
    """The shared engine built from ``model`` and ``index``; copies (e.g. configured ones) share it."""

    def __init__(self, **data: Any) -> None:
        # Validated here, not in a pydantic validator, so bad input raises the package's typed errors.
        if data.get("engine") is None:
            data["engine"] = LazySearcher(model=data.get("model"), index=data.get("index"))
        if data.get("image", "path") not in ("path", "base64", None):
            raise InvalidInputError(f"image must be 'path', 'base64' or None, got {data['image']!r}")
        super().__init__(**data)

    # ------------------------------------------------------------------------------------------ build
    @classmethod
    def from_documents(
        cls, documents: Iterable[Document], *, ids: Sequence[str] | None = None, **fields: Any
    ) -> MetaEmbedRetriever:
        """A retriever over LangChain documents (their text is embedded; metadata is kept)."""
        retriever = cls(**fields)
        retriever.add_documents(list(documents), ids=ids)
        return retriever

    @classmethod
    def from_texts(
        cls, texts: Sequence[str], metadatas: Sequence[dict] | None = None, **fields: Any
    ) -> MetaEmbedRetriever:
        """A retriever over plain texts."""
        retriever = cls(**fields)
        retriever.engine.add_texts(list(texts), metadatas)
        return retriever

    @classmethod
    def from_pdfs(
        cls, paths: Any, *, image_dir: str | None = None, load_options: dict | None = None, **fields: Any
    ) -> MetaEmbedRetriever:
        """A retriever over PDF/image pages (files, folders or globs), streamed through the loaders.

        ``image_dir`` saves page images there (then ``image="path"`` documents point at them).
        """
        retriever = cls(**fields)
        retriever.engine.add_pdfs(paths, image_dir=image_dir, **(load_options or {}))
        return retriever

    def add_documents(self, documents: Sequence[Document], ids: Sequence[str] | None = None) -> list[str]:
        """Embed and index documents; ``Document.id`` is used when set and no ``ids`` are given."""
        documents = list(documents)
        for position, doc in enumerate(documents):
            if not isinstance(doc, Document):
                raise InvalidInputError(f"item #{position} is a {type(doc).__name__}, not a LangChain Document")
        if ids is None and documents and all(d.id for d in documents):
            ids = [d.id for d in documents]
        return self.engine.add_texts([d.page_content for d in documents], [dict(d.metadata) for d in documents], ids)

    # ----------------------------------------------------------------------------------------- search
    def _options(self, overrides: dict[str, Any]) -> dict[str, Any]:
        unknown = set(overrides) - set(_OVERRIDABLE)
        if unknown:
            raise InvalidInputError(f"unknown retriever option(s) {sorted(unknown)}; allowed: {list(_OVERRIDABLE)}")
        options = {name: getattr(self, name) for name in _OVERRIDABLE}
        options.update(overrides)
        return options

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **overrides: Any
    ) -> list[Document]:
        pages = self.engine.retrieve(query, **self._options(overrides))
        return [page_to_document(p, self.image) for p in pages]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **overrides: Any
    ) -> list[Document]:
        pages = await self.engine.aretrieve(query, **self._options(overrides))
        return [page_to_document(p, self.image) for p in pages]
