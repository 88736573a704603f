"""``MetaEmbedEmbeddings``: the single-vector view of a MetaEmbed model for any LangChain vector store."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.embeddings import Embeddings

from ..errors import InvalidInputError
from ..lazy_searcher import LazySearcher


class MetaEmbedEmbeddings(Embeddings):
    """One vector per text: the (1,1) budget, the coarsest Matryoshka level.

    MetaEmbed's training makes the first query vector and the first candidate vector a usable pair on their own,
    so these embeddings work with single-vector stores (FAISS, Chroma, ``InMemoryVectorStore`` …) at the
    quality of the (1,1) budget. Use :class:`~metaembed_rag.langchain.MetaEmbedRetriever` for larger budgets.
    Queries use the query side (``embed_query``), documents the candidate side (``embed_documents``).

    Example:
        >>> from langchain_core.vectorstores import InMemoryVectorStore         # doctest: +SKIP
        >>> store = InMemoryVectorStore.from_texts(texts, MetaEmbedEmbeddings())  # doctest: +SKIP
    """

    def __init__(self, model: Any = None, *, engine: LazySearcher | None = None) -> None:
        self.engine = engine or LazySearcher(model=model)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if isinstance(texts, str):
            raise InvalidInputError("embed_documents takes a list of strings; use embed_query for one string")
        return self.engine.single_vectors(list(texts), "document")

    def embed_query(self, text: str) -> list[float]:
        return self.engine.single_vectors([text], "query")[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await asyncio.to_thread(self.embed_query, text)
