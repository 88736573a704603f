"""``QdrantMultiVectorStore``: a :class:`MultiVectorStore` kept in Qdrant (server, cluster, local mode or Edge).

The layout of a collection is described in :mod:`.schema`. A search at ``(r_q, r_c)`` scores the first ``r_q``
query vectors against ``first_<r_c>``; at ``r_c = 1`` it queries ``first`` with the sum of the query vectors,
which is the same MaxSim score (``Σ_i <q_i, c_1> = <Σ_i q_i, c_1>``). A cascade ``((r_q', r_c'), n)`` is a Qdrant
prefetch of ``n`` candidates at the coarse budget, rescored at the requested one. Dict filters run inside Qdrant;
predicates and anything Qdrant cannot express exactly are evaluated here on the payloads (see :mod:`.filters`).
Input is validated by :class:`~metaembed_rag.index.base.MultiVectorStore` before it reaches this module.

The store talks to Qdrant through a backend (:mod:`.server` over ``qdrant-client``, :mod:`.edge` over Qdrant
Edge), made by the constructors:

Example:
    >>> store = QdrantMultiVectorStore.local(collection="d", dim=4)  # qdrant-client local mode, in memory
    >>> store.stored_budgets
    (1, 64)
    >>> store = QdrantMultiVectorStore.connect("http://qdrant:6333", collection="docs", dim=384)  # doctest: +SKIP
    >>> store = QdrantMultiVectorStore.from_client(client, "docs", dim=384)  # doctest: +SKIP
    >>> store = QdrantMultiVectorStore.embedded("./qdrant", "docs", dim=384)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch

from ...budget import Budget
from ...errors import BudgetError, IncompatibleModelError, InvalidInputError, StoreConnectionError
from ...filters import matches_filter
from ..base import MetadataFilter, MultiVectorStore, SearchHit, StoredDocument, check_model_identity
from .filters import translate_filter
from .schema import (
    DEFAULT_STORED_BUDGETS,
    DENSE_VECTOR,
    ID_FIELD,
    CollectionSchema,
    Condition,
    PointRecord,
    QdrantBackend,
    QueryPlan,
    Stage,
    multivector_name,
    point_id,
)

logger = logging.getLogger(__name__)


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

    Make one with :meth:`connect` (a server or cluster), :meth:`from_client` (a ``QdrantClient`` of yours),
    :meth:`local` (qdrant-client's local mode) or :meth:`embedded` (Qdrant Edge, in-process). The constructor
    takes a backend (see :class:`~metaembed_rag.index.qdrant.schema.QdrantBackend`) and these options, which
    every constructor accepts too:

    Args:
        dim: vector dimension; required to create the collection, checked when reopening it.
        stored_budgets: candidate budgets ``r_c`` to store (ints or ``(r_q, r_c)`` pairs; ``1`` is always
            stored). Defaults to ``(1, 64)`` on creation and to what the collection holds when reopening.
        model_fingerprint: the encoder's ``identity["fingerprint"]``; saved on creation, checked on reopen.
        batch_size: points per upsert request.
        retries, backoff: a failed request is retried ``retries`` times, waiting ``backoff * 2**attempt`` s.
        exact: search the dense ``r_c = 1`` stage exhaustively instead of through HNSW.
        hnsw_ef: HNSW search breadth of the dense stage.
    """

    reserved_metadata_keys = frozenset({ID_FIELD})

    def __init__(
        self,
        backend: QdrantBackend,
        *,
        dim: int | None = None,
        stored_budgets: Iterable[Any] | None = None,
        model_fingerprint: str | None = None,
        batch_size: int = 64,
        retries: int = 3,
        backoff: float = 0.2,
        exact: bool = False,
        hnsw_ef: int | None = None,
    ) -> None:
        if not all(callable(getattr(backend, name, None)) for name in ("read_schema", "query", "upsert")):
            raise InvalidInputError(
                f"QdrantMultiVectorStore takes a backend, got {type(backend).__name__}; for a QdrantClient use "
                "QdrantMultiVectorStore.from_client(client, collection), for a URL QdrantMultiVectorStore.connect(url)"
            )
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise InvalidInputError(f"dim must be a positive integer, got {dim!r}")
        for name, value, low in (("batch_size", batch_size, 1), ("retries", retries, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidInputError(f"{name} must be an integer >= {low}, got {value!r}")
        self.collection_name: str = backend.collection_name
        self.batch_size = batch_size
        self.retries = retries
        self.backoff = float(backoff)
        self.exact = bool(exact)
        self.hnsw_ef = hnsw_ef
        self._backend = backend
        self._schema = self._open(dim, _normalise_budgets(stored_budgets), model_fingerprint)

    # -- constructors ----------------------------------------------------------------------------------

    @classmethod
    def _over(cls, backend: QdrantBackend, options: dict[str, Any]) -> QdrantMultiVectorStore:
        """The store over ``backend``; the backend is closed if opening the collection fails."""
        try:
            return cls(backend, **options)
        except BaseException:
            backend.close()
            raise

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        collection: str = "docs",
        prefer_grpc: bool = False,
        timeout: float | None = None,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        on_disk: bool | None = None,
        **options: Any,
    ) -> QdrantMultiVectorStore:
        """The collection ``collection`` on the Qdrant server or cluster at ``url`` (a client is made and owned).

        ``shard_number``, ``replication_factor`` and ``on_disk`` apply when the collection is created; other
        keyword arguments are the constructor's (``dim``, ``stored_budgets``, ``retries`` …).
        """
        from .server import ClientBackend

        backend = ClientBackend.from_url(
            url,
            collection,
            api_key=api_key,
            prefer_grpc=prefer_grpc,
            timeout=timeout,
            shard_number=shard_number,
            replication_factor=replication_factor,
            on_disk=on_disk,
        )
        return cls._over(backend, options)

    @classmethod
    def from_client(
        cls,
        client: Any,
        collection: str = "docs",
        *,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        on_disk: bool | None = None,
        **options: Any,
    ) -> QdrantMultiVectorStore:
        """The collection ``collection`` through your ``qdrant_client.QdrantClient`` (which :meth:`close`
        leaves open: it stays yours)."""
        from .server import ClientBackend

        backend = ClientBackend(
            client,
            collection,
            shard_number=shard_number,
            replication_factor=replication_factor,
            on_disk=on_disk,
        )
        return cls._over(backend, options)

    @classmethod
    def local(
        cls, path: str | os.PathLike | None = None, collection: str = "docs", **options: Any
    ) -> QdrantMultiVectorStore:
        """qdrant-client's local mode: in memory (``path=None``) or persistent in the folder ``path``."""
        from .server import ClientBackend

        return cls._over(ClientBackend.local(path, collection), options)

    @classmethod
    def embedded(
        cls,
        path: str | os.PathLike,
        collection: str = "docs",
        *,
        search_threads: int | None = None,
        on_disk: bool | None = None,
        **options: Any,
    ) -> QdrantMultiVectorStore:
        """The store on Qdrant Edge, in-process and persistent in ``path/<collection>/``.

        ``search_threads`` bounds Qdrant Edge's search thread pool (default: one per CPU). Nothing is retried
        (``retries=0``): Edge runs in this process.

        Example:
            >>> store = QdrantMultiVectorStore.embedded("/tmp/qdrant-edge", dim=384)  # doctest: +SKIP
        """
        from .edge import EdgeBackend

        backend = EdgeBackend.open(path, collection, search_threads=search_threads, on_disk=on_disk)
        return cls._over(backend, {"retries": 0, **options})

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
        if dim is not None or fingerprint is not None:
            stored_identity = {"embedding_dim": existing.dim, "fingerprint": existing.model_fingerprint}
            check_model_identity(stored_identity, existing.dim, {"embedding_dim": dim, "fingerprint": fingerprint})
        if stored_budgets is not None and stored_budgets != existing.stored_budgets:
            raise IncompatibleModelError(
                f"{where} stores candidate budgets r_c={list(existing.stored_budgets)}, not {list(stored_budgets)}; "
                "open it without stored_budgets= or use another collection"
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

    def _where(self) -> str:
        return f"collection {self.collection_name!r}"

    def __repr__(self) -> str:
        return (
            f"QdrantMultiVectorStore(collection={self.collection_name!r}, at={self._backend.location}, "
            f"dim={self.dim}, stored_budgets={self.stored_budgets})"
        )

    # -- writes (input checked by MultiVectorStore) ----------------------------------------------------

    def _add(self, ids: list[str], embeddings: torch.Tensor, metas: list[dict[str, Any]]) -> None:
        """Upsert in batches of ``batch_size``, each retried on failure; a retried batch never duplicates
        documents, since point ids are derived from the document ids."""
        array = embeddings.to("cpu", torch.float32).contiguous().numpy()
        budgets = self.stored_budgets
        for start in range(0, len(ids), self.batch_size):
            points = []
            for i in range(start, min(start + self.batch_size, len(ids))):
                vectors = {multivector_name(r): (array[i, 0] if r == 1 else array[i, :r]).tolist() for r in budgets}
                points.append((point_id(ids[i]), vectors, {**metas[i], ID_FIELD: ids[i]}))
            self._call(lambda points=points: self._backend.upsert(points), f"upserting {len(points)} points")
        logger.debug("upserted %d documents into %r", len(ids), self.collection_name)

    def _delete(self, ids: list[str]) -> None:
        found = self._fetch(ids, ())
        missing = [i for i in ids if i not in found]
        if missing:
            raise self._not_found(missing)
        pids = [point_id(i) for i in ids]
        for start in range(0, len(pids), self.batch_size):
            batch = pids[start : start + self.batch_size]
            self._call(lambda batch=batch: self._backend.delete(batch), f"deleting {len(batch)} points")

    # -- reads -----------------------------------------------------------------------------------------

    def _fetch(self, ids: list[str], vector_names: tuple[str, ...]) -> dict[str, PointRecord]:
        found: dict[str, PointRecord] = {}
        for start in range(0, len(ids), self.batch_size * 4):
            batch = [point_id(i) for i in ids[start : start + self.batch_size * 4]]
            records = self._call(lambda batch=batch: self._backend.retrieve(batch, vector_names), "retrieving points")
            for record in records:
                doc_id = record.payload.get(ID_FIELD)
                if isinstance(doc_id, str):
                    found[doc_id] = record
        return found

    def _lookup_metadata(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        return {doc_id: _metadata(record.payload) for doc_id, record in self._fetch(ids, ()).items()}

    def _get(self, ids: list[str]) -> list[StoredDocument]:
        name = multivector_name(self.stored_vectors)
        found = self._fetch(list(dict.fromkeys(ids)), (name,))
        missing = [i for i in ids if i not in found]
        if missing:
            raise self._not_found(missing)
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

    def _search(
        self,
        query_embeddings: torch.Tensor,
        b: Budget,
        k: int,
        flt: MetadataFilter,
        coarse: tuple[Budget, int] | None,
        normalize: bool,
    ) -> list[list[SearchHit]]:
        """``cascade=((r_q', r_c'), n)`` prefetches ``n`` candidates at the coarse budget (through HNSW when
        ``r_c' = 1``) and rescores them at ``budget``. Dict filters run in Qdrant; a callable filter (and values
        Qdrant cannot match exactly) is evaluated on the payloads here, by scrolling the points that pass the
        rest of the filter, before the vector search."""
        queries = query_embeddings.to("cpu", torch.float32).numpy()
        conditions, residual = translate_filter(flt, booleans=self._backend.matches_booleans)
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

    def _find_ids(self, flt: MetadataFilter) -> list[str]:
        """Document ids whose metadata passes ``flt`` (scrolling the payloads Qdrant pre-selects)."""
        conditions, _ = translate_filter(flt, booleans=self._backend.matches_booleans)
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
