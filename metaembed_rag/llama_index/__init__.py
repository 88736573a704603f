"""LlamaIndex adapters (``pip install 'metaembed-rag[llama-index]'``, llama-index-core 0.14): thin glue.

- :class:`MetaEmbedRetriever` — ``BaseRetriever`` with ``budget``, ``k``, ``cascade``, ``filters``; text and image
  queries (``QueryBundle.image_path``); nodes carry text and page image for multimodal query engines.
- :class:`MetaEmbedVectorStore` — ``BasePydanticVectorStore`` for ``VectorStoreIndex`` (add/delete/get_nodes/query).
- :class:`MetaEmbedEmbedding` — ``MultiModalEmbedding`` with the (1,1) vector for text and images.
- :class:`VisualPDFReader` — PDF/image pages as documents with page image and text.
- :class:`MetaEmbedRerank` — node postprocessor rescoring by MaxSim at a budget.
- :func:`tool_retriever` — choose which tools to hand an agent by retrieving over their descriptions.

Example:
    >>> from llama_index.core.query_engine import RetrieverQueryEngine            # doctest: +SKIP
    >>> retriever = MetaEmbedRetriever.from_pdfs(["report.pdf"], budget=(8, 16))  # doctest: +SKIP
    >>> engine = RetrieverQueryEngine.from_args(retriever, llm=vision_llm, multimodal=True)  # doctest: +SKIP
"""

from __future__ import annotations

from ..errors import require

require("llama_index.core", "llama-index", "the LlamaIndex integration")

from .embedding import MetaEmbedEmbedding  # noqa: E402
from .reader import VisualPDFReader  # noqa: E402
from .rerank import MetaEmbedRerank  # noqa: E402
from .retriever import MetaEmbedRetriever  # noqa: E402
from .tools import tool_retriever  # noqa: E402
from .vector_store import MetaEmbedVectorStore  # noqa: E402

__all__ = [
    "MetaEmbedEmbedding",
    "MetaEmbedRerank",
    "MetaEmbedRetriever",
    "MetaEmbedVectorStore",
    "VisualPDFReader",
    "tool_retriever",
]
