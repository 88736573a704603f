"""``MetaEmbedVectorStore`` for LlamaIndex: a ``BasePydanticVectorStore`` over any store of the package.

It encodes node texts and query strings with the MetaEmbed model itself (multi-vector, scored by budgeted MaxSim),
so ``VectorStoreIndex`` needs no embedding of its own: pass ``embed_model=vector_store.embed_model`` (a no-op
placeholder that makes no vectors and loads no model) so LlamaIndex does not encode everything a second time.

Example:
    >>> from llama_index.core import StorageContext, VectorStoreIndex                    # doctest: +SKIP
    >>> vector_store = MetaEmbedVectorStore(model=model)                                   # doctest: +SKIP
    >>> index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=vector_store),
    ...                          embed_model=vector_store.embed_model)                    # doctest: +SKIP
    >>> index.as_retriever(similarity_top_k=3, filters=filters).retrieve("question")      # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import BaseNode, ImageNode, MetadataMode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
from pydantic import PrivateAttr

from ..errors import DocumentNotFoundError, InvalidInputError, UnsupportedInputError
from ..inputs import ModelInput, load_image
from ..lazy_searcher import LazySearcher, text_query
from ..results import TEXT_KEY
from .filters import to_core_filter

logger = logging.getLogger(__name__)


class EncodedByStore(BaseEmbedding):
    """A placeholder ``embed_model`` for stores that encode texts themselves: it makes 1-dimensional zero
    vectors instantly (never used for ranking) so ``VectorStoreIndex`` does not encode every node twice."""

    model_name: str = "encoded-by-store"

    @classmethod
    def class_name(cls) -> str:
        return "EncodedByStore"

    def _get_query_embedding(self, query: str) -> list[float]:
        return [0.0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return [0.0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return [0.0]


class MetaEmbedVectorStore(BasePydanticVectorStore):
    """Nodes as MetaEmbed multi-vectors in a ``MultiVectorIndex`` (default), ``QdrantMultiVectorStore`` … .

    ``query`` encodes ``query_str`` itself; without one it takes ``query_embedding`` as the query vectors: a
    multi-vector ``[r_q, d]`` (e.g. ``model.encode_query([q])[0].tolist()``) or one vector ``[d]``, which is a query
    of ``r_q = 1`` (the budget becomes ``(1, r_c)``). It honours ``similarity_top_k``, ``filters`` (every operator
    :mod:`metaembed_rag.llama_index.filters` maps) and ``doc_ids``; ``budget=``, ``cascade=`` and ``hybrid=``
    may be passed per query (e.g. ``index.as_retriever(vector_store_kwargs={"budget": (16, 64), "hybrid": True})``)
    or set on the store. ``VectorStoreQueryMode.HYBRID`` also fuses MaxSim with BM25 on the stored text (the
    searcher's fusion, RRF by default; ``alpha`` weighs dense against BM25). Scores are normalised MaxSim, or the
    fused score for a hybrid query.
    """

    stores_text: bool = True
    is_embedding_query: bool = False
    flat_metadata: bool = False
    budget: Any = (8, 16)
    cascade: Any = None
    hybrid: Any = None
    _engine: LazySearcher = PrivateAttr()

    def __init__(
        self, model: Any = None, store: Any = None, *, engine: LazySearcher | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._engine = engine or LazySearcher(model=model, index=store)

    @classmethod
    def class_name(cls) -> str:
        return "MetaEmbedVectorStore"

    @property
    def client(self) -> Any:
        """The underlying :class:`~metaembed_rag.index.base.MultiVectorStore`."""
        return self._engine.index

    @property
    def engine(self) -> LazySearcher:
        return self._engine

    @property
    def embed_model(self) -> BaseEmbedding:
        """The ``embed_model`` to give ``VectorStoreIndex`` (see the module docs)."""
        return EncodedByStore()

    # ---------------------------------------------------------------------------------------------- write
    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Encode and store nodes (upsert by node id); their ``embedding`` (if any) is not used."""
        nodes = list(nodes)
        if not nodes:
            return []
        inputs, ids, metadatas = [], [], []
        for position, node in enumerate(nodes):
            if not isinstance(node, BaseNode):
                raise InvalidInputError(f"item #{position} is a {type(node).__name__}, not a LlamaIndex node")
            if TEXT_KEY in node.metadata:
                raise InvalidInputError(
                    f"node {node.node_id!r} has metadata key {TEXT_KEY!r}, which this store uses for the text"
                )
            text = node.get_content(metadata_mode=MetadataMode.NONE)
            metadata = node_to_metadata_dict(node, remove_text=True, flat_metadata=self.flat_metadata)
            metadata[TEXT_KEY] = text
            inputs.append(self._input(node))
            ids.append(node.node_id)
            metadatas.append(metadata)
        return self._engine.searcher.add_documents(inputs, ids=ids, metadatas=metadatas)

    def _input(self, node: BaseNode) -> ModelInput:
        text = node.get_content(metadata_mode=MetadataMode.EMBED) or None
        if isinstance(node, ImageNode) and (node.image or node.image_path):
            if not self._engine.model.supports_images:
                raise UnsupportedInputError(
                    f"node {node.node_id!r} is an image node but the model is text-only; use a vision checkpoint"
                )
            return ModelInput(text=text, image=load_image(node.resolve_image()))
        if not text or not text.strip():
            raise InvalidInputError(f"node {node.node_id!r} has no text to embed")
        return ModelInput(text=text)

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document ``ref_doc_id``."""
        ids = self.client.find_ids({"ref_doc_id": ref_doc_id})
        if ids:
            self.client.delete(ids)
        else:
            logger.info("delete: no node of document %r is stored", ref_doc_id)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        """Delete the nodes with these ids and/or passing ``filters`` (both: the nodes that match both)."""
        ids = self._select(node_ids, filters)
        if ids:
            self.client.delete(ids)

    def clear(self) -> None:
        """Delete every node in the store."""
        ids = self.client.find_ids(None)
        if ids:
            self.client.delete(ids)

    # ----------------------------------------------------------------------------------------------- read
    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        """The stored nodes with these ids and/or passing ``filters`` (unknown ids are left out)."""
        ids = self._select(node_ids, filters)
        return [self._node(doc.metadata) for doc in self.client.get(ids)] if ids else []

    def _select(self, node_ids: list[str] | None, filters: Any) -> list[str]:
        if node_ids is None and filters is None:
            raise InvalidInputError("pass node_ids and/or filters")
        chosen = None if filters is None else self.client.find_ids(to_core_filter(filters))
        if node_ids is not None:
            wanted = list(dict.fromkeys(node_ids))
            if chosen is not None:
                allowed = set(chosen)
                return [i for i in wanted if i in allowed]
            return [i for i in wanted if self._exists(i)]
        return chosen or []

    def _exists(self, node_id: str) -> bool:
        try:
            self.client.get([node_id])
        except DocumentNotFoundError:
            return False
        return True

    def _node(self, metadata: dict[str, Any]) -> BaseNode:
        stored = dict(metadata)
        text = str(stored.pop(TEXT_KEY, "") or "")
        node = metadata_dict_to_node(stored, text=text)
        return node

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` best nodes for ``query``; see the class docs for what is honoured."""
        unknown = set(kwargs) - {"budget", "cascade", "hybrid"}
        if unknown:
            raise InvalidInputError(f"unknown query option(s) {sorted(unknown)}; allowed: budget, cascade, hybrid")
        if query.mode not in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.HYBRID):
            raise UnsupportedInputError(
                f"query mode {query.mode.value!r} is not supported; use the default or the hybrid mode"
            )
        if query.node_ids:
            raise UnsupportedInputError("query by node_ids is not supported; use get_nodes(node_ids=...)")
        flt = to_core_filter(query.filters) if query.filters is not None else None
        if query.doc_ids:
            by_doc = {"ref_doc_id": {"$in": list(query.doc_ids)}}
            flt = by_doc if flt is None else {"$and": [flt, by_doc]}
        options = {
            "budget": kwargs.get("budget", self.budget),
            "k": query.similarity_top_k,
            "filter": flt,
            "cascade": kwargs.get("cascade", self.cascade),
        }
        hybrid = _hybrid_options(query, kwargs.get("hybrid", self.hybrid))
        if query.query_str:
            pages = self._engine.retrieve(text_query(query.query_str), hybrid=hybrid, **options)
        elif _is_vector_query(query.query_embedding):
            if hybrid:
                raise InvalidInputError("a hybrid query needs query_str (BM25 cannot read an embedding)")
            pages = self._engine.retrieve_by_vector(query.query_embedding, **options)
        else:
            raise InvalidInputError(
                "set query_str (the store encodes it), or query_embedding: a multi-vector query [r_q, d] or one "
                "vector [d] of the index's dimension (the store's placeholder embed_model makes none)"
            )
        nodes = [self._node(p.metadata) for p in pages]
        return VectorStoreQueryResult(nodes=nodes, similarities=[p.score for p in pages], ids=[p.id for p in pages])

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)


