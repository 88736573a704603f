"""The Qdrant backend over ``qdrant-client``: a server, a sharded cluster, or the client's local mode.

Made by :meth:`QdrantMultiVectorStore.connect <metaembed_rag.index.qdrant.QdrantMultiVectorStore.connect>`,
``from_client`` and ``local``; not meant to be used directly.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from ...errors import IndexFormatError, InvalidInputError, require
from .schema import (
    DENSE_VECTOR,
    LEXICAL_VECTOR,
    SCHEMA_KEY,
    CollectionSchema,
    Condition,
    FusionPlan,
    PointRecord,
    QueryPlan,
    Sparse,
    Stage,
    multivector_name,
)

logger = logging.getLogger(__name__)

_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}


class ClientBackend:
    """One collection reached through a ``qdrant_client.QdrantClient``."""

    matches_booleans = True

    def __init__(self, client: Any, collection_name: str, owns_client: bool = False, **create_options: Any) -> None:
        self._qc = require("qdrant_client", "qdrant", "the Qdrant store")
        self._m = self._qc.models
        if not isinstance(client, self._qc.QdrantClient):
            raise InvalidInputError(f"client must be a qdrant_client.QdrantClient, got {type(client).__name__}")
        if not isinstance(collection_name, str) or not collection_name:
            raise InvalidInputError(f"the collection name must be a non-empty string, got {collection_name!r}")
        self.client = client
        self.collection_name = collection_name
        self.create_options = {k: v for k, v in create_options.items() if v is not None}
        self.owns_client = owns_client
        self.location = _describe(client)
        self._info: Any = None

    @classmethod
    def from_url(
        cls,
        url: str,
        collection_name: str,
        *,
        api_key: str | None = None,
        prefer_grpc: bool = False,
        timeout: float | None = None,
        **create_options: Any,
    ) -> ClientBackend:
        """A client of its own for the server or cluster at ``url`` (closed with the backend)."""
        qc = require("qdrant_client", "qdrant", "the Qdrant store")
        if not isinstance(url, str) or not url:
            raise InvalidInputError(f"url must be a non-empty string such as 'http://localhost:6333', got {url!r}")
        client = qc.QdrantClient(
            url=url,
            api_key=api_key,
            prefer_grpc=prefer_grpc,
            timeout=None if timeout is None else max(1, round(timeout)),
            check_compatibility=False,
        )
        return cls(client, collection_name, owns_client=True, **create_options)

    @classmethod
    def local(cls, path: str | os.PathLike | None, collection_name: str) -> ClientBackend:
        """A client of its own in qdrant-client's local mode: in memory, or persistent in the folder ``path``."""
        qc = require("qdrant_client", "qdrant", "the Qdrant store")
        if path is None:
            client = qc.QdrantClient(location=":memory:")
        elif isinstance(path, (str, os.PathLike)):
            client = qc.QdrantClient(path=os.fspath(path))
        else:
            raise InvalidInputError(f"path must be a folder path or None (in memory), got {type(path).__name__}")
        return cls(client, collection_name, owns_client=True)

    # -- schema ----------------------------------------------------------------------------------------

    def read_schema(self) -> CollectionSchema | None:
        if not self.client.collection_exists(self.collection_name):
            return None
        self._info = self.client.get_collection(self.collection_name)
        metadata = getattr(self._info.config, "metadata", None) or {}
        if SCHEMA_KEY not in metadata:
            raise IndexFormatError(
                f"collection {self.collection_name!r} at {self.location} exists but was not created by "
                "metaembed_rag (no layout description in its metadata); use another collection_name"
            )
        return CollectionSchema.from_json(metadata[SCHEMA_KEY], f"collection {self.collection_name!r}")

    def check_layout(self, schema: CollectionSchema) -> None:
        vectors = self._info.config.params.vectors if self._info is not None else None
        where = f"collection {self.collection_name!r} at {self.location}"
        if not isinstance(vectors, dict):
            raise IndexFormatError(f"{where} has no named vectors; it does not hold a metaembed_rag layout")
        for r_c in schema.stored_budgets:
            name = multivector_name(r_c)
            params = vectors.get(name)
            if params is None:
                raise IndexFormatError(f"{where} lacks the named vector {name!r} its description promises")
            is_multi = params.multivector_config is not None
            if params.size != schema.dim or is_multi != (r_c > 1):
                raise IndexFormatError(
                    f"{where}: vector {name!r} is {params.size}-dimensional"
                    f"{' multi' if is_multi else ' dense'}, expected {schema.dim}-dimensional"
                    f"{' multi' if r_c > 1 else ' dense'}"
                )
        sparse = self._info.config.params.sparse_vectors or {}
        if schema.lexical is not None and LEXICAL_VECTOR not in sparse:
            raise IndexFormatError(f"{where} lacks the sparse vector {LEXICAL_VECTOR!r} its description promises")

    def create(self, schema: CollectionSchema) -> None:
        m = self._m
        on_disk = self.create_options.get("on_disk")
        vectors = {DENSE_VECTOR: m.VectorParams(size=schema.dim, distance=m.Distance.DOT, on_disk=on_disk)}
        for r_c in schema.multivector_budgets:
            vectors[multivector_name(r_c)] = m.VectorParams(
                size=schema.dim,
                distance=m.Distance.DOT,
                on_disk=on_disk,
                multivector_config=m.MultiVectorConfig(comparator=m.MultiVectorComparator.MAX_SIM),
                hnsw_config=m.HnswConfigDiff(m=0),
            )
        sparse = None
        if schema.lexical is not None:
            sparse = {LEXICAL_VECTOR: m.SparseVectorParams(modifier=m.Modifier.IDF)}
        self.client.create_collection(
            self.collection_name,
            vectors_config=vectors,
            sparse_vectors_config=sparse,
            shard_number=self.create_options.get("shard_number"),
            replication_factor=self.create_options.get("replication_factor"),
            metadata={SCHEMA_KEY: schema.to_json()},
        )

    def write_schema(self, schema: CollectionSchema) -> None:
        self.client.update_collection(self.collection_name, metadata={SCHEMA_KEY: schema.to_json()})

    # -- points ----------------------------------------------------------------------------------------

    def upsert(self, points: Sequence[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
        structs = [
            self._m.PointStruct(id=pid, vector={n: self._vector(v) for n, v in vectors.items()}, payload=payload)
            for pid, vectors, payload in points
        ]
        self.client.upsert(self.collection_name, points=structs, wait=True)

    def delete(self, point_ids: Sequence[str]) -> None:
        self.client.delete(
            self.collection_name, points_selector=self._m.PointIdsList(points=list(point_ids)), wait=True
        )

    def retrieve(self, point_ids: Sequence[str], vector_names: Sequence[str]) -> list[PointRecord]:
        records = self.client.retrieve(
            self.collection_name, ids=list(point_ids), with_payload=True, with_vectors=list(vector_names) or False
        )
        return [PointRecord(str(r.id), r.payload or {}, vectors=dict(r.vector or {})) for r in records]

    def count(self) -> int:
        return self.client.count(self.collection_name, exact=True).count

    def scroll(self, conditions: Sequence[Condition], offset: Any, limit: int) -> tuple[list[PointRecord], Any]:
        records, next_offset = self.client.scroll(
            self.collection_name,
            scroll_filter=self._filter(conditions),
            limit=limit,
            offset=offset,
            with_payload=True,
            with_vectors=False,
        )
        return [PointRecord(str(r.id), r.payload or {}) for r in records], next_offset

    def _vector(self, vector: Any) -> Any:
        if isinstance(vector, Sparse):
            return self._m.SparseVector(indices=list(vector.indices), values=list(vector.values))
        return vector

    def _stage(self, stage: Stage, flt: Any) -> dict[str, Any]:
        """The arguments a ``Prefetch`` and a ``QueryRequest`` share for one stage."""
        params = _params(self._m, stage)
        return {
            "query": self._vector(stage.vector),
            "using": stage.using,
            "limit": stage.limit,
            "filter": flt,
            "params": params,
        }

    def _request(self, plan: QueryPlan | FusionPlan, kind: Any) -> Any:
        """A plan as ``kind`` (``QueryRequest``, or ``Prefetch`` inside a fusion), its own prefetches nested."""
        m = self._m
        flt = self._filter(plan.conditions)
        extra = {"with_payload": True} if kind is m.QueryRequest else {}
        if isinstance(plan, FusionPlan):
            rrf = m.RrfQuery(rrf=m.Rrf(k=plan.k, weights=list(plan.weights)))
            prefetch = [self._request(p, m.Prefetch) for p in plan.plans]
            return kind(prefetch=prefetch, query=rrf, limit=plan.limit, filter=flt, **extra)
        inner = None if plan.prefetch is None else m.Prefetch(**self._stage(plan.prefetch, flt))
        return kind(prefetch=inner, **self._stage(plan.final, flt), **extra)

    def query(self, plans: Sequence[QueryPlan | FusionPlan]) -> list[list[PointRecord]]:
        requests = [self._request(plan, self._m.QueryRequest) for plan in plans]
        responses = self.client.query_batch_points(self.collection_name, requests=requests)
        return [[PointRecord(str(p.id), p.payload or {}, float(p.score)) for p in r.points] for r in responses]

    def _filter(self, conditions: Sequence[Condition]) -> Any:
        if not conditions:
            return None
        return self._m.Filter(must=[self._condition(c) for c in conditions])

    def _condition(self, c: Condition) -> Any:
        m = self._m
        if c.kind == "match":
            return m.FieldCondition(key=c.key, match=m.MatchValue(value=c.values[0]))
        if c.kind == "any":
            return m.FieldCondition(key=c.key, match=m.MatchAny(any=list(c.values)))
        if c.kind == "range_eq":
            return m.FieldCondition(key=c.key, range=m.Range(gte=c.values[0], lte=c.values[0]))
        if c.kind == "null":
            field = m.PayloadField(key=c.key)
            return m.Filter(should=[m.IsNullCondition(is_null=field), m.IsEmptyCondition(is_empty=field)])
        if c.kind == "or":
            return m.Filter(should=[self._condition(n) for n in c.nested])
        if c.kind == "has_id":
            return m.HasIdCondition(has_id=list(c.values))
        raise AssertionError(f"unknown condition kind {c.kind!r}")

    # -- misc ------------------------------------------------------------------------------------------

    def is_transient(self, exc: BaseException) -> bool:
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        if isinstance(exc, UnexpectedResponse):
            return exc.status_code in _TRANSIENT_HTTP
        if isinstance(exc, (ResponseHandlingException, ConnectionError, TimeoutError)):
            return True
        try:
            import httpx

            if isinstance(exc, httpx.TransportError):
                return True
        except ImportError:  # pragma: no cover - httpx ships with qdrant-client
            pass
        try:
            import grpc

            if isinstance(exc, grpc.RpcError):
                code = exc.code() if hasattr(exc, "code") else None
                return code in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                )
        except ImportError:  # pragma: no cover - grpcio ships with qdrant-client
            pass
        return False

    def optimize(self) -> None:
        """A server indexes in the background; nothing to do here."""

    def close(self) -> None:
        if self.owns_client:  # a client passed in belongs to the caller
            self.client.close()


def _params(m: Any, stage: Stage) -> Any:
    if stage.exact or stage.hnsw_ef is not None:
        return m.SearchParams(exact=stage.exact, hnsw_ef=stage.hnsw_ef)
    return None


def _describe(client: Any) -> str:
    options = getattr(client, "init_options", None) or {}
    for key in ("url", "host", "location", "path"):
        if options.get(key):
            return f"{key}={options[key]}"
    return "qdrant_client"
