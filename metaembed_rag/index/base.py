"""The store interface every multi-vector index implements (in-process, Qdrant …), and its result types.

Retrievers and adapters depend on :class:`MultiVectorStore` only, so any store works with any of them.

Example:
    >>> matches_filter({"source": "/d/a.pdf", "page": 3}, {"source": {"$in": ["a.pdf", "b.pdf"]}, "page": 3})
    True

Filters (:func:`matches_filter`, :func:`validate_filter`) are defined in :mod:`metaembed_rag.filters`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import torch

from ..budget import BudgetLike
from ..errors import DuplicateIdError, InvalidInputError
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


def check_ids(ids: Sequence[str], *, unique: bool) -> list[str]:
    r"""Validate document ids: non-empty strings that are valid Unicode (no lone surrogates), unique if asked.

    Example:
        >>> check_ids(["a", "b"], unique=True)
        ['a', 'b']
        >>> check_ids(["bad\udcff"], unique=False)
        Traceback (most recent call last):
        ...
        metaembed_rag.errors.InvalidInputError: document id 'bad\udcff' is not valid Unicode ...
    """
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise InvalidInputError(f"ids must be a list of strings, got {type(ids).__name__}")
    out = list(ids)
    for doc_id in out:
        if not isinstance(doc_id, str):
            raise InvalidInputError(
                f"document ids must be strings, got {type(doc_id).__name__} {doc_id!r}; convert with str()"
            )
        if not doc_id:
            raise InvalidInputError("document ids must be non-empty strings")
        _check_unicode(doc_id, f"document id {doc_id!r}")
    if unique and len(set(out)) != len(out):
        seen: set[str] = set()
        dupes = sorted({i for i in out if i in seen or seen.add(i)})  # type: ignore[func-returns-value]
        raise DuplicateIdError(f"duplicate document id(s) in one call: {dupes[:10]}")
    return out


def _check_unicode(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{what} is not valid Unicode (a lone surrogate at position {exc.start}, e.g. from a file name "
            "that is not UTF-8); escape it first, e.g. with os.fsencode(name).decode('utf-8', 'backslashreplace')"
        ) from None


def validate_metadata(metadata: Any, doc_id: str) -> dict[str, Any]:
    """A JSON-safe copy of one document's metadata (finite numbers, valid Unicode), or a typed error.

    Example:
        >>> validate_metadata({"page": 1}, "a")
        {'page': 1}
    """
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata of {doc_id!r} must be a dict, got {type(metadata).__name__}")
    try:
        encoded = json.dumps(dict(metadata), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"metadata of {doc_id!r} is not JSON-serialisable: {exc}") from None
    _check_unicode(encoded, f"metadata of {doc_id!r}")
    return json.loads(encoded)


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
