"""The Qdrant backend over Qdrant Edge (``qdrant-edge-py``): the Qdrant engine in-process, persistent on disk.

A collection ``name`` under ``path`` is the folder ``path/name/`` holding ``shard/`` (the Edge shard) and
``metaembed_rag.json`` (the layout description, written atomically after the shard is created).
Made by :meth:`QdrantMultiVectorStore.embedded <metaembed_rag.index.qdrant.QdrantMultiVectorStore.embedded>`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...atomic import read_json, write_json_atomic
from ...errors import IndexFormatError, InvalidInputError, StoreConnectionError, UnsafePathError, require
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

SCHEMA_FILE = f"{SCHEMA_KEY}.json"
SHARD_DIR = "shard"


class EdgeBackend:
    """One Qdrant Edge shard holding one collection."""

    matches_booleans = False  # qdrant-edge-py 0.9 turns MatchValue(True) into the integer 1

    def __init__(self, root: Path, search_threads: int | None, on_disk: bool | None) -> None:
        self._qe = require("qdrant_edge", "qdrant", "the embedded Qdrant (Edge) store")
        self.root = root
        self.collection_name = root.name
        self.location = f"edge:{root}"
        self.search_threads = search_threads
        self.on_disk = on_disk
        self.shard: Any = None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        collection_name: str,
        *,
        search_threads: int | None = None,
        on_disk: bool | None = None,
    ) -> EdgeBackend:
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidInputError(f"path must be a folder path, got {type(path).__name__}")
        if (
            not isinstance(collection_name, str)
            or not collection_name
            or any(ch in collection_name for ch in "/\\")
            or collection_name in (".", "..")
        ):
            raise InvalidInputError(f"collection_name must be a plain folder name, got {collection_name!r}")
        return cls(Path(path) / collection_name, search_threads, on_disk)

    # -- schema ----------------------------------------------------------------------------------------

    def read_schema(self) -> CollectionSchema | None:
        schema_file = self.root / SCHEMA_FILE
        if not schema_file.exists():
            shard = self.root / SHARD_DIR
            if shard.exists() and any(shard.iterdir()):
                raise IndexFormatError(
                    f"{self.root} holds a Qdrant Edge shard without {SCHEMA_FILE}: not created by metaembed_rag, "
                    "or its creation was interrupted; delete the folder or use another collection_name"
                )
            return None
        try:
            data = read_json(schema_file)
        except (OSError, json.JSONDecodeError) as exc:
            raise IndexFormatError(f"{schema_file} is unreadable: {exc}") from exc
        return CollectionSchema.from_json(data, str(schema_file))

    def _config(self, schema: CollectionSchema) -> Any:
        qe = self._qe
        vectors = {DENSE_VECTOR: qe.EdgeVectorParams(size=schema.dim, distance=qe.Distance.Dot, on_disk=self.on_disk)}
        for r_c in schema.multivector_budgets:
            vectors[multivector_name(r_c)] = qe.EdgeVectorParams(
                size=schema.dim,
                distance=qe.Distance.Dot,
                on_disk=self.on_disk,
                multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
                # m=0 disables HNSW for the rescoring vectors (the other two arguments are required, unused).
                hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10000),
            )
        sparse = None
        if schema.lexical is not None:
            sparse = {LEXICAL_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf, on_disk=self.on_disk)}
        return qe.EdgeConfig(vectors=vectors, sparse_vectors=sparse, max_search_threads=self.search_threads)

    def check_layout(self, schema: CollectionSchema) -> None:
        try:
            self.shard = self._qe.EdgeShard.load(str(self.root / SHARD_DIR), self._config(schema))
        except Exception as exc:
            raise _edge_error(exc, self.root) from exc

    def create(self, schema: CollectionSchema) -> None:
        if self.root.is_dir() and any(self.root.iterdir()):
            entries = sorted(p.name for p in self.root.iterdir())[:3]
            raise UnsafePathError(
                f"{self.root} exists and is not a Qdrant Edge collection of metaembed-rag (it holds {entries}); "
                "refusing to write into it: choose another path or collection_name"
            )
        if self.root.exists() and not self.root.is_dir():
            raise UnsafePathError(f"{self.root} is a file; refusing to replace it with a Qdrant Edge collection")
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.shard = self._qe.EdgeShard.create(str(self.root / SHARD_DIR), self._config(schema))
        except Exception as exc:
            raise _edge_error(exc, self.root) from exc
        write_json_atomic(self.root / SCHEMA_FILE, schema.to_json())

    def write_schema(self, schema: CollectionSchema) -> None:
        write_json_atomic(self.root / SCHEMA_FILE, schema.to_json())

    # -- points ----------------------------------------------------------------------------------------

    def upsert(self, points: Sequence[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
        qe = self._qe
        self.shard.update(
            qe.UpdateOperation.upsert_points(
                [qe.Point(p, {n: self._vector(x) for n, x in v.items()}, payload) for p, v, payload in points]
            )
        )

    def _vector(self, vector: Any) -> Any:
        if isinstance(vector, Sparse):
            return self._qe.SparseVector(list(vector.indices), list(vector.values))
        return vector

    def delete(self, point_ids: Sequence[str]) -> None:
        self.shard.update(self._qe.UpdateOperation.delete_points(list(point_ids)))

    def retrieve(self, point_ids: Sequence[str], vector_names: Sequence[str]) -> list[PointRecord]:
        records = self.shard.retrieve(list(point_ids), with_payload=True, with_vector=list(vector_names) or False)
        return [PointRecord(str(r.id), dict(r.payload or {}), vectors=dict(r.vector or {})) for r in records]

    def count(self) -> int:
        return int(self.shard.count(self._qe.CountRequest(exact=True)))

    def scroll(self, conditions: Sequence[Condition], offset: Any, limit: int) -> tuple[list[PointRecord], Any]:
        request = self._qe.ScrollRequest(
            offset=offset, limit=limit, filter=self._filter(conditions), with_payload=True, with_vector=False
        )
        records, next_offset = self.shard.scroll(request)
        return [PointRecord(str(r.id), dict(r.payload or {})) for r in records], next_offset

    def _stage(self, stage: Stage, flt: Any) -> dict[str, Any]:
        """The arguments a ``Prefetch`` and a ``QueryRequest`` share for one stage."""
        query = self._qe.Query.Nearest(self._vector(stage.vector), using=stage.using)
        return {"limit": stage.limit, "query": query, "filter": flt, "params": self._params(stage)}

    def _request(self, plan: QueryPlan | FusionPlan, kind: Any) -> Any:
        """A plan as ``kind`` (``QueryRequest``, or ``Prefetch`` inside a fusion), its own prefetches nested."""
        qe = self._qe
        flt = self._filter(plan.conditions)
        extra = {"with_payload": True} if kind is qe.QueryRequest else {}
        if isinstance(plan, FusionPlan):
            rrf = qe.Fusion.Rrf(plan.k, list(plan.weights))
            prefetches = [self._request(p, qe.Prefetch) for p in plan.plans]
            return kind(limit=plan.limit, query=rrf, prefetches=prefetches, filter=flt, **extra)
        inner = None if plan.prefetch is None else [qe.Prefetch(**self._stage(plan.prefetch, flt))]
        return kind(prefetches=inner, **self._stage(plan.final, flt), **extra)

    def query(self, plans: Sequence[QueryPlan | FusionPlan]) -> list[list[PointRecord]]:
        requests = [self._request(plan, self._qe.QueryRequest) for plan in plans]
        results = self.shard.query_batch(self._qe.QueryBatchRequest(requests))
        return [[PointRecord(str(p.id), dict(p.payload or {}), float(p.score)) for p in row] for row in results]

    def _params(self, stage: Stage) -> Any:
        if stage.exact or stage.hnsw_ef is not None:
            return self._qe.SearchParams(hnsw_ef=stage.hnsw_ef, exact=stage.exact)
        return None

    def _filter(self, conditions: Sequence[Condition]) -> Any:
        if not conditions:
            return None
        return self._qe.Filter(must=[self._condition(c) for c in conditions])

    def _condition(self, c: Condition) -> Any:
        qe = self._qe
        if c.kind == "match":
            return qe.FieldCondition(key=c.key, match=qe.MatchValue(c.values[0]))
        if c.kind == "any":
            return qe.FieldCondition(key=c.key, match=qe.MatchAny(list(c.values)))
        if c.kind == "range_eq":
            return qe.FieldCondition(key=c.key, range=qe.RangeFloat(gte=c.values[0], lte=c.values[0]))
        if c.kind == "null":
            return qe.Filter(should=[qe.IsNullCondition(c.key), qe.IsEmptyCondition(c.key)])
        if c.kind == "or":
            return qe.Filter(should=[self._condition(n) for n in c.nested])
        if c.kind == "has_id":
            return qe.HasIdCondition(set(c.values))
        raise AssertionError(f"unknown condition kind {c.kind!r}")

    # -- misc ------------------------------------------------------------------------------------------

    def is_transient(self, exc: BaseException) -> bool:
        return False  # in-process: nothing to retry

    def optimize(self) -> None:
        self.shard.optimize()

    def close(self) -> None:
        if self.shard is not None:
            self.shard.flush()
            self.shard.close()
            self.shard = None


def _edge_error(exc: Exception, root: Path) -> Exception:
    text = str(exc)
    if "WouldBlock" in text or "lock" in text.lower():
        return StoreConnectionError(f"the Qdrant Edge shard in {root} is already open (in this or another process)")
    if "incompatible" in text.lower():
        return IndexFormatError(f"the Qdrant Edge shard in {root} does not match its {SCHEMA_FILE}: {text}")
    return IndexFormatError(f"cannot open the Qdrant Edge shard in {root}: {text}")
