"""MetaEmbed documents in Qdrant: a server or cluster, qdrant-client's local mode, or Qdrant Edge in-process.

One concept per module, imports in one direction (``store`` → ``filters``, ``lexical`` → ``schema``; ``server``
and ``edge`` → ``schema``; the store imports a backend only in the constructor that makes it):

- :mod:`.schema`: the collection layout, point ids, and the neutral types a backend implements;
- :mod:`.filters`: metadata filters as Qdrant conditions; :mod:`.lexical`: BM25 as sparse vectors;
- :mod:`.store`: :class:`QdrantMultiVectorStore`;
- :mod:`.server`: the backend over ``qdrant-client``; :mod:`.edge`: the backend over Qdrant Edge.

Example:
    >>> from metaembed_rag.index.qdrant import QdrantMultiVectorStore, point_id
    >>> point_id("a.pdf#3") == point_id("a.pdf#3")
    True
"""

from __future__ import annotations

from .schema import (
    DEFAULT_STORED_BUDGETS,
    DENSE_VECTOR,
    FORMAT_VERSION,
    ID_FIELD,
    ID_NAMESPACE,
    LEXICAL_VECTOR,
    SCHEMA_KEY,
    CollectionSchema,
    QdrantBackend,
    multivector_name,
    point_id,
)
from .store import QdrantMultiVectorStore

__all__ = [
    "DEFAULT_STORED_BUDGETS",
    "DENSE_VECTOR",
    "FORMAT_VERSION",
    "ID_FIELD",
    "ID_NAMESPACE",
    "LEXICAL_VECTOR",
    "SCHEMA_KEY",
    "CollectionSchema",
    "QdrantBackend",
    "QdrantMultiVectorStore",
    "multivector_name",
    "point_id",
]
