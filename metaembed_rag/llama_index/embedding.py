"""``MetaEmbedEmbedding``: text and image embeddings (the (1,1) vector) for LlamaIndex."""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.embeddings import MultiModalEmbedding
from pydantic import PrivateAttr

from ..lazy_searcher import LazySearcher


class MetaEmbedEmbedding(MultiModalEmbedding):
    """One vector per text or image: the (1,1) budget, the coarsest Matryoshka level, trained to stand alone.

    Works with any LlamaIndex vector index (``VectorStoreIndex(nodes, embed_model=MetaEmbedEmbedding())``) and
    ``ObjectIndex`` for tool retrieval. Queries use the query side, texts and images the candidate side. Image
    embeddings need a vision model. For larger budgets use :class:`~metaembed_rag.llama_index.MetaEmbedRetriever`.

    Example:
        >>> embed = MetaEmbedEmbedding()                        # the starter model, loaded on first use
        >>> len(embed.get_query_embedding("hello"))
        384
    """

    model_name: str = "metaembed"
    _engine: LazySearcher = PrivateAttr()

    def __init__(self, model: Any = None, *, engine: LazySearcher | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._engine = engine or LazySearcher(model=model)

    @classmethod
    def class_name(cls) -> str:
        return "MetaEmbedEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._engine.single_vectors([query], "query")[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._engine.single_vectors([text], "document")[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._engine.single_vectors(list(texts), "document")

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    def _get_image_embedding(self, img_file_path: Any) -> list[float]:
        return self._get_image_embeddings([img_file_path])[0]

    def _get_image_embeddings(self, img_file_paths: list[Any]) -> list[list[float]]:
        items = [self._engine.image_query(path) for path in img_file_paths]
        return self._engine.single_vectors(items, "document")

    async def _aget_image_embedding(self, img_file_path: Any) -> list[float]:
        return await asyncio.to_thread(self._get_image_embedding, img_file_path)