def _is_vector_query(embedding: Any) -> bool:
    """Whether ``embedding`` is a real query (not absent, not the 1-d placeholder of :class:`EncodedByStore`)."""
    if embedding is None:
        return False
    try:
        return len(embedding) > 0 and not (len(embedding) == 1 and not hasattr(embedding[0], "__len__"))
    except TypeError:
        return False


def _hybrid_options(query: VectorStoreQuery, hybrid: Any) -> Any:
    """``hybrid`` for a query: the hybrid mode turns it on; its ``alpha`` weighs dense (alpha) against BM25
    (1 - alpha) in the fusion, ``sparse_top_k`` sets how many pages each ranking contributes."""
    if query.mode != VectorStoreQueryMode.HYBRID:
        return hybrid
    from ..fusion import HybridOptions

    options = HybridOptions.parse(hybrid) or HybridOptions()
    changes: dict[str, Any] = {}
    if query.alpha is not None:
        if not 0.0 <= query.alpha <= 1.0:
            raise InvalidInputError(f"alpha must lie in [0, 1], got {query.alpha!r}")
        changes.update(dense_weight=float(query.alpha), lexical_weight=1.0 - float(query.alpha))
    if query.sparse_top_k:
        changes["candidates"] = max(int(query.sparse_top_k), query.similarity_top_k)
    from dataclasses import replace

    return replace(options, **changes)
