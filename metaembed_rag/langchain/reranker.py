"""``MetaEmbedReranker``: rescore documents from any LangChain retriever by MaxSim at a chosen budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field

from ..errors import InvalidInputError
from ..inputs import ModelInput
from ..lazy_searcher import LazySearcher


class MetaEmbedReranker(BaseDocumentCompressor):
    """Encode the query and each document's text, score by normalised MaxSim at ``budget``, keep ``top_n``.

    Use it in a ``ContextualCompressionRetriever`` (from ``langchain``) or call ``compress_documents`` directly.
    Each kept document gets ``metadata["rerank_score"]``.

    Example:
        >>> reranker = MetaEmbedReranker(budget=(16, 64), top_n=3)                  # doctest: +SKIP
        >>> reranker.compress_documents(bm25.invoke(question), question)            # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    budget: Any = (16, 64)
    top_n: int | None = 5
    model: Any = None
    engine: LazySearcher | None = Field(default=None, repr=False, exclude=True)

    def __init__(self, **data: Any) -> None:
        # Validated here, not in a pydantic validator, so bad input raises the package's typed errors.
        if data.get("engine") is None:
            data["engine"] = LazySearcher(model=data.get("model"))
        top_n = data.get("top_n", 5)
        if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
            raise InvalidInputError(f"top_n must be a positive integer or None, got {top_n!r}")
        super().__init__(**data)

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        documents = list(documents)
        candidates = [ModelInput(text=d.page_content or " ") for d in documents]
        scores = self.engine.rescore(query, candidates, budget=self.budget)
        ranked = sorted(zip(scores, range(len(documents)), strict=True), key=lambda pair: -pair[0])
        if self.top_n is not None:
            ranked = ranked[: self.top_n]
        out = []
        for score, position in ranked:
            doc = documents[position]
            out.append(
                Document(page_content=doc.page_content, metadata={**doc.metadata, "rerank_score": score}, id=doc.id)
            )
        return out
