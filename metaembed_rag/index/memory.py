"""``MultiVectorIndex``: the default in-process multi-vector store, exact budgeted MaxSim on CPU or GPU.

Each document has a string id, ``stored_vectors`` vectors (a budget ``r_c`` is a prefix of them) and a JSON
metadata dict. Vectors are stored vector-major ``[R_c, rows, d]`` in float32, float16, bfloat16 or int8 (with a
scale per vector), so every budget prefix is a contiguous slab streamed through large matrix products.

Concurrency: readers never lock for long. Every write builds a new immutable *snapshot* and publishes it
under a lock; a search works on the snapshot it started with. Appends write rows past the end of the
shared buffer (rows no published snapshot shows), deletes and replacements only flip a liveness mask, and
the buffer is compacted into a new one once a quarter of it is dead. So a search never sees a half-written
document and a concurrent write never loses one.

Example:
    >>> import torch
    >>> from metaembed_rag.index import MultiVectorIndex
    >>> index = MultiVectorIndex(dim=8, stored_vectors=4, dtype="bfloat16")
    >>> docs = torch.nn.functional.normalize(torch.randn(3, 4, 8), dim=-1)
    >>> index.add(["a", "b", "c"], docs, [{"page": 1}, {"page": 2}, {"page": 3}])
    >>> hits = index.search(docs[:1, :2], budget=(2, 4), k=2, filter={"page": {"$in": [1, 3]}})
    >>> hits[0][0].id
    'a'
"""

from __future__ import annotations

import copy
import logging
import math
import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .. import compiled_maxsim
from ..budget import Budget
from ..errors import InvalidInputError
from ..exact_topk import (
    INT8_BLOCK_DOCUMENTS,
    INT8_MAX_QUERY_ROWS,
    exact_topk,
    int8_path,
    max_vector_norm,
    pack_int8,
    use_low_precision,
)
from ..scoring import maxsim_vector_major, topk
from .base import (
    MetadataFilter,
    MultiVectorStore,
    SearchHit,
    StoredDocument,
    check_model_identity,
    matches_filter,
)
from .persistence import IndexData, load_index, save_index
from .storage import StorageFormat

if TYPE_CHECKING:  # pragma: no cover
    from ..modeling.model import MetaEmbedModel

logger = logging.getLogger(__name__)

COMPACT_DEAD_FRACTION = 0.25
"""Compact the buffer (drop deleted/replaced rows) once this fraction of its rows is dead."""

GATHER_FRACTION = 0.5
"""A filter keeping fewer than this fraction of rows scores a gathered copy of them instead of all rows."""


@dataclass(frozen=True)
class _Snapshot:
    """An immutable view of the index: rows ``[0, count)`` of the (possibly shared, longer) buffers."""

    values: torch.Tensor  # [R_c, capacity, d] storage dtype, on the index device
    scales: torch.Tensor | None  # [R_c, capacity] float32 (int8 only)
    count: int
    ids: list[str]  # append-only while shared; rows >= count are not part of this snapshot
    metadatas: list[dict[str, Any]]
    alive: torch.Tensor | None  # bool [count] on the CPU; None when every row is live
    live: int

    @property
    def capacity(self) -> int:
        return self.values.shape[1]


@dataclass
class _Int8Pack:
    """FBGEMM blocks of one int8 buffer at one ``r_c``: rows ``[0, count)`` packed (no blocks yet: searched once)."""

    buffer: weakref.ref
    count: int
    blocks: list[tuple[int, int, object]]


