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

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ...budget import Budget, BudgetLike
from ...errors import BudgetError, IncompatibleModelError, IndexFormatError, InvalidInputError, StoreConnectionError
from ...filters import matches_filter, validate_filter
from ...fusion import DEFAULT_RRF_K, fuse
from ...validation import check_k
from ...windows import window_info
from ..base import Cascade, MetadataFilter, MultiVectorStore, SearchHit, StoredDocument, check_model_identity
from .filters import translate_filter
from .lexical import page_vector, query_vector, token_count
from .schema import (
    DEFAULT_STORED_BUDGETS,
    DENSE_VECTOR,
    ID_FIELD,
    LEXICAL_VECTOR,
    CollectionSchema,
    Condition,
    FusionPlan,
    LexicalSchema,
    PointRecord,
    QdrantBackend,
    QueryPlan,
    Sparse,
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
        lexical: give a new collection the sparse BM25 vector of :meth:`hybrid_search` (default ``True``);
            ``True`` on a collection made without it is refused. Reopening follows the collection.
        lexical_avg_tokens: the average page length (in :func:`~metaembed_rag.lexical.tokenize` tokens) BM25
            normalises by; default: that of the first added batch with text. Fixed once, saved with the collection.
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
        lexical: bool | None = None,
        lexical_avg_tokens: float | None = None,
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
        if lexical_avg_tokens is not None and (
            isinstance(lexical_avg_tokens, bool) or not isinstance(lexical_avg_tokens, (int, float))
        ):
            raise InvalidInputError(f"lexical_avg_tokens must be a positive number, got {lexical_avg_tokens!r}")
        if lexical_avg_tokens is not None and not lexical_avg_tokens > 0:
            raise InvalidInputError(f"lexical_avg_tokens must be a positive number, got {lexical_avg_tokens!r}")
        wanted = None
        if lexical is not False:
            wanted = LexicalSchema(avg_tokens=None if lexical_avg_tokens is None else float(lexical_avg_tokens))
        self._schema = self._open(dim, _normalise_budgets(stored_budgets), model_fingerprint, wanted, lexical is True)

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
        self,
        dim: int | None,
        stored_budgets: tuple[int, ...] | None,
        fingerprint: str | None,
        lexical: LexicalSchema | None,
        lexical_required: bool,
    ) -> CollectionSchema:
        existing = self._call(self._backend.read_schema, "reading the collection")
        where = f"collection {self.collection_name!r} at {self._backend.location}"
        if existing is None:
            if dim is None:
                raise InvalidInputError(f"{where} does not exist; pass dim= to create it")
            schema = CollectionSchema(dim, stored_budgets or DEFAULT_STORED_BUDGETS, fingerprint, lexical)
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
        if lexical_required and existing.lexical is None:
            raise IndexFormatError(
                f"{where} was made without the sparse BM25 vector (lexical=False, or before it existed), so it "
                "cannot do a hybrid search; create a new collection (lexical is on by default) and add the documents"
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

    @property
    def has_lexical(self) -> bool:
        """Whether the collection holds the sparse BM25 vector of :meth:`hybrid_search`."""
        return self._schema.lexical is not None

    @property
    def fuses_pages(self) -> bool:
        """Whether :meth:`hybrid_search` ranks pages exactly as the in-process hybrid search: the collection has
        its BM25 vector and has never stored a page split into windows (each page is then one point)."""
        return self._schema.lexical is not None and not self._schema.lexical.windowed

    @property
    def ids(self) -> list[str]:
        """Every stored document id (scrolled from the payloads; in Qdrant's order)."""
        return self._find_ids(None)

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

    def _add(
        self, ids: list[str], embeddings: torch.Tensor, metas: list[dict[str, Any]], texts: list[str | None]
    ) -> None:
        """Upsert in batches of ``batch_size``, each retried on failure; a retried batch never duplicates
        documents, since point ids are derived from the document ids."""
        array = embeddings.to("cpu", torch.float32).contiguous().numpy()
        budgets = self.stored_budgets
        sparse = self._page_vectors(metas, texts)
        for start in range(0, len(ids), self.batch_size):
            points = []
            for i in range(start, min(start + self.batch_size, len(ids))):
                vectors = {multivector_name(r): (array[i, 0] if r == 1 else array[i, :r]).tolist() for r in budgets}
                if sparse[i] is not None:
                    vectors[LEXICAL_VECTOR] = sparse[i]
                points.append((point_id(ids[i]), vectors, {**metas[i], ID_FIELD: ids[i]}))
            self._call(lambda points=points: self._backend.upsert(points), f"upserting {len(points)} points")
        logger.debug("upserted %d documents into %r", len(ids), self.collection_name)

    def _page_vectors(self, metas: list[dict[str, Any]], given: list[str | None]) -> list[Sparse | None]:
        """The BM25 vector of each row that is a page (stored whole, or window 0) with text (the one given, else
        its metadata ``text``); ``None`` for the rest (windows ``k >= 1``, rows without text).

        The first batch with text fixes the collection's average page length when none was given.
        """
        lexical = self._schema.lexical
        if lexical is None:
            return [None] * len(metas)
        texts = [_page_text(meta, text) for meta, text in zip(metas, given, strict=True)]
        updated = lexical
        if lexical.avg_tokens is None:
            lengths = [token_count(t) for t in texts if t]
            if lengths:
                updated = dataclasses.replace(updated, avg_tokens=max(1.0, sum(lengths) / len(lengths)))
                logger.info("BM25 of %r normalises by %.1f tokens a page", self.collection_name, updated.avg_tokens)
        if not lexical.windowed and any(window_info(meta) is not None for meta in metas):
            updated = dataclasses.replace(updated, windowed=True)
        if updated != lexical:
            schema = dataclasses.replace(self._schema, lexical=updated)
            self._call(lambda: self._backend.write_schema(schema), "saving the collection's BM25 parameters")
            self._schema = schema
        lexical = updated
        avg = lexical.avg_tokens
        if avg is None:
            return [None] * len(metas)
        return [page_vector(t, k1=lexical.k1, b=lexical.b, avg_tokens=avg) if t else None for t in texts]

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

        def plans(conditions: tuple[Condition, ...]) -> list[QueryPlan | FusionPlan]:
            return [self._dense_plan(q, b, k, coarse, conditions) for q in queries]

        hits = self._filtered(len(queries), flt, plans)
        if normalize:
            hits = [[SearchHit(h.id, h.score / b.r_q, h.metadata) for h in row] for row in hits]
        return hits

    def _query_texts(self, texts: Any, n: int) -> list[str]:
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
            raise InvalidInputError(f"texts must be a list of {n} query strings, got {type(texts).__name__}")
        texts = list(texts)
        if len(texts) != n or not all(isinstance(t, str) for t in texts):
            raise InvalidInputError(f"texts must be a list of {n} query strings (one per query), got {texts!r:.200}")
        return texts

    def _require_lexical(self) -> None:
        if self._schema.lexical is None:
            raise IndexFormatError(
                f"{self._where()} at {self._backend.location} has no sparse BM25 vector (made with lexical=False or "
                "before it existed), so it cannot do a lexical or hybrid search; create a new collection (lexical is "
                "on by default) and add the documents again"
            )

    def lexical_search(
        self, texts: Sequence[str], *, k: int = 10, filter: MetadataFilter = None
    ) -> list[list[SearchHit]]:
        """Per query text, the ``k`` best pages by BM25 (Qdrant's sparse search with its IDF modifier).

        Pages without a matching token are left out (as in :class:`~metaembed_rag.lexical.LexicalIndex`).
        """
        self._require_lexical()
        k = check_k(k)
        texts = self._query_texts(texts, len(texts) if isinstance(texts, Sequence) else -1)
        flt = validate_filter(filter)
        vectors = [query_vector(t) for t in texts]

        def plans(conditions: tuple[Condition, ...]) -> list[QueryPlan | FusionPlan]:
            return [QueryPlan(Stage(LEXICAL_VECTOR, v or _NO_TOKEN, k), None, conditions) for v in vectors]

        hits = self._filtered(len(texts), flt, plans)
        return [row if v is not None else [] for row, v in zip(hits, vectors, strict=True)]

    def hybrid_search(
        self,
        query_embeddings: torch.Tensor,
        texts: Sequence[str],
        *,
        budget: BudgetLike | None,
        k: int = 10,
        filter: MetadataFilter = None,
        cascade: Cascade = None,
        rrf_k: int = DEFAULT_RRF_K,
        weights: tuple[float, float] = (1.0, 1.0),
        candidates: int = 100,
    ) -> list[list[SearchHit]]:
        """Multi-vector and BM25 together in one Qdrant query per query: a prefetch of ``candidates`` points by
        MaxSim at ``budget`` (through ``cascade`` if given), a prefetch of ``candidates`` pages by BM25 of
        ``texts``, fused by reciprocal rank (``sum_s weights[s] / (rrf_k + rank_s)``, ranks from 1). With
        weights other than ``(1, 1)`` the two rankings come back in one batch and are fused here instead, since
        Qdrant weighs RRF by another formula.

        Hits are points: a page stored whole, or one window of a page (window 0 carries the page's BM25
        vector). For pages stored whole the result is the in-process hybrid search's
        (:mod:`metaembed_rag.fusion`), ties aside; for windowed pages a page's dense and lexical ranks may
        come from different points (see the README). Input is checked by the same rules as :meth:`search`.
        """
        self._require_lexical()
        queries = self._check_queries(query_embeddings)
        texts = self._query_texts(texts, queries.shape[0])
        k = check_k(k)
        candidates = check_k(candidates, "candidates")
        b = self._resolve_budget(budget, queries.shape[1])
        coarse = self._check_cascade(cascade, b, k, queries.shape[1])
        if coarse is not None:  # the shortlist feeds a prefetch of `candidates` points
            coarse = (coarse[0], max(coarse[1], candidates))
        flt = validate_filter(filter)
        if isinstance(rrf_k, bool) or not isinstance(rrf_k, int) or rrf_k < 0:
            raise InvalidInputError(f"rrf_k must be a non-negative integer, got {rrf_k!r}")
        if len(weights) != 2 or any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in weights):
            raise InvalidInputError(f"weights must be two non-negative numbers (dense, lexical), got {weights!r}")
        if queries.shape[0] == 0:
            return []
        array = queries.to("cpu", torch.float32).numpy()
        sparse = [query_vector(t) or _NO_TOKEN for t in texts]
        n = len(texts)
        if weights[0] == weights[1] == 1:

            def fused(conditions: tuple[Condition, ...]) -> list[QueryPlan | FusionPlan]:
                return [
                    FusionPlan(
                        (
                            self._dense_plan(q, b, candidates, coarse, conditions),
                            QueryPlan(Stage(LEXICAL_VECTOR, v, candidates), None, conditions),
                        ),
                        limit=k,
                        k=rrf_k + 1,  # Qdrant ranks from 0, metaembed_rag.fusion from 1
                        weights=(1.0, 1.0),
                        conditions=conditions,
                    )
                    for q, v in zip(array, sparse, strict=True)
                ]

            return self._filtered(n, flt, fused)

        # Qdrant weighs a ranking by dividing its ranks (1 / (rank / w + k)), not by scaling its terms as
        # metaembed_rag.fusion does (w / (k + rank)): weighted, both rankings come back in one batch and are
        # fused here, so the result is the in-process one.
        def both(conditions: tuple[Condition, ...]) -> list[QueryPlan | FusionPlan]:
            dense = [self._dense_plan(q, b, candidates, coarse, conditions) for q in array]
            return [*dense, *(QueryPlan(Stage(LEXICAL_VECTOR, v, candidates), None, conditions) for v in sparse)]

        rows = self._filtered(2 * n, flt, both)
        out = []
        for dense, lexical in zip(rows[:n], rows[n:], strict=True):
            by_id = {h.id: h for h in (*lexical, *dense)}
            ranking = fuse(
                [[(h.id, h.score) for h in dense], [(h.id, h.score) for h in lexical]],
                k=rrf_k,
                weights=[float(weights[0]), float(weights[1])],
            )
            out.append([SearchHit(doc_id, score, by_id[doc_id].metadata) for doc_id, score in ranking[:k]])
        return out

    def _dense_plan(
        self, q: np.ndarray, b: Budget, k: int, coarse: tuple[Budget, int] | None, conditions: tuple[Condition, ...]
    ) -> QueryPlan:
        if coarse is None:
            return QueryPlan(self._stage(q, b, k, self.exact), None, conditions)
        prefetch = self._stage(q, coarse[0], coarse[1], self.exact)
        return QueryPlan(self._stage(q, b, min(k, coarse[1]), True), prefetch, conditions)

    def _filtered(
        self, n: int, flt: MetadataFilter, plans: Callable[[tuple[Condition, ...]], list[QueryPlan | FusionPlan]]
    ) -> list[list[SearchHit]]:
        """Run the ``n`` query plans under ``flt``: inside Qdrant where it can match the filter exactly, else over
        the points whose payloads pass it here (scrolled first, then passed to Qdrant as point ids)."""
        conditions, residual = translate_filter(flt, booleans=self._backend.matches_booleans)
        if any(c.kind == "any" and not c.values for c in conditions):  # {"$in": []} matches nothing
            return [[] for _ in range(n)]
        if not residual:
            hits = self._execute(plans(conditions))
            if flt is None or all(matches_filter(h.metadata, flt) for row in hits for h in row):
                return hits
            # Qdrant matched more loosely (e.g. a value inside a list); redo it exactly
        allowed = self._matching_points(conditions, flt)
        if not allowed:
            return [[] for _ in range(n)]
        return self._execute(plans((*conditions, Condition("has_id", values=tuple(allowed)))))

    def _execute(self, plans: list[QueryPlan | FusionPlan]) -> list[list[SearchHit]]:
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


_NO_TOKEN = Sparse((0,), (0.0,))
"""The sparse query of a text without tokens: matches no page (every score 0 is dropped by Qdrant)."""


def _page_text(meta: Mapping[str, Any], given: str | None) -> str | None:
    """The text BM25 indexes for a stored row: on a page stored whole or on its window 0, the text given with it,
    else its metadata ``text``."""
    from ...results import TEXT_KEY

    info = window_info(meta)
    if info is not None and info.get("index", 0) != 0:
        return None
    text = given if given else meta.get(TEXT_KEY)
    return text if isinstance(text, str) and text else None


def _metadata(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if key != ID_FIELD}
