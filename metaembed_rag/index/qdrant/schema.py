"""The Qdrant layout of metaembed_rag, and the neutral types the store and its backends exchange.

Per document, one Qdrant point (id = UUID5 of the document id) holds:

- ``first``: the candidate's first vector as a dense vector with an HNSW index (the ``r_c = 1`` stage);
- ``first_<r_c>``: for each stored budget ``r_c > 1``, a multivector of the first ``r_c`` candidate vectors,
  compared by MaxSim, without HNSW (it is only used to rescore, or scanned exactly);
- ``bm25`` (when the collection has a lexical side): a sparse vector of the page's text, BM25 term weights that
  Qdrant multiplies by its IDF (``Modifier.IDF``), on the page's own point only (not on windows ``k >= 1``);
- the payload: the document metadata plus ``_metaembed_id`` (the original string id).

:class:`CollectionSchema` is saved with a collection and checked on every reopen. :class:`Condition`,
:class:`Stage` and :class:`QueryPlan` describe filters and queries; each backend (:mod:`.server`,
:mod:`.edge`) turns them into its own client's types and implements :class:`QdrantBackend`. This module
imports neither client.

Example:
    >>> multivector_name(1), multivector_name(16)
    ('first', 'first_16')
    >>> CollectionSchema(8, (1, 16, 64)).multivector_budgets
    (16, 64)
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...errors import IndexFormatError

FORMAT_VERSION = 1
"""Version of the collection layout written by this module; other versions are refused."""

SCHEMA_KEY = "metaembed_rag"
"""Key of the collection metadata (server) or the name of the JSON file (Edge) describing the layout."""

ID_NAMESPACE = uuid.UUID("6f1d5c2e-3b9a-5e47-9c1d-7a2b4e8f0c31")
"""Fixed namespace of the UUID5 point ids: the same document id always maps to the same point."""

ID_FIELD = "_metaembed_id"
"""Payload key holding the original (string) document id."""

DENSE_VECTOR = "first"
"""Name of the dense vector (the first candidate vector, HNSW-indexed)."""

LEXICAL_VECTOR = "bm25"
"""Name of the sparse BM25 vector (see :mod:`.lexical`)."""

DEFAULT_STORED_BUDGETS: tuple[int, ...] = (1, 64)
"""Candidate budgets ``r_c`` stored by default: the ``(1, 1)`` stage and the full 64 vectors."""


def multivector_name(r_c: int) -> str:
    """Name of the multivector holding the first ``r_c`` candidate vectors (``r_c = 1`` is the dense vector)."""
    return DENSE_VECTOR if r_c == 1 else f"first_{r_c}"


def point_id(doc_id: str) -> str:
    """The Qdrant point id of a document id: a UUID5 over a fixed namespace, stable across runs and machines.

    Example:
        >>> point_id("a.pdf#3") == point_id("a.pdf#3") != point_id("a.pdf#4")
        True
    """
    return str(uuid.uuid5(ID_NAMESPACE, doc_id))


@dataclass(frozen=True)
class LexicalSchema:
    """The BM25 parameters of a collection's sparse vector.

    ``avg_tokens`` is the average page length BM25 normalises by. Qdrant cannot re-weigh stored vectors, so
    it is fixed once: by the caller at creation, or else by the first added batch that holds text.
    ``windowed`` records that a page split into windows was ever stored (a hybrid search fused inside Qdrant
    ranks points, which equals ranking pages only while every page is one point).
    """

    k1: float = 1.2
    b: float = 0.75
    avg_tokens: float | None = None
    windowed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"k1": self.k1, "b": self.b, "avg_tokens": self.avg_tokens, "windowed": self.windowed}

    @classmethod
    def from_json(cls, data: Any, where: str) -> LexicalSchema:
        try:
            avg = data.get("avg_tokens")
            out = cls(float(data["k1"]), float(data["b"]), None if avg is None else float(avg))
            out = dataclasses.replace(out, windowed=bool(data.get("windowed", False)))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"{where}: malformed lexical description {data!r}") from exc
        if out.k1 <= 0 or not 0 <= out.b <= 1 or (out.avg_tokens is not None and out.avg_tokens <= 0):
            raise IndexFormatError(f"{where}: malformed lexical description {data!r}")
        return out


@dataclass(frozen=True)
class CollectionSchema:
    """What a collection stores; saved with it and checked on every reopen (``lexical`` is ``None`` for a
    collection without the sparse BM25 vector, such as one made before it existed)."""

    dim: int
    stored_budgets: tuple[int, ...]
    model_fingerprint: str | None = None
    lexical: LexicalSchema | None = None
    format_version: int = FORMAT_VERSION

    @property
    def multivector_budgets(self) -> tuple[int, ...]:
        return tuple(r for r in self.stored_budgets if r > 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "dim": self.dim,
            "stored_budgets": list(self.stored_budgets),
            "model_fingerprint": self.model_fingerprint,
            "lexical": None if self.lexical is None else self.lexical.to_json(),
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> CollectionSchema:
        if not isinstance(data, Mapping):
            raise IndexFormatError(f"{where}: the metaembed_rag description is not an object: {data!r}")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexFormatError(
                f"{where}: written in metaembed_rag Qdrant format version {version!r}; "
                f"this version reads only {FORMAT_VERSION}"
            )
        try:
            dim = int(data["dim"])
            budgets = tuple(int(r) for r in data["stored_budgets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"{where}: malformed metaembed_rag description {dict(data)!r}") from exc
        if dim < 1 or not budgets or budgets[0] != 1 or list(budgets) != sorted(set(budgets)):
            raise IndexFormatError(f"{where}: malformed metaembed_rag description {dict(data)!r}")
        fingerprint = data.get("model_fingerprint")
        lexical = data.get("lexical")
        lexical = None if lexical is None else LexicalSchema.from_json(lexical, where)
        return cls(dim=dim, stored_budgets=budgets, model_fingerprint=fingerprint, lexical=lexical)


@dataclass(frozen=True)
class Condition:
    """One filter condition: ``kind`` is ``match`` (one value), ``any`` (values), ``range_eq`` (a float),
    ``null`` (missing or null), ``or`` (nested conditions) or ``has_id`` (point ids)."""

    kind: str
    key: str = ""
    values: tuple[Any, ...] = ()
    nested: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Sparse:
    """A sparse vector: ``values[i]`` at dimension ``indices[i]`` (indices unique, below 2**32)."""

    indices: tuple[int, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class Stage:
    """Score with ``vector`` against the named vector ``using``; keep the best ``limit``."""

    using: str
    vector: list[float] | list[list[float]] | Sparse
    limit: int
    exact: bool = False
    hnsw_ef: int | None = None


@dataclass(frozen=True)
class QueryPlan:
    """A final stage, optionally fed by a prefetch stage, under a filter (a conjunction of conditions)."""

    final: Stage
    prefetch: Stage | None = None
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class FusionPlan:
    """Reciprocal-rank fusion of the results of ``plans`` (each run as a prefetch) into the best ``limit``:
    a point scores ``sum_i weights[i] / (k + rank_i)`` over the plans that returned it, ranks from 0 (Qdrant's
    convention; :func:`metaembed_rag.fusion.fuse` ranks from 1, i.e. its ``k`` is this ``k - 1``)."""

    plans: tuple[QueryPlan, ...]
    limit: int
    k: int
    weights: tuple[float, ...]
    conditions: tuple[Condition, ...] = ()


@dataclass
class PointRecord:
    """A point as the backends return it; ``vectors`` maps names to nested lists (only when asked for)."""

    point_id: str
    payload: dict[str, Any]
    score: float = 0.0
    vectors: dict[str, Any] = field(default_factory=dict)


class QdrantBackend(Protocol):
    """The few operations the store needs; implemented over ``qdrant-client`` and over Qdrant Edge."""

    location: str
    collection_name: str
    matches_booleans: bool  # whether a boolean payload value can be matched inside Qdrant

    def read_schema(self) -> CollectionSchema | None: ...

    def create(self, schema: CollectionSchema) -> None: ...

    def write_schema(self, schema: CollectionSchema) -> None: ...

    def check_layout(self, schema: CollectionSchema) -> None: ...

    def upsert(self, points: Sequence[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
        """Points as ``(point id, {vector name: list, nested lists or Sparse}, payload)``."""

    def delete(self, point_ids: Sequence[str]) -> None: ...

    def retrieve(self, point_ids: Sequence[str], vector_names: Sequence[str]) -> list[PointRecord]: ...

    def count(self) -> int: ...

    def scroll(self, conditions: Sequence[Condition], offset: Any, limit: int) -> tuple[list[PointRecord], Any]: ...

    def query(self, plans: Sequence[QueryPlan | FusionPlan]) -> list[list[PointRecord]]: ...

    def is_transient(self, exc: BaseException) -> bool: ...

    def optimize(self) -> None: ...

    def close(self) -> None: ...