class MultiVectorIndex(MultiVectorStore):
    """An in-process multi-vector index with exact budgeted MaxSim search, cascade search and persistence.

    Args:
        dim: vector dimension (the model's ``embedding_dim``).
        stored_vectors: vectors kept per document (64 = every MetaEmbed budget; fewer is smaller but then
            larger ``r_c`` are refused).
        dtype: storage dtype, ``float32``, ``float16``, ``bfloat16`` or ``int8``; scoring accumulates in float32.
        device: where vectors live and scoring runs (``"cpu"``, ``"cuda"``, ``"cuda:1"`` …).
        model_identity: the encoding model's :attr:`~metaembed_rag.MetaEmbedModel.identity`, recorded on save
            and checked on load.

    Example:
        >>> index = MultiVectorIndex(dim=384, stored_vectors=64, dtype="int8")
        >>> len(index), index.stored_vectors, index.dtype
        (0, 64, 'int8')
    """

    def __init__(
        self,
        dim: int,
        stored_vectors: int = 64,
        *,
        dtype: str | torch.dtype = "float32",
        device: str | torch.device = "cpu",
        model_identity: Mapping[str, Any] | None = None,
    ) -> None:
        for name, value in (("dim", dim), ("stored_vectors", stored_vectors)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
        self._dim = dim
        self._stored = stored_vectors
        self._format = StorageFormat.parse(dtype)
        self._device = torch.device(device)
        self.model_identity: dict[str, Any] | None = dict(model_identity) if model_identity else None
        self._lock = threading.RLock()
        self._norm_cache: dict[int, tuple[weakref.ref, int, float]] = {}  # ord -> (buffer, rows measured, max)
        self._int8_packs: dict[int, _Int8Pack] = {}  # r_c -> FBGEMM blocks of the int8 buffer (see exact_topk)
        self._pack_lock = threading.Lock()
        self._mapped: weakref.ref | None = None  # the memory-mapped buffer of an index opened with mmap=True
        self._rows: dict[str, int] = {}
        self._snapshot = self._empty_snapshot(0)

    @classmethod
    def for_model(cls, model: MetaEmbedModel, stored_vectors: int | None = None, **kwargs: Any) -> MultiVectorIndex:
        """An empty index matching ``model`` (its dim, its candidate vector count, its identity)."""
        return cls(
            model.embedding_dim,
            stored_vectors or model.num_candidate_tokens,
            model_identity=model.identity,
            **kwargs,
        )

    # ---------------------------------------------------------------------------------------- properties
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def stored_vectors(self) -> int:
        return self._stored

    @property
    def dtype(self) -> str:
        """The storage dtype's name (``float32``, ``float16``, ``bfloat16``, ``int8``)."""
        return self._format.name

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def ids(self) -> list[str]:
        """Live document ids, in storage order."""
        snap = self._snapshot
        if snap.alive is None:
            return snap.ids[: snap.count]
        return [snap.ids[r] for r in snap.alive.nonzero().flatten().tolist()]

    def _find_ids(self, flt: MetadataFilter) -> list[str]:
        """Live document ids whose metadata passes ``flt``, in storage order."""
        snap = self._snapshot
        rows = self._eligible_rows(snap, flt)
        if rows is None:
            return snap.ids[: snap.count]
        return [snap.ids[r] for r in rows.tolist()]

    @property
    def nbytes(self) -> int:
        """Bytes of stored vectors (and scales) of the live documents."""
        return len(self) * self._format.bytes_per_document(self._stored, self._dim)

    def __len__(self) -> int:
        return self._snapshot.live

    def __contains__(self, doc_id: object) -> bool:
        with self._lock:
            return doc_id in self._rows

    def _where(self) -> str:
        return "the index"

    def __repr__(self) -> str:
        return (
            f"MultiVectorIndex(documents={len(self)}, dim={self._dim}, stored_vectors={self._stored}, "
            f"dtype={self.dtype!r}, device={str(self._device)!r})"
        )

    # --------------------------------------------------------------------------------------------- writes
    def _empty_snapshot(self, capacity: int) -> _Snapshot:
        values = torch.empty(self._stored, capacity, self._dim, dtype=self._format.dtype, device=self._device)
        scales = (
            torch.empty(self._stored, capacity, dtype=torch.float32, device=self._device)
            if self._format.quantised
            else None
        )
        return _Snapshot(values, scales, 0, [], [], None, 0)

    def _add(
        self, ids: list[str], embeddings: torch.Tensor, metas: list[dict[str, Any]], texts: list[str | None]
    ) -> None:  # page texts: the searcher keeps this index's BM25 side (metaembed_rag.lexical)
        values, scales = self._format.encode(embeddings)
        values = values.to(self._device)
        scales = scales.to(self._device) if scales is not None else None
        with self._lock:
            self._append(ids, values, scales, metas)

    def _append(
        self, ids: list[str], values: torch.Tensor, scales: torch.Tensor | None, metas: list[dict[str, Any]]
    ) -> None:
        snap = self._snapshot
        n = len(ids)
        replaced = [self._rows[i] for i in ids if i in self._rows]
        dead = (snap.count - snap.live) + len(replaced)
        if snap.count + n > snap.capacity:
            if dead > COMPACT_DEAD_FRACTION * (snap.count + n):
                snap = self._compacted(snap, exclude=replaced)
                replaced = []
            snap = self._grown(snap, snap.count + n)
        start, stop = snap.count, snap.count + n
        # rows [start, stop) are beyond every published snapshot: writing them disturbs no reader
        snap.values[:, start:stop].copy_(values)
        if scales is not None:
            snap.scales[:, start:stop].copy_(scales)
        ids_list, metas_list = snap.ids, snap.metadatas
        ids_list.extend(ids)
        metas_list.extend(metas)
        alive = snap.alive
        if alive is not None or replaced:
            alive = torch.ones(stop, dtype=torch.bool) if alive is None else torch.cat([alive, alive.new_ones(n)])
            if replaced:
                alive[replaced] = False
        for offset, doc_id in enumerate(ids):
            self._rows[doc_id] = start + offset
        live = snap.live - len(replaced) + n
        self._snapshot = _Snapshot(snap.values, snap.scales, stop, ids_list, metas_list, alive, live)

    def _grown(self, snap: _Snapshot, needed: int) -> _Snapshot:
        """A copy of ``snap`` in new buffers with room for ``needed`` rows (grows geometrically)."""
        capacity = max(needed, int(snap.capacity * 1.5), 16)
        fresh = self._empty_snapshot(capacity)
        fresh.values[:, : snap.count].copy_(snap.values[:, : snap.count])
        if fresh.scales is not None:
            fresh.scales[:, : snap.count].copy_(snap.scales[:, : snap.count])
        return _Snapshot(
            fresh.values,
            fresh.scales,
            snap.count,
            list(snap.ids[: snap.count]),
            list(snap.metadatas[: snap.count]),
            snap.alive,
            snap.live,
        )

    def _compacted(self, snap: _Snapshot, exclude: Sequence[int] = ()) -> _Snapshot:
        """A copy of ``snap`` holding only live rows (minus ``exclude``), in new buffers; updates the row map."""
        alive = torch.ones(snap.count, dtype=torch.bool) if snap.alive is None else snap.alive.clone()
        if exclude:
            alive[list(exclude)] = False
        keep = alive.nonzero().flatten()
        keep_dev = keep.to(self._device)
        values = snap.values[:, : snap.count].index_select(1, keep_dev)
        scales = snap.scales[:, : snap.count].index_select(1, keep_dev) if snap.scales is not None else None
        rows = keep.tolist()
        ids = [snap.ids[r] for r in rows]
        metas = [snap.metadatas[r] for r in rows]
        self._rows = {doc_id: row for row, doc_id in enumerate(ids)}
        return _Snapshot(values, scales, len(ids), ids, metas, None, len(ids))

    def _delete(self, ids: list[str]) -> None:
        with self._lock:
            missing = [i for i in ids if i not in self._rows]
            if missing:
                raise self._not_found(missing)
            snap = self._snapshot
            alive = torch.ones(snap.count, dtype=torch.bool) if snap.alive is None else snap.alive.clone()
            alive[[self._rows.pop(i) for i in ids]] = False
            snap = _Snapshot(
                snap.values, snap.scales, snap.count, snap.ids, snap.metadatas, alive, snap.live - len(ids)
            )
            if snap.live == 0:
                snap = self._empty_snapshot(0)
                self._rows = {}
            elif snap.count - snap.live > COMPACT_DEAD_FRACTION * snap.count:
                snap = self._compacted(snap)
            self._snapshot = snap

    def reserve(self, documents: int) -> None:
        """Pre-allocate room for ``documents`` more documents (avoids regrowing during a large ingest)."""
        if isinstance(documents, bool) or not isinstance(documents, int) or documents < 0:
            raise InvalidInputError(f"documents must be a non-negative integer, got {documents!r}")
        with self._lock:
            snap = self._snapshot
            if snap.count + documents > snap.capacity:
                grown = self._grown(snap, snap.count + documents)
                self._snapshot = grown

    def clear(self) -> None:
        """Remove every document."""
        with self._lock:
            self._rows = {}
            self._snapshot = self._empty_snapshot(0)

    def to(self, device: str | torch.device) -> MultiVectorIndex:
        """Move the vectors to ``device`` (in place; returns ``self``)."""
        device = torch.device(device)
        with self._lock:
            snap = self._snapshot
            values = snap.values[:, : snap.count].to(device).contiguous()
            scales = snap.scales[:, : snap.count].to(device).contiguous() if snap.scales is not None else None
            self._device = device
            self._snapshot = _Snapshot(
                values,
                scales,
                snap.count,
                list(snap.ids[: snap.count]),
                list(snap.metadatas[: snap.count]),
                snap.alive,
                snap.live,
            )
        return self

    # ---------------------------------------------------------------------------------------------- reads
    def warm_up(self, budget: Budget, queries: int = 1) -> threading.Thread | None:
        """Start loading the compiled scoring kernel in the background if a search of ``queries`` queries at
        ``budget`` will use it (``None`` otherwise): a fresh process can overlap its 0.5 s with the model load.

        Example:
            >>> MultiVectorIndex(dim=8, stored_vectors=4).warm_up(Budget(2, 4)) is None  # too small to use it
            True
        """
        snap = self._snapshot
        values = snap.values[: min(budget.r_c, self.stored_vectors), : snap.count]
        if not compiled_maxsim.preferred(values, queries * budget.r_q):
            return None
        return compiled_maxsim.warm_up_in_background(values.dtype)

    def _get(self, ids: list[str]) -> list[StoredDocument]:
        """The stored documents (float32 CPU vectors ``[R_c, d]``, as stored: int8/bf16 are dequantised)."""
        with self._lock:
            missing = [i for i in ids if i not in self._rows]
            if missing:
                raise self._not_found(missing)
            rows = [self._rows[i] for i in ids]
            snap = self._snapshot
        index = torch.tensor(rows, device=snap.values.device)
        values = snap.values.index_select(1, index)
        scales = snap.scales.index_select(1, index) if snap.scales is not None else None
        vectors = self._format.decode(values, scales).cpu()
        return [
            StoredDocument(doc_id, vectors[k], copy.deepcopy(snap.metadatas[row]))
            for k, (doc_id, row) in enumerate(zip(ids, rows, strict=False))
        ]

    def _lookup_metadata(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        with self._lock:
            snap = self._snapshot
            rows = {i: self._rows[i] for i in ids if i in self._rows}
        return {i: copy.deepcopy(snap.metadatas[r]) for i, r in rows.items()}

    def _eligible_rows(self, snap: _Snapshot, flt: MetadataFilter) -> torch.Tensor | None:
        """Rows that are live and pass ``flt`` (CPU int64), or ``None`` for "all ``count`` rows"."""
        if flt is None:
            return None if snap.alive is None else snap.alive.nonzero().flatten()
        alive = snap.alive
        keep = [
            row
            for row in range(snap.count)
            if (alive is None or alive[row]) and matches_filter(snap.metadatas[row], flt)
        ]
        return torch.tensor(keep, dtype=torch.long)

    def _score(
        self, snap: _Snapshot, queries: torch.Tensor, budget: Budget, rows: torch.Tensor | None, normalize: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Scores ``[n_q, m]`` over ``rows`` (all rows when ``None``) and the row of each column (or ``None``)."""
        values = snap.values[: budget.r_c]
        scales = snap.scales[: budget.r_c] if snap.scales is not None else None
        if rows is not None and rows.numel() < GATHER_FRACTION * snap.count:
            index = rows.to(snap.values.device)
            picked = values.index_select(1, index)
            picked_scales = scales.index_select(1, index) if scales is not None else None
            return maxsim_vector_major(queries, picked, budget, scales=picked_scales, normalize=normalize), rows
        scores = maxsim_vector_major(
            queries,
            values[:, : snap.count],
            budget,
            scales=scales[:, : snap.count] if scales is not None else None,
            normalize=normalize,
        )
        if rows is not None and rows.numel() < snap.count:
            mask = torch.ones(snap.count, dtype=torch.bool)
            mask[rows] = False
            scores[:, mask.to(scores.device)] = -math.inf
        return scores, None

    def _top_low_precision(
        self, snap: _Snapshot, queries: torch.Tensor, budget: Budget, rows: torch.Tensor | None, k: int, normalize: bool
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Exact top-``k`` through a low-precision selection pass and a float32 re-score (see :mod:`exact_topk`).

        ``None`` where that path does not apply (see :func:`~metaembed_rag.exact_topk.use_low_precision`);
        the caller then scores in float32. int8 storage on CPUs without native bfloat16 goes through integer
        GEMM over prepacked blocks, which are built at the second search of the same stored rows at this
        ``r_c`` (a one-off search, e.g. one CLI call, does not pay for packing) and extended as rows are added;
        they take about the memory of the int8 vectors they pack, per ``r_c`` searched, so a memory-mapped index
        is not packed (its resident memory stays bounded).
        """
        eligible = snap.count if rows is None else rows.numel()
        if rows is not None and eligible >= GATHER_FRACTION * snap.count:
            return None  # a large filtered share: the float32 path masks instead of copying the rows
        if not use_low_precision(snap.values, eligible, k, budget.r_q):
            return None
        values = snap.values[: budget.r_c, : snap.count]
        scales = snap.scales[: budget.r_c, : snap.count] if snap.scales is not None else None
        extra: dict[str, Any] = {}
        if int8_path(snap.values, budget.r_q):
            if rows is not None or queries.shape[0] * budget.r_q > INT8_MAX_QUERY_ROWS:
                return None  # gathered rows have no packed blocks; large batches are as fast in float32
            if self._mapped is not None and self._mapped() is snap.values:
                return None  # packing would copy a memory-mapped index into memory: stream it in float32
            packed = self._packed_int8(snap, budget.r_c)
            if packed is None:
                return None
            extra = {"packed": packed, "max_l1": self._max_norm(snap, ord=1)}
        if rows is not None:
            values = values.index_select(1, rows)
            scales = scales.index_select(1, rows) if scales is not None else None
        top, picked, _ = exact_topk(
            queries, values, budget, k, scales=scales, normalize=normalize, max_norm=self._max_norm(snap), **extra
        )
        return top, (picked if rows is None else rows[picked])

    def _packed_int8(self, snap: _Snapshot, r_c: int) -> list[tuple[int, int, object]] | None:
        """FBGEMM blocks of ``snap``'s rows at ``r_c`` (``None`` at the first search of these rows)."""
        with self._pack_lock:
            return self._packed_int8_locked(snap, r_c)

    def _packed_int8_locked(self, snap: _Snapshot, r_c: int) -> list[tuple[int, int, object]] | None:
        pack = self._int8_packs.get(r_c)
        if pack is None or pack.buffer() is not snap.values or pack.count > snap.count:
            # first search of these rows (or an older snapshot after a concurrent add): note it, float32 this time
            self._int8_packs[r_c] = _Int8Pack(weakref.ref(snap.values), snap.count, [])
            return None
        if pack.count < snap.count or not pack.blocks:
            # rows [0, count) of a buffer never change: keep full blocks, re-pack the last partial one
            keep = [b for b in pack.blocks if b[1] - b[0] == INT8_BLOCK_DOCUMENTS]
            start = keep[-1][1] if keep else 0
            fresh = pack_int8(
                snap.values[:r_c, start : snap.count], snap.scales[:r_c, start : snap.count], r_c, INT8_BLOCK_DOCUMENTS
            )
            pack.blocks = keep + [(a + start, b + start, w) for a, b, w in fresh]
            pack.count = snap.count
        return list(pack.blocks)

    def _max_norm(self, snap: _Snapshot, ord: int = 2) -> float:
        """The largest stored vector norm (L2, or L1 with ``ord=1``) of ``snap`` (all ``R_c`` vectors), kept up
        to date incrementally.

        Rows ``[0, count)`` of a buffer never change once published (appends write past ``count``; compaction,
        growth and moves make a new buffer), so a buffer's bound only needs the rows added since it was measured.
        """
        cached = self._norm_cache.get(ord)
        if cached is not None and cached[0]() is snap.values and cached[1] <= snap.count:
            start, bound = cached[1], cached[2]
        else:
            start, bound = 0, 0.0
        if start < snap.count:
            bound = max(bound, max_vector_norm(snap.values, snap.scales, start, snap.count, ord=ord))
        self._norm_cache[ord] = (weakref.ref(snap.values), snap.count, bound)
        return bound

    def _search(
        self,
        queries: torch.Tensor,
        b: Budget,
        k: int,
        flt: MetadataFilter,
        coarse: tuple[Budget, int] | None,
        normalize: bool,
    ) -> list[list[SearchHit]]:
        snap = self._snapshot  # everything below works on this immutable snapshot
        n_q = queries.shape[0]
        rows = self._eligible_rows(snap, flt)
        eligible = snap.count if rows is None else rows.numel()
        if eligible == 0:
            return [[] for _ in range(n_q)]
        if coarse is None:
            fast = self._top_low_precision(snap, queries, b, rows, min(k, eligible), normalize)
            if fast is not None:
                return self._hits(snap, *fast)
            scores, columns = self._score(snap, queries, b, rows, normalize)
            values, picked = topk(scores, min(k, eligible))
            row_ids = picked.cpu() if columns is None else columns[picked.cpu()]
            return self._hits(snap, values.cpu(), row_ids)
        coarse_budget, n_candidates = coarse
        coarse_scores, columns = self._score(snap, queries, coarse_budget, rows, normalize=False)
        _, picked = topk(coarse_scores, min(n_candidates, eligible))
        candidates = picked.cpu() if columns is None else columns[picked.cpu()]  # [n_q, n_cand] rows
        union, inverse = torch.unique(candidates, return_inverse=True)
        fine, _ = self._score(snap, queries, b, union, normalize)
        if fine.shape[1] != union.numel():  # _score scored every row: keep the union's columns
            fine = fine[:, union.to(fine.device)]
        masked = torch.full_like(fine, -math.inf)
        inverse = inverse.to(fine.device)
        masked.scatter_(1, inverse, fine.gather(1, inverse))
        values, picked = topk(masked, min(k, candidates.shape[1]))
        return self._hits(snap, values.cpu(), union[picked.cpu()])

    @staticmethod
    def _hits(snap: _Snapshot, values: torch.Tensor, rows: torch.Tensor) -> list[list[SearchHit]]:
        results = []
        for score_row, id_row in zip(values.tolist(), rows.tolist(), strict=False):
            results.append(
                [
                    SearchHit(snap.ids[r], float(s), copy.deepcopy(snap.metadatas[r]))
                    for s, r in zip(score_row, id_row, strict=False)
                    if s != -math.inf
                ]
            )
        return results

    # ------------------------------------------------------------------------------------------ persistence
    def _data(self) -> IndexData:
        snap = self._snapshot
        if snap.alive is None:
            values = snap.values[:, : snap.count]
            scales = snap.scales[:, : snap.count] if snap.scales is not None else None
            ids, metas = snap.ids[: snap.count], snap.metadatas[: snap.count]
        else:
            keep = snap.alive.nonzero().flatten()
            values = snap.values[:, : snap.count].index_select(1, keep.to(snap.values.device))
            scales = (
                snap.scales[:, : snap.count].index_select(1, keep.to(snap.values.device))
                if snap.scales is not None
                else None
            )
            ids = [snap.ids[r] for r in keep.tolist()]
            metas = [snap.metadatas[r] for r in keep.tolist()]
        return IndexData(
            self._dim, self._stored, self._format, list(ids), list(metas), values, scales, self.model_identity
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index to the folder ``path`` atomically (see :mod:`metaembed_rag.index.persistence`)."""
        return save_index(self._data(), path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        device: str | torch.device = "cpu",
        mmap: bool = False,
        model: MetaEmbedModel | Mapping[str, Any] | None = None,
        verify: bool = True,
    ) -> MultiVectorIndex:
        """Load a saved index.

        Args:
            device: where to place the vectors.
            mmap: map the vectors from disk instead of reading them (CPU only; the index can then be larger
                than RAM; adding to it copies it into memory).
            model: a model (or its ``identity``) the index must belong to; another dim or another model
                raises :class:`~metaembed_rag.errors.IncompatibleModelError`.
            verify: check the vectors file against its recorded SHA-256 (also with ``mmap``; stored vectors are
                always checked to be finite).
        """
        data = load_index(path, mmap=mmap, verify=verify)
        if model is not None:
            check_model_identity(data.model_identity, data.dim, model)
        device = torch.device(device)
        if mmap and device.type != "cpu":
            logger.info("mmap=True with device=%s: the vectors are copied to the device", device)
        index = cls(
            data.dim, data.stored_vectors, dtype=data.storage.name, device=device, model_identity=data.model_identity
        )
        values = data.values if device.type == "cpu" else data.values.to(device)
        scales = data.scales
        if scales is not None and device.type != "cpu":
            scales = scales.to(device)
        count = len(data.ids)
        index._rows = {doc_id: row for row, doc_id in enumerate(data.ids)}
        index._snapshot = _Snapshot(values, scales, count, data.ids, data.metadatas, None, count)
        if mmap and device.type == "cpu":
            index._mapped = weakref.ref(values)
        return index
