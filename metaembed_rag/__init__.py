"""metaembed_rag: MetaEmbed multi-vector multimodal retrieval for RAG.

Heavy and optional modules load lazily, on first use of the name that needs them.

Example:
    >>> import metaembed_rag
    >>> metaembed_rag.Budget.parse("8,16")
    Budget(r_q=8, r_c=16)
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .budget import MATRYOSHKA_GROUPS, Budget
from .errors import MetaEmbedError

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "MetaEmbedModel": "metaembed_rag.modeling.model",
    "MetaEmbedConfig": "metaembed_rag.modeling.config",
    "maxsim": "metaembed_rag.scoring",
    "MultiVectorIndex": "metaembed_rag.index.memory",
    "MultiVectorStore": "metaembed_rag.index.base",
    "SearchHit": "metaembed_rag.index.base",
    "QdrantMultiVectorStore": "metaembed_rag.index.qdrant",
    "MetaEmbedSearcher": "metaembed_rag.searcher",
    "LazySearcher": "metaembed_rag.lazy_searcher",
    "RetrievedPage": "metaembed_rag.results",
    "DocumentCollection": "metaembed_rag.collection",
    "index_files": "metaembed_rag.pipeline",
    "load_pages": "metaembed_rag.loaders",
    "PageRecord": "metaembed_rag.loaders",
    "STARTER_MODEL": "metaembed_rag.starter",
}
_ADAPTERS = {"langchain": "langchain", "llama_index": "llama-index"}

if TYPE_CHECKING:  # pragma: no cover
    from .collection import DocumentCollection
    from .index.base import MultiVectorStore, SearchHit
    from .index.memory import MultiVectorIndex
    from .index.qdrant import QdrantMultiVectorStore
    from .lazy_searcher import LazySearcher
    from .loaders import PageRecord, load_pages
    from .modeling.config import MetaEmbedConfig
    from .modeling.model import MetaEmbedModel
    from .pipeline import index_files
    from .results import RetrievedPage
    from .scoring import maxsim
    from .searcher import MetaEmbedSearcher
    from .starter import STARTER_MODEL


def __getattr__(name: str) -> Any:
    if name in _ADAPTERS:  # `metaembed_rag.langchain` as an attribute: import the adapter (typed error if absent)
        return importlib.import_module(f"metaembed_rag.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'metaembed_rag' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "MATRYOSHKA_GROUPS",
    "STARTER_MODEL",
    "Budget",
    "DocumentCollection",
    "LazySearcher",
    "MetaEmbedConfig",
    "MetaEmbedError",
    "MetaEmbedModel",
    "MetaEmbedSearcher",
    "MultiVectorIndex",
    "MultiVectorStore",
    "PageRecord",
    "QdrantMultiVectorStore",
    "RetrievedPage",
    "SearchHit",
    "__version__",
    "index_files",
    "load_pages",
    "maxsim",
]
