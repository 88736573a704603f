"""``MetaEmbedRetriever``: LangChain ``BaseRetriever`` over a MetaEmbed index, with a per-call budget."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever, LangSmithRetrieverParams
from pydantic import ConfigDict, Field

from ..errors import InvalidInputError
from ..lazy_searcher import LazySearcher
from ..results import ImageMode, PageImageCache, RetrievedPage
from .queries import query_input

_OVERRIDABLE = ("budget", "k", "cascade", "filter", "hybrid")


def page_to_document(page: RetrievedPage, image: ImageMode = "path", cache: PageImageCache | None = None) -> Document:
    """A retrieved page as a LangChain ``Document`` (text as ``page_content``, the rest as metadata)."""
    return Document(page_content=page.text, metadata=page.as_metadata(image=image, cache=cache), id=page.id)


class MetaEmbedRetriever(BaseRetriever):
    """Retrieve pages by budgeted MaxSim; every field has a default.

    Image queries (vision models): ``retriever.invoke("", query_image="chart.png")`` (a path, bytes or a PIL
    image, with optional text), or the query as content blocks (``[{"type": "text", "text": …},
    {"type": "image", "base64": …, "mime_type": "image/png"}]``).
    ``hybrid=True`` (or a dict of :class:`~metaembed_rag.fusion.HybridOptions`) fuses the ranking with BM25.
    ``budget``/``k``/``cascade``/``filter``/``hybrid`` may be overridden per call
    (``retriever.invoke(q, budget=(16, 64), k=10)``) or made configurable
    (``retriever.configurable_fields(budget=ConfigurableField(id="budget"))``).
    ``model``: a ``MetaEmbedModel``, a checkpoint path, or ``None`` for the starter model (loaded on first use).
    ``index``: a store, a ``MetaEmbedSearcher``, an index folder, or ``None`` for a new in-memory index (never
    the CLI's ``./.metaembed/default``: open that with :meth:`from_collection`). ``image``: how documents carry the page
    image — ``"path"`` (saved page images), ``"base64"`` (the saved image, or the PDF page rendered once and
    cached) or ``None``.

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
    def from_collection(cls, name_or_path: Any = None, **fields: Any) -> MetaEmbedRetriever:
        """A retriever over an index built by ``metaembed-rag index`` (``None``: ``./.metaembed/default`` or
        ``$METAEMBED_RAG_INDEX``; a bare name: ``./.metaembed/NAME``; else a folder), with its model."""
        if "index" in fields or "engine" in fields:
            raise InvalidInputError("from_collection opens the named index; do not pass index= or engine= too")
        engine = LazySearcher.for_collection(name_or_path, model=fields.get("model"))
        return cls(engine=engine, **fields)

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

    def _get_ls_params(self, **kwargs: Any) -> LangSmithRetrieverParams:
        """Tracing parameters: the retriever name plus the embedding provider, model and store."""
        params = super()._get_ls_params(**kwargs)
        params.update(self.engine.trace_params())  # type: ignore[typeddict-item]
        return params

    # ----------------------------------------------------------------------------------------- search
    def _options(self, overrides: dict[str, Any]) -> dict[str, Any]:
        unknown = set(overrides) - {*_OVERRIDABLE, "query_image"}
        if unknown:
            allowed = [*_OVERRIDABLE, "query_image"]
            raise InvalidInputError(f"unknown retriever option(s) {sorted(unknown)}; allowed: {allowed}")
        options = {name: getattr(self, name) for name in _OVERRIDABLE}
        options.update(overrides)
        return options

    def _prepare(self, query: Any, overrides: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The query as the engine takes it (text, or a ``ModelInput`` with an image) and the search options."""
        options = self._options(overrides)
        return query_input(self.engine, query, options.pop("query_image", None), "query_image"), options

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **overrides: Any
    ) -> list[Document]:
        prepared, options = self._prepare(query, overrides)
        pages = self.engine.retrieve(prepared, **options)
        return [page_to_document(p, self.image, self.engine.image_cache) for p in pages]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **overrides: Any
    ) -> list[Document]:
        prepared, options = self._prepare(query, overrides)
        pages = await self.engine.aretrieve(prepared, **options)
        return [page_to_document(p, self.image, self.engine.image_cache) for p in pages]
