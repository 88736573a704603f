"""Multi-vector stores: the store interface, and the default in-process :class:`MultiVectorIndex`.

Example:
    >>> from metaembed_rag.index import MultiVectorIndex
    >>> MultiVectorIndex(dim=384).stored_vectors
    64
"""

from __future__ import annotations

from .base import (
    Cascade,
    MetadataFilter,
    MultiVectorStore,
    SearchHit,
    StoredDocument,
    check_model_identity,
    matches_filter,
    validate_filter,
)
from .memory import MultiVectorIndex
from .storage import StorageFormat


def __getattr__(name: str):
    if name == "QdrantMultiVectorStore":  # needs the `qdrant` extra: imported on first use
        from .qdrant import QdrantMultiVectorStore

        return QdrantMultiVectorStore
    raise AttributeError(f"module 'metaembed_rag.index' has no attribute {name!r}")


__all__ = [
    "QdrantMultiVectorStore",
    "Cascade",
    "MetadataFilter",
    "MultiVectorIndex",
    "MultiVectorStore",
    "SearchHit",
    "StorageFormat",
    "StoredDocument",
    "check_model_identity",
    "matches_filter",
    "validate_filter",
]
