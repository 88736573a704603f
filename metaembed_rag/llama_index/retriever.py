"""``MetaEmbedRetriever``: LlamaIndex retriever over a MetaEmbed index, for text and image queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle

from ..budget import Budget, BudgetLike
from ..errors import InvalidInputError
from ..index.base import Cascade
from ..inputs import ModelInput
from ..lazy_searcher import LazySearcher, text_query
from .filters import to_core_filter
from .nodes import NodeImageMode, page_to_node


class MetaEmbedRetriever(BaseRetriever):
    """Retrieve pages by budgeted MaxSim; ``QueryBundle.image_path`` makes an image query (vision models).

    ``filters``: LlamaIndex ``MetadataFilters``, a metadata dict (``{"source": "a.pdf"}``,
    ``{"page": {"$in": [1, 2]}}``) or a predicate on the metadata.
    ``model``/``index`` as in :class:`~metaembed_rag.lazy_searcher.LazySearcher`; nothing loads until the
    first query. Returned nodes carry the page text and image (``image="auto"``: the saved file, else the PDF
    page rendered on demand), so ``RetrieverQueryEngine.from_args(retriever, multimodal=True)`` sends both.

    Example:
        >>> retriever = MetaEmbedRetriever(budget=(8, 16), k=3)                            # doctest: +SKIP
        >>> retriever.retrieve(QueryBundle(query_str="", image_path="chart.png"))          # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        budget: BudgetLike = (8, 16),
        k: int = 5,
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
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        if image not in ("auto", "path", "base64", None):
            raise InvalidInputError(f"image must be 'auto', 'path', 'base64' or None, got {image!r}")
        self.budget = Budget.parse(budget)
        self.k = k
        self.cascade = cascade
        self.filters = to_core_filter(filters)
        self.hybrid = hybrid
        self.image = image
        self.engine = engine or LazySearcher(model=model, index=index)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

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
        return self.engine.add_texts(
            [n.get_content() for n in nodes], [dict(n.metadata) for n in nodes], [n.node_id for n in nodes]
        )

    def _query(self, query_bundle: QueryBundle) -> ModelInput:
        if not isinstance(query_bundle, QueryBundle):
            raise InvalidInputError(f"expected a QueryBundle or a string, got {type(query_bundle).__name__}")
        if query_bundle.image_path:
            image = self.engine.image_query(query_bundle.image_path).image
            text = query_bundle.query_str if query_bundle.query_str and query_bundle.query_str.strip() else None
            return ModelInput(text=text, image=image)
        return ModelInput(text=text_query(query_bundle.query_str))

    def _options(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "k": self.k,
            "cascade": self.cascade,
            "filter": self.filters,
            "hybrid": self.hybrid,
        }

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        pages = self.engine.retrieve(self._query(query_bundle), **self._options())
        return [page_to_node(p, self.image) for p in pages]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        pages = await self.engine.aretrieve(self._query(query_bundle), **self._options())
        return [page_to_node(p, self.image) for p in pages]
