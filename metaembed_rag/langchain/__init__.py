"""LangChain adapters (``pip install 'metaembed-rag[langchain]'``, langchain-core 1.x): thin glue over the core.

- :class:`MetaEmbedRetriever` — a ``BaseRetriever`` with a per-call ``budget``, ``k``, ``cascade`` and ``filter``.
- :class:`MetaEmbedVectorStore` — a ``VectorStore`` (add/delete/get_by_ids/similarity_search…) over any store.
- :class:`MetaEmbedEmbeddings` — the single (1,1) vector, for any LangChain vector store.
- :class:`VisualPDFLoader` — PDF/image pages as ``Document`` s (text + page image metadata).
- :class:`MetaEmbedReranker` — rescore documents from any retriever at a chosen budget.
- :func:`format_documents` — retrieved documents as prompt text (numbered passages with file and page).
- :func:`image_content_blocks` — page images as content blocks for a multimodal chat model.

Example:
    >>> from metaembed_rag.langchain import MetaEmbedRetriever                 # doctest: +SKIP
    >>> retriever = MetaEmbedRetriever.from_pdfs(["report.pdf"], budget=(8, 16))  # doctest: +SKIP
    >>> retriever.invoke("revenue in 2024?", budget=(16, 64), k=3)            # doctest: +SKIP
"""

from __future__ import annotations

from ..errors import require

require("langchain_core", "langchain", "the LangChain integration")

from .content import format_documents, image_content_blocks, multimodal_message  # noqa: E402
from .embeddings import MetaEmbedEmbeddings  # noqa: E402
from .loader import VisualPDFLoader  # noqa: E402
from .reranker import MetaEmbedReranker  # noqa: E402
from .retriever import MetaEmbedRetriever  # noqa: E402
from .vectorstore import MetaEmbedVectorStore  # noqa: E402

__all__ = [
    "MetaEmbedEmbeddings",
    "MetaEmbedReranker",
    "MetaEmbedRetriever",
    "MetaEmbedVectorStore",
    "VisualPDFLoader",
    "format_documents",
    "image_content_blocks",
    "multimodal_message",
]
