"""The store interface every multi-vector index implements (in-process, Qdrant …), and its result types.

Retrievers and adapters depend on :class:`MultiVectorStore` only, so any store works with any of them.

Example:
    >>> matches_filter({"source": "/d/a.pdf", "page": 3}, {"source": {"$in": ["a.pdf", "b.pdf"]}, "page": 3})
    True

Filters (:func:`matches_filter`, :func:`validate_filter`) are defined in :mod:`metaembed_rag.filters`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import torch

from ..budget import BudgetLike
from ..filters import MetadataFilter, matches_filter, validate_filter

__all__ = [
    "Cascade",
    "MetadataFilter",
    "MultiVectorStore",
    "SearchHit",
    "StoredDocument",
    "matches_filter",
    "validate_filter",
]


Cascade = Union[tuple[BudgetLike, int], None]
"""``(coarse_budget, n_candidates)``: score all at the coarse budget, rescore the best ``n_candidates``."""


@dataclass(frozen=True)
class SearchHit:
    """One ranked result."""

    id: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredDocument:
    """A stored document: its id, vectors ``[R_c, d]`` (float32, CPU) and metadata."""

    id: str
    embeddings: torch.Tensor
    metadata: dict[str, Any]


class MultiVectorStore(ABC):
    """A collection of documents, each with a fixed number of vectors, searchable by budgeted MaxSim."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Dimension of the stored vectors."""

    @property
    @abstractmethod
    def stored_vectors(self) -> int:
        """Candidate vectors stored per document (the largest usable ``r_c``)."""

    @abstractmethod
    def add(
        self,
        ids: Sequence[str],
        embeddings: torch.Tensor,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Insert or replace (upsert by id) documents; ``embeddings`` is ``[n, >= stored_vectors, dim]``."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None:
        """Remove documents; unknown ids raise :class:`~metaembed_rag.errors.DocumentNotFoundError`."""

    @abstractmethod
    def get(self, ids: Sequence[str]) -> list[StoredDocument]:
        """Fetch stored documents by id."""

    @abstractmethod
    def __len__(self) -> int: ...

    def find_ids(self, filter: MetadataFilter = None) -> list[str]:
        """Ids of the stored documents whose metadata passes ``filter`` (all of them for ``None``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its documents by metadata")

    @abstractmethod
    def search(
        self,
        query_embeddings: torch.Tensor,
        *,
        budget: BudgetLike,
        k: int = 10,
        filter: MetadataFilter = None,
        cascade: Cascade = None,
        normalize: bool = False,
    ) -> list[list[SearchHit]]:
        """Per query (``[n_q, R_q, d]``), the top ``k`` documents by MaxSim at ``budget``."""
