"""A :class:`MultiVectorStore` kept in Qdrant: a server or cluster (``qdrant-client``) or embedded (Qdrant Edge).

Per document, one Qdrant point (id = UUID5 of the document id) holds:

- ``first``: the candidate's first vector as a dense vector with an HNSW index (the ``r_c = 1`` stage);
- ``first_<r_c>``: for each stored budget ``r_c > 1``, a multivector of the first ``r_c`` candidate vectors,
  compared by MaxSim, without HNSW (it is only used to rescore, or scanned exactly);
- the payload: the document metadata plus ``_metaembed_id`` (the original string id).

A search at ``(r_q, r_c)`` scores the first ``r_q`` query vectors against ``first_<r_c>``; at ``r_c = 1`` it
queries ``first`` with the sum of the query vectors, which is the same MaxSim score
(``Σ_i <q_i, c_1> = <Σ_i q_i, c_1>``). A cascade ``((r_q', r_c'), n)`` is a Qdrant prefetch of ``n``
candidates at the coarse budget, rescored at the requested one. Dict filters run inside Qdrant; predicates and
anything Qdrant cannot express exactly are evaluated here on the payloads (see :func:`_translate_filter`).

Example:
    >>> from qdrant_client import QdrantClient  # doctest: +SKIP
    >>> store = QdrantMultiVectorStore(client=QdrantClient(url="http://qdrant:6333"), collection_name="docs",
    ...                                dim=384)  # doctest: +SKIP
    >>> store = QdrantMultiVectorStore.embedded("./qdrant", collection_name="docs", dim=384)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from ..budget import Budget, BudgetLike
from ..errors import (
    BudgetError,
    DocumentNotFoundError,
    IncompatibleModelError,
    IndexFormatError,
    InvalidInputError,
    StoreConnectionError,
)
from ..filters import FILE_NAME_KEY, SOURCE_KEY, exact_source
from ..validation import check_k
from .base import (
    Cascade,
    MetadataFilter,
    MultiVectorStore,
    SearchHit,
    StoredDocument,
    check_ids,
    matches_filter,
    validate_filter,
    validate_metadata,
)

logger = logging.getLogger(__name__)

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


# ----------------------------------------------------------------------------------------------------------
# The neutral description of collections, filters and queries that each backend turns into its own types.


@dataclass(frozen=True)
class CollectionSchema:
    """What a collection stores; saved with it and checked on every reopen."""

    dim: int
    stored_budgets: tuple[int, ...]
    model_fingerprint: str | None = None
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
        return cls(dim=dim, stored_budgets=budgets, model_fingerprint=fingerprint)


@dataclass(frozen=True)
class Condition:
    """One filter condition: ``kind`` is ``match`` (one value), ``any`` (values), ``range_eq`` (a float),
    ``null`` (missing or null), ``or`` (nested conditions) or ``has_id`` (point ids)."""

    kind: str
    key: str = ""
    values: tuple[Any, ...] = ()
    nested: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Stage:
    """Score with ``vector`` against the named vector ``using``; keep the best ``limit``."""

    using: str
    vector: list[float] | list[list[float]]
    limit: int
    exact: bool = False
    hnsw_ef: int | None = None


@dataclass(frozen=True)
class QueryPlan:
    """A final stage, optionally fed by a prefetch stage, under a filter (a conjunction of conditions)."""

    final: Stage
    prefetch: Stage | None = None
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

    def read_schema(self) -> CollectionSchema | None: ...

    def create(self, schema: CollectionSchema) -> None: ...

    def check_layout(self, schema: CollectionSchema) -> None: ...

    def upsert(self, points: Sequence[tuple[str, dict[str, Any], dict[str, Any]]]) -> None: ...

    def delete(self, point_ids: Sequence[str]) -> None: ...

    def retrieve(self, point_ids: Sequence[str], vector_names: Sequence[str]) -> list[PointRecord]: ...

    def count(self) -> int: ...

    def scroll(self, conditions: Sequence[Condition], offset: Any, limit: int) -> tuple[list[PointRecord], Any]: ...

    def query(self, plans: Sequence[QueryPlan]) -> list[list[PointRecord]]: ...

    def is_transient(self, exc: BaseException) -> bool: ...

    def optimize(self) -> None: ...

    def close(self) -> None: ...


# ----------------------------------------------------------------------------------------------------------
# Filters


def _is_qdrant_key(key: Any) -> bool:
    # Qdrant reads "." and "[" in a key as a path into nested payload; such keys are matched here instead.
    return isinstance(key, str) and key != "" and not any(ch in key for ch in '.[]"')


def _value_condition(key: str, value: Any) -> Condition | None:
    """The Qdrant condition for ``metadata[key] == value``, or ``None`` when Qdrant cannot express it."""
    if value is None:
        return Condition("null", key)
    if isinstance(value, (bool, str)) or (isinstance(value, int) and not isinstance(value, bool)):
        return Condition("match", key, (value,))
    if isinstance(value, float) and math.isfinite(value):
        return Condition("range_eq", key, (value,))
    return None


def _translate_filter(flt: MetadataFilter) -> tuple[tuple[Condition, ...], bool]:
    """Split a filter into Qdrant conditions and whether a residual must be checked here on the payloads.

    Equality on strings, integers and booleans, ``$in`` lists of them, finite floats (as a closed range),
    ``None`` (missing or null) and ``$and`` of such become Qdrant conditions. The rest of the operator set of
    :mod:`metaembed_rag.filters` (``$ne $nin $gt $gte $lt $lte $or $not``), a callable, list or dict values,
    ``source`` values that are not absolute paths (matched by the path rules), ``file_name`` and keys with
    ``.``/``[`` (which Qdrant reads as nested paths) are evaluated exactly on the payloads instead.
    """
    if flt is None:
        return (), False
    if callable(flt):
        return (), True
    conditions: list[Condition] = []
    residual = False
    for key, wanted in flt.items():
        if key == "$and":
            for child in wanted:
                child_conditions, child_residual = _translate_filter(child)
                conditions.extend(child_conditions)
                residual = residual or child_residual
            continue
        if key.startswith("$") or not _is_qdrant_key(key) or key == FILE_NAME_KEY:
            residual = True
            continue
        ops = wanted if isinstance(wanted, Mapping) else {"$eq": wanted}
        for op, operand in ops.items():
            condition = _op_condition(key, op, operand)
            if condition is None:
                residual = True
            else:
                conditions.append(condition)
    return tuple(conditions), residual


def _op_condition(key: str, op: str, operand: Any) -> Condition | None:
    """The Qdrant condition for one ``key: {op: operand}``, or ``None`` when it is checked on the payloads."""
    if op == "$eq":
        if key == SOURCE_KEY and not exact_source(operand):
            return None
        return _value_condition(key, operand)
    if op != "$in":
        return None
    values = list(operand)
    if not values:
        return Condition("any", key, ())  # matches nothing
    if key == SOURCE_KEY and not all(exact_source(v) for v in values):
        return None
    if all(isinstance(v, str) for v in values) or all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return Condition("any", key, tuple(values))
    nested = [_value_condition(key, v) for v in values]
    if any(c is None for c in nested):
        return None
    return Condition("or", key, nested=tuple(nested))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------------
# The store


def _normalise_budgets(stored_budgets: Iterable[Any] | None) -> tuple[int, ...] | None:
    if stored_budgets is None:
        return None
    if isinstance(stored_budgets, (str, bytes)) or not isinstance(stored_budgets, Iterable):
        raise BudgetError(f"stored_budgets must be a list of r_c values such as [1, 16, 64], got {stored_budgets!r}")
    values: set[int] = {1}
    for item in stored_budgets:
        r_c = item.r_c if isinstance(item, Budget) else item[1] if isinstance(item, (tuple, list)) else item
        if isinstance(r_c, bool) or not isinstance(r_c, int) or r_c < 1:
            raise BudgetError(f"stored budget {item!r}: r_c must be a positive integer (or an (r_q, r_c) pair)")
        values.add(r_c)
    return tuple(sorted(values))


class QdrantMultiVectorStore(MultiVectorStore):
    """MetaEmbed documents in a Qdrant collection, searchable at any stored budget, with cascades and filters.

    Args:
        client: a ``qdrant_client.QdrantClient`` (server, cluster, or local mode). If omitted, one is made
            from ``url``/``api_key``/``prefer_grpc``/``location``/``path``/``timeout``.
        collection_name: the collection (created on first use).
        dim: vector dimension; required to create the collection, checked when reopening it.
        stored_budgets: candidate budgets ``r_c`` to store (ints or ``(r_q, r_c)`` pairs; ``1`` is always
            stored). Defaults to ``(1, 64)`` on creation and to what the collection holds when reopening.
        model_fingerprint: the encoder's ``identity["fingerprint"]``; saved on creation, checked on reopen.
        batch_size: points per upsert request.
        retries, backoff: a failed request is retried ``retries`` times, waiting ``backoff * 2**attempt`` s.
        exact: search the dense ``r_c = 1`` stage exhaustively instead of through HNSW.
        hnsw_ef: HNSW search breadth of the dense stage.
        shard_number, replication_factor, on_disk: passed to Qdrant when the collection is created.

    Example:
        >>> from qdrant_client import QdrantClient
        >>> store = QdrantMultiVectorStore(client=QdrantClient(location=":memory:"), collection_name="d", dim=4)
        >>> store.stored_budgets
        (1, 64)
    """

    def __init__(
        self,
        client: Any = None,
        collection_name: str = "docs",
        dim: int | None = None,
        *,
        stored_budgets: Iterable[Any] | None = None,
        model_fingerprint: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        prefer_grpc: bool = False,
        location: str | None = None,
        path: str | None = None,
        timeout: float | None = None,
        batch_size: int = 64,
        retries: int = 3,
        backoff: float = 0.2,
        exact: bool = False,
        hnsw_ef: int | None = None,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        on_disk: bool | None = None,
        _backend: QdrantBackend | None = None,
    ) -> None:
        if not isinstance(collection_name, str) or not collection_name:
            raise InvalidInputError(f"collection_name must be a non-empty string, got {collection_name!r}")
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise InvalidInputError(f"dim must be a positive integer, got {dim!r}")
        for name, value in (("batch_size", batch_size), ("retries", retries)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "batch_size" else 0):
                raise InvalidInputError(
                    f"{name} must be a {'positive' if name == 'batch_size' else 'non-negative'} integer, got {value!r}"
                )
        self.collection_name = collection_name
        self.batch_size = batch_size
        self.retries = retries
        self.backoff = float(backoff)
        self.exact = bool(exact)
        self.hnsw_ef = hnsw_ef
        if _backend is None:
            from .qdrant_server import ClientBackend

            _backend = ClientBackend.connect(
                client,
                collection_name,
                url=url,
                api_key=api_key,
                prefer_grpc=prefer_grpc,
                location=location,
                path=path,
                timeout=timeout,
                shard_number=shard_number,
                replication_factor=replication_factor,
                on_disk=on_disk,
            )
        self._backend = _backend
        self._schema = self._open(dim, _normalise_budgets(stored_budgets), model_fingerprint)

    @classmethod
    def embedded(
        cls,
        path: str,
        collection_name: str = "docs",
        dim: int | None = None,
        *,
        search_threads: int | None = None,
        on_disk: bool | None = None,
        **kwargs: Any,
    ) -> QdrantMultiVectorStore:
        """The same store on Qdrant Edge, in-process and persistent in ``path/<collection_name>/``.

        ``search_threads`` bounds Qdrant Edge's search thread pool (default: one per CPU). Other keyword
        arguments are those of the constructor (``stored_budgets``, ``model_fingerprint``, ``batch_size`` …).

        Example:
            >>> store = QdrantMultiVectorStore.embedded("/tmp/qdrant-edge", dim=384)  # doctest: +SKIP
        """
        from .qdrant_edge import EdgeBackend

        backend = EdgeBackend.open(path, collection_name, search_threads=search_threads, on_disk=on_disk)
        try:
            return cls(
                collection_name=collection_name, dim=dim, _backend=backend, retries=kwargs.pop("retries", 0), **kwargs
            )
        except BaseException:
            backend.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------------------

    def _open(
        self, dim: int | None, stored_budgets: tuple[int, ...] | None, fingerprint: str | None
    ) -> CollectionSchema:
        existing = self._call(self._backend.read_schema, "reading the collection")
        where = f"collection {self.collection_name!r} at {self._backend.location}"
        if existing is None:
            if dim is None:
                raise InvalidInputError(f"{where} does not exist; pass dim= to create it")
            schema = CollectionSchema(dim, stored_budgets or DEFAULT_STORED_BUDGETS, fingerprint)
            self._call(lambda: self._backend.create(schema), "creating the collection")
            logger.info("created %s: dim %d, stored budgets %s", where, dim, schema.stored_budgets)
            return schema
        if dim is not None and dim != existing.dim:
            raise IncompatibleModelError(f"{where} stores {existing.dim}-dimensional vectors, not {dim}")
        if stored_budgets is not None and stored_budgets != existing.stored_budgets:
            raise IncompatibleModelError(
                f"{where} stores candidate budgets r_c={list(existing.stored_budgets)}, not {list(stored_budgets)}; "
                "open it without stored_budgets= or use another collection"
            )
        if fingerprint is not None and existing.model_fingerprint not in (None, fingerprint):
            raise IncompatibleModelError(
                f"{where} was built with model {existing.model_fingerprint}, not {fingerprint}"
            )
        self._call(lambda: self._backend.check_layout(existing), "checking the collection")
        return existing

    def close(self) -> None:
        """Flush and release the collection (for Edge, the on-disk shard lock)."""
        self._backend.close()

    def __enter__(self) -> QdrantMultiVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def optimize(self) -> None:
        """Build indexes now (Qdrant Edge runs its optimizers here; a server does it in the background)."""
        self._call(self._backend.optimize, "optimizing")

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        """Run one request, retrying transient failures with exponential backoff."""
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except Exception as exc:
                if not self._backend.is_transient(exc):
                    raise
                if attempt == self.retries:
                    raise StoreConnectionError(
                        f"Qdrant at {self._backend.location} failed while {what} after {attempt + 1} attempt(s): "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                delay = self.backoff * 2**attempt
                logger.warning("Qdrant request failed while %s (%s); retrying in %.2f s", what, exc, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    # -- properties ------------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._schema.dim

    @property
    def stored_vectors(self) -> int:
        return self._schema.stored_budgets[-1]

    @property
    def stored_budgets(self) -> tuple[int, ...]:
        """The candidate budgets ``r_c`` this collection can be searched at."""
        return self._schema.stored_budgets

    @property
    def model_fingerprint(self) -> str | None:
        return self._schema.model_fingerprint

    def bytes_per_document(self) -> dict[str, int]:
        """Vector bytes stored per document, per named vector (float32), excluding payload and indexes."""
        return {multivector_name(r): 4 * r * self.dim for r in self.stored_budgets}

    def __len__(self) -> int:
        return int(self._call(self._backend.count, "counting points"))

    def __repr__(self) -> str:
        return (
            f"QdrantMultiVectorStore(collection={self.collection_name!r}, at={self._backend.location}, "
            f"dim={self.dim}, stored_budgets={self.stored_budgets})"
        )

    # -- validation ------------------------------------------------------------------------------------

    def _check_embeddings(self, embeddings: torch.Tensor, n: int) -> np.ndarray:
        if not isinstance(embeddings, torch.Tensor):
            raise InvalidInputError(f"embeddings must be a torch.Tensor, got {type(embeddings).__name__}")
        if embeddings.ndim != 3 or embeddings.shape[0] != n:
            raise InvalidInputError(f"embeddings must have shape [{n}, vectors, dim], got {tuple(embeddings.shape)}")
        if embeddings.shape[2] != self.dim:
            raise IncompatibleModelError(
                f"embeddings have dimension {embeddings.shape[2]} but collection {self.collection_name!r} "
                f"stores {self.dim}"
            )
        if embeddings.shape[1] < self.stored_vectors:
            raise InvalidInputError(
                f"embeddings have {embeddings.shape[1]} vectors per document; the collection stores "
                f"{self.stored_vectors} (budgets {list(self.stored_budgets)})"
            )
        if not embeddings.is_floating_point():
            raise InvalidInputError(f"embeddings must be floating point, got {embeddings.dtype}")
        array = embeddings[:, : self.stored_vectors].detach().to("cpu", torch.float32).contiguous().numpy()
        if not np.isfinite(array).all():
            raise InvalidInputError("embeddings contain NaN or infinite values")
        return array

    @staticmethod
    def _check_metadatas(metadatas: Sequence[Mapping[str, Any]] | None, n: int) -> list[dict[str, Any]]:
        if metadatas is None:
            return [{} for _ in range(n)]
        if isinstance(metadatas, Mapping) or len(metadatas) != n:
            raise InvalidInputError(f"metadatas must be a list of {n} dicts (one per id)")
        out = []
        for i, meta in enumerate(metadatas):
            if meta is None:
                meta = {}
            if not isinstance(meta, Mapping):
                raise InvalidInputError(f"metadata #{i} must be a dict, got {type(meta).__name__}")
            meta = dict(meta)
            if ID_FIELD in meta:
                raise InvalidInputError(f"metadata #{i} uses the reserved key {ID_FIELD!r}")
            if any(not isinstance(k, str) for k in meta):
                raise InvalidInputError(f"metadata #{i} keys must be strings")
            out.append(validate_metadata(meta, f"document #{i}"))
        return out

    def _resolve_budget(self, budget: BudgetLike, max_query: int, what: str = "budget") -> Budget:
        b = Budget.parse(budget).validate(max_query=max_query)
        if b.r_c not in self.stored_budgets:
            raise BudgetError(
                f"{what} {tuple(b)} needs r_c={b.r_c}, but collection {self.collection_name!r} stores only "
                f"r_c in {list(self.stored_budgets)}; search at one of those or recreate the collection with "
                f"stored_budgets including {b.r_c}"
            )
        return b

    # -- writes ----------------------------------------------------------------------------------------

    def add(
        self,
        ids: Sequence[str],
        embeddings: torch.Tensor,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Insert or replace documents (upsert by id), in batches of ``batch_size``, each retried on failure.

        Retrying a batch never duplicates documents: point ids are derived from the document ids.
        """
        ids = check_ids(ids, unique=True)
        array = self._check_embeddings(embeddings, len(ids))
        metas = self._check_metadatas(metadatas, len(ids))
        budgets = self.stored_budgets
        for start in range(0, len(ids), self.batch_size):
            points = []
            for i in range(start, min(start + self.batch_size, len(ids))):
                vectors = {multivector_name(r): (array[i, 0] if r == 1 else array[i, :r]).tolist() for r in budgets}
                points.append((point_id(ids[i]), vectors, {**metas[i], ID_FIELD: ids[i]}))
            self._call(lambda points=points: self._backend.upsert(points), f"upserting {len(points)} points")
        logger.debug("upserted %d documents into %r", len(ids), self.collection_name)

    upsert = add

    def delete(self, ids: Sequence[str]) -> None:
        """Remove documents; if any id is unknown nothing is removed and DocumentNotFoundError names them."""
        ids = check_ids(ids, unique=False)
        unique = list(dict.fromkeys(ids))
        found = self._fetch(unique, ())
        missing = [i for i in unique if i not in found]
        if missing:
            raise DocumentNotFoundError(f"unknown document id(s) in {self.collection_name!r}: {missing[:10]}")
        pids = [point_id(i) for i in unique]
        for start in range(0, len(pids), self.batch_size):
            batch = pids[start : start + self.batch_size]
            self._call(lambda batch=batch: self._backend.delete(batch), f"deleting {len(batch)} points")

    # -- reads -----------------------------------------------------------------------------------------

    def _fetch(self, ids: Sequence[str], vector_names: Sequence[str]) -> dict[str, PointRecord]:
        found: dict[str, PointRecord] = {}
        for start in range(0, len(ids), self.batch_size * 4):
            batch = [point_id(i) for i in ids[start : start + self.batch_size * 4]]
            records = self._call(lambda batch=batch: self._backend.retrieve(batch, vector_names), "retrieving points")
            for record in records:
                doc_id = record.payload.get(ID_FIELD)
                if isinstance(doc_id, str):
                    found[doc_id] = record
        return found

    def lookup_metadata(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The metadata of those of ``ids`` that are stored (unknown ids are left out, nothing raises)."""
        ids = check_ids(ids, unique=False)
        return {
            doc_id: _metadata(record.payload) for doc_id, record in self._fetch(list(dict.fromkeys(ids)), ()).items()
        }

    def get(self, ids: Sequence[str]) -> list[StoredDocument]:
        """Fetch documents (all stored vectors and metadata) in the order asked for."""
        ids = check_ids(ids, unique=False)
        name = multivector_name(self.stored_vectors)
        found = self._fetch(list(dict.fromkeys(ids)), (name,))
        missing = [i for i in ids if i not in found]
        if missing:
            raise DocumentNotFoundError(f"unknown document id(s) in {self.collection_name!r}: {missing[:10]}")
        out = []
        for doc_id in ids:
            record = found[doc_id]
            vectors = torch.tensor(record.vectors[name], dtype=torch.float32).reshape(self.stored_vectors, self.dim)
            out.append(StoredDocument(doc_id, vectors, _metadata(record.payload)))
        return out

    def _stage(self, queries: np.ndarray, budget: Budget, limit: int, dense_exact: bool) -> Stage:
        if budget.r_c == 1:
            vector: Any = queries[: budget.r_q].sum(axis=0, dtype=np.float32).tolist()
            return Stage(DENSE_VECTOR, vector, limit, exact=dense_exact, hnsw_ef=self.hnsw_ef)
        return Stage(multivector_name(budget.r_c), queries[: budget.r_q].tolist(), limit)

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
        """Per query, the top ``k`` documents by MaxSim at ``budget`` (raw, or divided by ``r_q``).

        ``cascade=((r_q', r_c'), n)`` prefetches ``n`` candidates at the coarse budget (through HNSW when
        ``r_c' = 1``) and rescores them at ``budget``. Dict filters run in Qdrant; a callable filter (and values
        Qdrant cannot match exactly) is evaluated on the payloads here, by scrolling the points that pass the
        rest of the filter, before the vector search.
        """
        if not isinstance(query_embeddings, torch.Tensor) or query_embeddings.ndim != 3:
            raise InvalidInputError(
                f"query_embeddings must be a [n_q, R_q, dim] tensor, got "
                f"{tuple(query_embeddings.shape) if isinstance(query_embeddings, torch.Tensor) else query_embeddings!r}"
            )
        if query_embeddings.shape[2] != self.dim:
            raise IncompatibleModelError(
                f"queries have dimension {query_embeddings.shape[2]}, collection {self.collection_name!r} "
                f"stores {self.dim}"
            )
        check_k(k)
        b = self._resolve_budget(budget, query_embeddings.shape[1])
        coarse: tuple[Budget, int] | None = None
        if cascade is not None:
            if not isinstance(cascade, (tuple, list)) or len(cascade) != 2:
                raise InvalidInputError(f"cascade must be (coarse_budget, n_candidates), got {cascade!r}")
            n_candidates = cascade[1]
            if isinstance(n_candidates, bool) or not isinstance(n_candidates, int) or n_candidates <= 0:
                raise InvalidInputError(f"cascade n_candidates must be a positive integer, got {n_candidates!r}")
            coarse = (self._resolve_budget(cascade[0], query_embeddings.shape[1], "cascade budget"), n_candidates)
        flt = validate_filter(filter)
        queries = query_embeddings.detach().to("cpu", torch.float32).numpy()
        if not np.isfinite(queries).all():
            raise InvalidInputError("query_embeddings contain NaN or infinite values")
        if queries.shape[0] == 0:
            return []

        conditions, residual = _translate_filter(flt)
        if any(c.kind == "any" and not c.values for c in conditions):  # {"$in": []} matches nothing
            return [[] for _ in range(queries.shape[0])]
        hits = None
        if not residual:
            hits = self._run(queries, b, k, coarse, conditions)
            if flt is not None and any(not matches_filter(h.metadata, flt) for row in hits for h in row):
                hits = None  # Qdrant matched more loosely (e.g. a value inside a list); redo it exactly
        if hits is None:
            allowed = self._matching_points(conditions, flt)
            if not allowed:
                return [[] for _ in range(queries.shape[0])]
            hits = self._run(queries, b, k, coarse, (*conditions, Condition("has_id", values=tuple(allowed))))
        if normalize:
            hits = [[SearchHit(h.id, h.score / b.r_q, h.metadata) for h in row] for row in hits]
        return hits

    def _run(
        self,
        queries: np.ndarray,
        b: Budget,
        k: int,
        coarse: tuple[Budget, int] | None,
        conditions: tuple[Condition, ...],
    ) -> list[list[SearchHit]]:
        plans = []
        for q in queries:
            if coarse is None:
                plans.append(QueryPlan(self._stage(q, b, k, self.exact), None, conditions))
            else:
                prefetch = self._stage(q, coarse[0], coarse[1], self.exact)
                plans.append(QueryPlan(self._stage(q, b, min(k, coarse[1]), True), prefetch, conditions))
        results = self._call(lambda: self._backend.query(plans), f"searching {len(plans)} queries")
        return [
            [SearchHit(r.payload[ID_FIELD], float(r.score), _metadata(r.payload)) for r in row if ID_FIELD in r.payload]
            for row in results
        ]

    def find_ids(self, filter: MetadataFilter = None) -> list[str]:
        """Document ids whose metadata passes ``filter`` (scrolling the payloads Qdrant pre-selects)."""
        flt = validate_filter(filter)
        conditions, _ = _translate_filter(flt)
        if any(c.kind == "any" and not c.values for c in conditions):  # {"$in": []} matches nothing
            return []
        found: list[str] = []
        offset = None
        while True:
            records, offset = self._call(
                lambda offset=offset: self._backend.scroll(conditions, offset, 1024), "scrolling payloads"
            )
            for record in records:
                doc_id = record.payload.get(ID_FIELD)
                if isinstance(doc_id, str) and matches_filter(_metadata(record.payload), flt):
                    found.append(doc_id)
            if offset is None or not records:
                return found

    def _matching_points(self, conditions: tuple[Condition, ...], flt: MetadataFilter) -> list[str]:
        """Point ids whose metadata passes ``flt``, scrolling those that pass ``conditions`` in Qdrant."""
        allowed: list[str] = []
        offset = None
        while True:
            records, offset = self._call(
                lambda offset=offset: self._backend.scroll(conditions, offset, 1024), "scrolling payloads"
            )
            allowed.extend(r.point_id for r in records if matches_filter(_metadata(r.payload), flt))
            if offset is None or not records:
                return allowed


def _metadata(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if key != ID_FIELD}
