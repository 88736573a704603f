"""``MetaEmbedVectorStore``: a LangChain ``VectorStore`` over any store of the package, scored by budgeted MaxSim.

Example:
    >>> store = MetaEmbedVectorStore()                      # the starter model, loaded on first use
    >>> store.add_texts(["Paris is in France.", "Bees dance."], metadatas=[{"topic": "geo"}, {}], ids=["p", "b"])
    ['p', 'b']
    >>> [(doc.id, doc.metadata["topic"]) for doc, score in store.similarity_search_with_score(
    ...     "capital of France?", k=1, budget=(16, 64))]
    [('p', 'geo')]
    >>> retriever = store.as_retriever(search_kwargs={"k": 1, "budget": (4, 8), "hybrid": True})
    >>> [doc.id for doc in retriever.invoke("Where do bees dance?")]
    ['b']
    >>> query = store.engine.model.encode_query(["capital of France?"])[0]     # [16, 384]: a multi-vector query
    >>> [doc.id for doc in store.similarity_search_by_vector(query, k=1)]
    ['p']
    >>> store.similarity_search("", image="chart.png")      # a vision model only  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from ..budget import BudgetLike
from ..errors import DocumentNotFoundError, InvalidInputError
from ..index.base import Cascade
from ..lazy_searcher import LazySearcher
from ..results import TEXT_KEY, RetrievedPage
from .embeddings import MetaEmbedEmbeddings
from .queries import query_input

logger = logging.getLogger(__name__)

SEARCH_KWARGS = ("budget", "cascade", "filter", "hybrid", "image")
"""Keyword arguments every search method accepts besides ``k`` (the by-vector ones: budget, cascade, filter)."""
VECTOR_SEARCH_KWARGS = ("budget", "cascade", "filter")


class MetaEmbedVectorStore(VectorStore):
    """Texts and documents embedded as MetaEmbed multi-vectors, searched by MaxSim at a per-call budget.

    ``model``: a ``MetaEmbedModel``, a checkpoint path, or ``None`` (the starter model). ``store``: any
    :class:`~metaembed_rag.index.base.MultiVectorStore` (``MultiVectorIndex``, ``QdrantMultiVectorStore`` …) or
    ``None`` for a new in-memory index. ``budget``/``cascade`` are the defaults of every search; each search
    method also takes ``budget=``, ``cascade=`` and ``filter=`` (the operator set of
    :mod:`metaembed_rag.filters`), ``hybrid=`` (``True`` or a dict of :class:`~metaembed_rag.fusion.HybridOptions`:
    the MaxSim ranking fused with BM25 on the stored text, as the searcher does) and ``image=`` (a query image: a
    path, bytes or a PIL image, for a vision model; the query may also be content blocks
    ``[{"type": "text", …}, {"type": "image", "base64": …}]`` or ``{"type": "image_url", …}``). Scores are
    normalised MaxSim (in ``[-1, 1]``); relevance scores map them to ``[0, 1]``. A hybrid search scores by the
    fusion (RRF by default) and adds ``metadata["hybrid"]`` (dense and BM25 rank and score); it has no relevance
    score. Otherwise documents come back with their own metadata only (no score or budget keys added), and
    ``Document.id`` set. ``similarity_search_by_vector`` takes a multi-vector query ``[r_q, d]`` (see
    :meth:`~metaembed_rag.lazy_searcher.LazySearcher.query_vectors`: one vector ``[d]`` is a query of ``r_q = 1``).
    """

    def __init__(
        self,
        model: Any = None,
        store: Any = None,
        *,
        budget: BudgetLike = (8, 16),
        cascade: Cascade = None,
        hybrid: Any = None,
        engine: LazySearcher | None = None,
    ) -> None:
        self.engine = engine or LazySearcher(model=model, index=store)
        self.budget = budget
        self.cascade = cascade
        self.hybrid = hybrid

    # --------------------------------------------------------------------------------------------- basics
    @property
    def embeddings(self) -> Embeddings:
        """The single-vector (1,1) view of the same model (for code that asks a store for its embeddings)."""
        return MetaEmbedEmbeddings(engine=self.engine)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return lambda score: (score + 1.0) / 2.0

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> MetaEmbedVectorStore:
        """A new store holding ``texts``; ``embedding`` may be ``None`` or a :class:`MetaEmbedEmbeddings` (whose
        model is then used); other LangChain embeddings cannot make multi-vectors and are refused."""
        if embedding is not None:
            if not isinstance(embedding, MetaEmbedEmbeddings):
                raise InvalidInputError(
                    f"MetaEmbedVectorStore embeds with a MetaEmbed model; got {type(embedding).__name__}. "
                    "Pass embedding=None (and model=...) or a MetaEmbedEmbeddings"
                )
            kwargs.setdefault("engine", embedding.engine)
        store = cls(**kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    # ---------------------------------------------------------------------------------------------- write
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store texts (upsert by id); returns their ids (content hashes when none are given)."""
        if kwargs:
            raise InvalidInputError(f"unknown add_texts option(s) {sorted(kwargs)}")
        # LangChain passes Document.id, which may be None: the searcher gives those their content hash
        return self.engine.add_texts(list(texts), metadatas, ids)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete documents by id; ids that are not stored are skipped (logged), as LangChain stores do."""
        if ids is None:
            raise InvalidInputError("delete needs the ids to delete (deleting everything is not done implicitly)")
        ids = list(dict.fromkeys(ids))
        if not ids:
            return True
        try:
            self.engine.index.delete(ids)
        except DocumentNotFoundError:
            present = [doc_id for doc_id in ids if self._exists(doc_id)]
            logger.info("delete: %d of %d ids are not in the store", len(ids) - len(present), len(ids))
            if present:
                self.engine.index.delete(present)
        return True

    def _exists(self, doc_id: str) -> bool:
        try:
            self.engine.index.get([doc_id])
        except DocumentNotFoundError:
            return False
        return True

    # ----------------------------------------------------------------------------------------------- read
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents with these ids (unknown ids are left out)."""
        found = []
        for doc_id in dict.fromkeys(ids):
            try:
                stored = self.engine.index.get([doc_id])[0]
            except DocumentNotFoundError:
                continue
            found.append(_document(doc_id, stored.metadata))
        return found

    def similarity_search(self, query: Any, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k=k, **kwargs)]

    def similarity_search_with_score(self, query: Any, k: int = 4, **kwargs: Any) -> list[tuple[Document, float]]:
        """``(document, score)`` pairs, best first; takes ``budget``, ``cascade``, ``filter``, ``hybrid``,
        ``image`` (see the class docs)."""
        prepared, options = self._prepare(query, kwargs)
        return [(_document(p.id, p.metadata), p.score) for p in self.engine.retrieve(prepared, k=k, **options)]

    def _similarity_search_with_relevance_scores(
        self, query: Any, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        if kwargs.get("hybrid", self.hybrid):
            raise InvalidInputError(
                "relevance scores map MaxSim scores to [0, 1]; a hybrid search scores by rank fusion: use "
                "similarity_search_with_score, or search without hybrid"
            )
        return [(doc, (score + 1.0) / 2.0) for doc, score in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_by_vector(self, embedding: Any, k: int = 4, **kwargs: Any) -> list[Document]:
        """The ``k`` best documents for a query given as vectors: ``[r_q, d]`` (e.g. ``model.encode_query([q])[0]``)
        or one vector ``[d]`` (then ``r_q = 1``); takes ``budget``, ``cascade``, ``filter``."""
        return [doc for doc, _ in self.similarity_search_with_score_by_vector(embedding, k=k, **kwargs)]

    def similarity_search_with_score_by_vector(
        self, embedding: Any, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search_by_vector` with normalised MaxSim scores."""
        options = self._vector_options(kwargs)
        pages = self.engine.retrieve_by_vector(embedding, k=k, **options)
        return [(_document(p.id, p.metadata), p.score) for p in pages]

    def max_marginal_relevance_search_by_vector(
        self, embedding: Any, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[Document]:
        """MaxSim by vector picks ``fetch_k`` candidates; MMR over the first query vector and the candidates'
        (1,1) vectors picks ``k`` diverse ones."""
        options = self._vector_options(kwargs)
        pages = self.engine.retrieve_by_vector(embedding, k=max(fetch_k, k), **options)
        tensor, _ = self.engine.query_vectors(embedding, (1, 1))
        return self._mmr(pages, tensor[0].tolist(), k, lambda_mult)

    def max_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[Document]:
        """MaxSim picks ``fetch_k`` candidates; MMR over their (1,1) vectors picks ``k`` diverse ones."""
        prepared, options = self._prepare(query, kwargs)
        pages = self.engine.retrieve(prepared, k=max(fetch_k, k), **options)
        if not pages:
            return []
        return self._mmr(pages, self.engine.single_vectors([prepared], "query")[0], k, lambda_mult)

    def _mmr(self, pages: list[RetrievedPage], query_vector: list[float], k: int, lambda_mult: float) -> list[Document]:
        import numpy as np
        from langchain_core.vectorstores.utils import maximal_marginal_relevance

        if not pages:
            return []
        stored = self.engine.index.get([p.id for p in pages])
        candidates = np.array([s.embeddings[0].tolist() for s in stored], dtype=np.float32)
        chosen = maximal_marginal_relevance(
            np.array(query_vector, dtype=np.float32), candidates, lambda_mult=lambda_mult, k=k
        )
        return [_document(pages[i].id, pages[i].metadata) for i in chosen]

    def _prepare(self, query: Any, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The query as the engine takes it (text, or a ``ModelInput`` with the image) and the search options."""
        unknown = set(options) - set(SEARCH_KWARGS)
        if unknown:
            raise InvalidInputError(
                f"unknown search option(s) {sorted(unknown)}; allowed: k, {', '.join(SEARCH_KWARGS)}"
            )
        options = {"budget": self.budget, "cascade": self.cascade, "hybrid": self.hybrid, **options}
        return query_input(self.engine, query, options.pop("image", None)), options

    def _vector_options(self, options: dict[str, Any]) -> dict[str, Any]:
        unknown = set(options) - set(VECTOR_SEARCH_KWARGS)
        if options.get("hybrid") or (self.hybrid and "hybrid" not in options):
            raise InvalidInputError("a hybrid search needs the query text (BM25 cannot read vectors); search by text")
        unknown.discard("hybrid")
        if unknown:
            raise InvalidInputError(
                f"unknown option(s) {sorted(unknown)} for a search by vector; allowed: k, "
                f"{', '.join(VECTOR_SEARCH_KWARGS)}"
            )
        options = {key: value for key, value in options.items() if key != "hybrid"}
        return {"budget": self.budget, "cascade": self.cascade, **options}


def _document(doc_id: str, metadata: dict[str, Any]) -> Document:
    user = {key: value for key, value in metadata.items() if key != TEXT_KEY}
    return Document(page_content=str(metadata.get(TEXT_KEY) or ""), metadata=user, id=doc_id)
