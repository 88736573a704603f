"""``MetaEmbedRetriever``: LlamaIndex retriever over a MetaEmbed index, for text and image queries."""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle, QueryType

from ..budget import Budget, BudgetLike
from ..errors import InvalidInputError
from ..index.base import Cascade
from ..inputs import ModelInput
from ..lazy_searcher import LazySearcher, text_query
from .filters import to_core_filter
from .nodes import REF_DOC_KEY, NodeImageMode, page_to_node


class MetaEmbedRetriever(BaseRetriever):
    """Retrieve pages by budgeted MaxSim; ``QueryBundle.image_path`` makes an image query (vision models).

    ``similarity_top_k`` (or ``k``), ``budget``, ``cascade``, ``filters`` and ``image`` may be overridden per call:
    ``retriever.retrieve(q, budget=(16, 64), similarity_top_k=10)``.
    ``filters``: LlamaIndex ``MetadataFilters`` or the core's filter dict (``{"source": "a.pdf"}``,
    ``{"page": {"$gte": 2}}``, ``{"$or": [...]}``; see :mod:`metaembed_rag.filters`) or a predicate.
    ``model``/``index`` as in :class:`~metaembed_rag.lazy_searcher.LazySearcher` (no ``index``: a new in-memory
    index, never the CLI's; :meth:`from_collection` opens that); nothing loads until the first query.
    Results are ``TextNode``s, or ``ImageNode``s for pages with an image, with ``ref_doc_id`` set
    (see :mod:`metaembed_rag.llama_index.nodes`); ``image="auto"`` attaches the page image as a path (rendered
    once, when first read), so ``RetrieverQueryEngine.from_args(retriever, multimodal=True)`` sends text and image.

    Example:
        >>> retriever = MetaEmbedRetriever(budget=(8, 16), similarity_top_k=3)                # doctest: +SKIP
        >>> retriever.retrieve(QueryBundle(query_str="", image_path="chart.png"))          # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        budget: BudgetLike = (8, 16),
        k: int | None = None,
        similarity_top_k: int | None = None,
        cascade: Cascade = None,
        filters: Any = None,
        hybrid: Any = None,
        model: Any = None,
        index: Any = None,
        image: NodeImageMode = "auto",
        engine: LazySearcher | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        self.budget = Budget.parse(budget)
        self.k = _top_k(k, similarity_top_k, 5)
        self.cascade = cascade
        self.filters = to_core_filter(filters)
        self.hybrid = hybrid
        self.image = _image_mode(image)
        self.engine = engine or LazySearcher(model=model, index=index)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @classmethod
    def from_collection(cls, name_or_path: Any = None, **kwargs: Any) -> MetaEmbedRetriever:
        """A retriever over an index built by ``metaembed-rag index`` (``None``: ``./.metaembed/default`` or
        ``$METAEMBED_RAG_INDEX``; a bare name: ``./.metaembed/NAME``; else a folder), with its model."""
        if "index" in kwargs or "engine" in kwargs:
            raise InvalidInputError("from_collection opens the named index; do not pass index= or engine= too")
        return cls(engine=LazySearcher.for_collection(name_or_path, model=kwargs.get("model")), **kwargs)

    @classmethod
    def from_pdfs(cls, paths: Any, *, image_dir: str | None = None, load_options: dict | None = None, **kwargs):
        """A retriever over PDF/image pages (files, folders or globs), streamed through the loaders."""
        retriever = cls(**kwargs)
        retriever.engine.add_pdfs(paths, image_dir=image_dir, **(load_options or {}))
        return retriever

    @classmethod
    def from_nodes(cls, nodes: Sequence[BaseNode], **kwargs) -> MetaEmbedRetriever:
        """A retriever over LlamaIndex nodes/documents (their text is embedded, metadata kept)."""
        retriever = cls(**kwargs)
        retriever.add_nodes(nodes)
        return retriever

    def add_nodes(self, nodes: Sequence[BaseNode]) -> list[str]:
        """Embed and index nodes by their text; node ids are kept."""
        nodes = list(nodes)
        for position, node in enumerate(nodes):
            if not isinstance(node, BaseNode):
                raise InvalidInputError(f"item #{position} is a {type(node).__name__}, not a LlamaIndex node")
        metadatas = []
        for node in nodes:
            metadata = dict(node.metadata)
            if node.ref_doc_id is not None:
                metadata[REF_DOC_KEY] = node.ref_doc_id
            metadatas.append(metadata)
        return self.engine.add_texts([n.get_content() for n in nodes], metadatas, [n.node_id for n in nodes])

    def _query(self, query_bundle: QueryBundle) -> ModelInput:
        if not isinstance(query_bundle, QueryBundle):
            raise InvalidInputError(f"expected a QueryBundle or a string, got {type(query_bundle).__name__}")
        if query_bundle.image_path:
            image = self.engine.image_query(query_bundle.image_path).image
            text = query_bundle.query_str if query_bundle.query_str and query_bundle.query_str.strip() else None
            return ModelInput(text=text, image=image)
        return ModelInput(text=text_query(query_bundle.query_str))

    @property
    def similarity_top_k(self) -> int:
        """LlamaIndex's name for :attr:`k`."""
        return self.k

    @similarity_top_k.setter
    def similarity_top_k(self, value: int) -> None:
        self.k = _top_k(value, None, self.k)

    # ------------------------------------------------------------------------------ per-call overrides
    def retrieve(self, str_or_query_bundle: QueryType, **overrides: Any) -> list[NodeWithScore]:
        """Retrieve nodes; ``overrides`` (``budget``, ``similarity_top_k``/``k``, ``cascade``, ``filters``,
        ``hybrid``, ``image``) apply to this call only."""
        token = _OVERRIDES.set(self._check_overrides(overrides))
        try:
            return super().retrieve(str_or_query_bundle)
        finally:
            _OVERRIDES.reset(token)

    async def aretrieve(self, str_or_query_bundle: QueryType, **overrides: Any) -> list[NodeWithScore]:
        """:meth:`retrieve`, with the search in a worker thread."""
        token = _OVERRIDES.set(self._check_overrides(overrides))
        try:
            return await super().aretrieve(str_or_query_bundle)
        finally:
            _OVERRIDES.reset(token)

    def _check_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        unknown = set(overrides) - set(_OVERRIDABLE)
        if unknown:
            raise InvalidInputError(f"unknown retriever option(s) {sorted(unknown)}; allowed: {list(_OVERRIDABLE)}")
        checked: dict[str, Any] = {}
        if "budget" in overrides:
            checked["budget"] = Budget.parse(overrides["budget"])
        if "k" in overrides or "similarity_top_k" in overrides:
            checked["k"] = _top_k(overrides.get("k"), overrides.get("similarity_top_k"), self.k)
        if "cascade" in overrides:
            checked["cascade"] = overrides["cascade"]
        if "filters" in overrides:
            checked["filter"] = to_core_filter(overrides["filters"])
        if "image" in overrides:
            checked["image"] = _image_mode(overrides["image"])
        if "hybrid" in overrides:
            checked["hybrid"] = overrides["hybrid"]
        return checked

    def _options(self) -> tuple[dict[str, Any], NodeImageMode]:
        options: dict[str, Any] = {
            "budget": self.budget,
            "k": self.k,
            "cascade": self.cascade,
            "filter": self.filters,
            "hybrid": self.hybrid,
        }
        options.update(_OVERRIDES.get())
        image = options.pop("image", self.image)
        return options, image

    def _nodes(self, pages: list[Any], image: NodeImageMode) -> list[NodeWithScore]:
        return [page_to_node(p, image, self.engine.image_cache) for p in pages]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        options, image = self._options()
        return self._nodes(self.engine.retrieve(self._query(query_bundle), **options), image)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        options, image = self._options()
        return self._nodes(await self.engine.aretrieve(self._query(query_bundle), **options), image)


_OVERRIDABLE = ("budget", "k", "similarity_top_k", "cascade", "filters", "hybrid", "image")
_OVERRIDES: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("metaembed_overrides", default={})  # noqa: B039


def _top_k(k: Any, similarity_top_k: Any, default: int) -> int:
    if k is not None and similarity_top_k is not None and k != similarity_top_k:
        raise InvalidInputError(f"k={k!r} and similarity_top_k={similarity_top_k!r} disagree; pass one of them")
    value = k if k is not None else similarity_top_k if similarity_top_k is not None else default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"similarity_top_k (k) must be a positive integer, got {value!r}")
    return value


def _image_mode(image: Any) -> NodeImageMode:
    if image not in ("auto", "path", "base64", None):
        raise InvalidInputError(f"image must be 'auto', 'path', 'base64' or None, got {image!r}")
    return image
