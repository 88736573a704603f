"""``MetaEmbedSearcher``: a model and a multi-vector store behind two calls, ``add_documents`` and ``search``.

This is the retrieval facade the LangChain/LlamaIndex adapters and the CLI build on. It encodes documents and
queries with a :class:`~metaembed_rag.MetaEmbedModel` and keeps them in any
:class:`~metaembed_rag.index.base.MultiVectorStore` (the in-process :class:`MultiVectorIndex` by default).

Document ids: when not given, each document's id is a stable content hash (SHA-256 of its text, its image's
pixels and its metadata, 32 hex digits), so adding the same document twice stores it once, and identical
inputs within one call map to the same id.

Long documents: a text longer than the model reads (:meth:`MetaEmbedModel.text_capacity`) is split into
overlapping windows, each stored as its own multi-vector unit linked to its page; a search ranks pages by their
best window and lists each page once (see :mod:`metaembed_rag.windows`). Deleting or replacing a page removes
all its windows.

Example:
    >>> from metaembed_rag.searcher import MetaEmbedSearcher
    >>> searcher = MetaEmbedSearcher("starter")
    >>> ids = searcher.add_documents(
    ...     ["Paris is the capital of France.", "Bees dance to show where flowers are."],
    ...     metadatas=[{"source": "geo.txt"}, {"source": "bees.txt"}],
    ... )
    >>> hits = searcher.search("capital of France?", budget=(8, 16), k=1)
    >>> hits[0].metadata["source"]
    'geo.txt'
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .budget import Budget, BudgetLike
from .errors import DuplicateIdError, IncompatibleModelError, InvalidInputError
from .fusion import HybridOptions, fuse
from .index.base import (
    Cascade,
    MetadataFilter,
    MultiVectorStore,
    SearchHit,
    check_model_identity,
    matches_filter,
    validate_filter,
    validate_metadata,
)
from .index.memory import MultiVectorIndex
from .inputs import EncodeInput, ModelInput, to_model_inputs
from .lexical import LexicalIndex, ids_digest
from .modeling.loading import resolve_model
from .modeling.model import MetaEmbedModel
from .results import TEXT_KEY
from .validation import check_k
from .windows import (
    WINDOW_KEY,
    lookup_metadata,
    page_hits,
    stored_page_ids,
    stored_window_ids,
    window_id,
    window_info,
)

LEXICAL_DIR = "lexical"
"""Sub-folder of a saved index holding its lexical (BM25) side."""

logger = logging.getLogger(__name__)


def document_id(item: ModelInput, metadata: Mapping[str, Any] | None = None) -> str:
    """The stable id of a document: SHA-256 of its text, image pixels and metadata (32 hex digits).

    Example:
        >>> document_id(ModelInput(text="hello")) == document_id(ModelInput(text="hello"))
        True
    """
    digest = hashlib.sha256()
    digest.update(b"text\0" + (item.text or "").encode("utf-8") + b"\0")
    if item.image is not None:
        digest.update(f"image\0{item.image.mode}\0{item.image.size}\0".encode())
        digest.update(item.image.tobytes())
    digest.update(json.dumps(dict(metadata or {}), sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()[:32]


class MetaEmbedSearcher:
    """Encode, store and search documents with one MetaEmbed model.

    Args:
        model: a :class:`~metaembed_rag.MetaEmbedModel`, a checkpoint path or hub id, or ``None`` for the
            package's starter model.
        index: the store to use; ``None`` creates an empty :class:`MultiVectorIndex` for the model (its dim,
            64 stored vectors or the model's candidate count if smaller, float32, CPU).
        batch_size: documents encoded per forward pass.
        windows: split texts longer than the model reads into windows (default); ``False`` encodes the first
            :meth:`~MetaEmbedModel.text_capacity` tokens only, with a warning (the behaviour before windows).
        window_tokens: tokens per window (default and maximum: the model's text capacity).
        window_overlap: tokens shared by consecutive windows (default a quarter of a window).
        max_windows: windows per page at most (default 256); the rest of a longer page is left out, with a warning.
        lexical: the BM25 side for hybrid search. ``None``: a new one for an empty index; for an index that
            already holds documents it is built from their stored text at the first hybrid search.
    """

    def __init__(
        self,
        model: MetaEmbedModel | str | None = None,
        index: MultiVectorStore | None = None,
        *,
        batch_size: int = 16,
        windows: bool = True,
        window_tokens: int | None = None,
        window_overlap: int | None = None,
        max_windows: int | None = None,
        lexical: LexicalIndex | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
        self._model = resolve_model(model)
        if index is None:
            index = MultiVectorIndex.for_model(self._model, stored_vectors=min(64, self._model.num_candidate_tokens))
        elif not isinstance(index, MultiVectorStore):
            raise InvalidInputError(f"index must be a MultiVectorStore, got {type(index).__name__}")
        if index.dim != self._model.embedding_dim:
            raise IncompatibleModelError(
                f"the index stores dim {index.dim} but the model embeds in dim {self._model.embedding_dim}"
            )
        if index.stored_vectors > self._model.num_candidate_tokens:
            raise IncompatibleModelError(
                f"the index stores {index.stored_vectors} vectors per document but the model makes only "
                f"{self._model.num_candidate_tokens}"
            )
        identity = getattr(index, "model_identity", None)
        if identity:
            check_model_identity(identity, index.dim, self._model)
        elif isinstance(index, MultiVectorIndex) and len(index) == 0:
            index.model_identity = dict(self._model.identity)
        self._index = index
        self.batch_size = batch_size
        self.windows = bool(windows)
        self.window_tokens = window_tokens
        self.window_overlap = window_overlap
        self.max_windows = max_windows
        if lexical is not None and not isinstance(lexical, LexicalIndex):
            raise InvalidInputError(f"lexical must be a LexicalIndex or None, got {type(lexical).__name__}")
        if lexical is None and not getattr(index, "has_lexical", False):  # else the store keeps BM25 itself
            lexical = LexicalIndex() if len(index) == 0 else None
        self._lexical = lexical
        if self.windows:  # check the window settings now rather than at the first add
            self._model.split_document("", window_tokens=window_tokens, overlap=window_overlap, max_windows=max_windows)

    @property
    def model(self) -> MetaEmbedModel:
        return self._model

    @property
    def index(self) -> MultiVectorStore:
        return self._index

    def __len__(self) -> int:
        return len(self._index)

    def add_documents(
        self,
        inputs: EncodeInput | Sequence[EncodeInput],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        *,
        show_progress: bool | None = None,
    ) -> list[str]:
        """Encode and store documents (text, images or (image, text) pairs); returns their ids, in order.

        Documents whose id already exists are replaced; an id of ``None`` (or no ``ids``) is the document's content
        hash (:func:`document_id`). Everything is validated before encoding.
        """
        items = to_model_inputs(inputs)
        n = len(items)
        if metadatas is None:
            metas: list[dict[str, Any]] = [{} for _ in items]
        else:
            if isinstance(metadatas, Mapping) or not isinstance(metadatas, Sequence):
                raise InvalidInputError("metadatas must be a list of dicts, one per document")
            if len(metadatas) != n:
                raise InvalidInputError(f"got {n} documents but {len(metadatas)} metadata dicts")
            metas = [validate_metadata(m, f"document {i}") for i, m in enumerate(metadatas)]
        if ids is None:
            all_ids = [document_id(item, meta) for item, meta in zip(items, metas, strict=False)]
        else:
            if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence) or len(ids) != n:
                raise InvalidInputError(f"ids must be a list of {n} strings, one per document")
            all_ids = [
                document_id(item, meta) if doc_id is None else doc_id
                for doc_id, item, meta in zip(ids, items, metas, strict=True)
            ]
            if len(set(all_ids)) != n:
                raise DuplicateIdError("duplicate ids in one add_documents call")
        for position, meta in enumerate(metas):
            if WINDOW_KEY in meta:
                raise InvalidInputError(f"metadata key {WINDOW_KEY!r} of document {position} is reserved for windows")
        first: dict[str, int] = {}
        for position, doc_id in enumerate(all_ids):
            first.setdefault(doc_id, position)
        keep = sorted(first.values())  # identical generated ids = identical documents: encode once
        unit_ids, unit_inputs, unit_metas, unit_texts = [], [], [], []
        page_texts = {all_ids[i]: items[i].text or str(metas[i].get("text") or "") for i in keep}
        for i in keep:
            for unit in self._units(all_ids[i], items[i], metas[i]):
                unit_ids.append(unit[0])
                unit_inputs.append(unit[1])
                unit_metas.append(unit[2])
                unit_texts.append(page_texts.get(unit[0]) or None)  # the page's text, on its window 0 only
        page_ids = [all_ids[i] for i in keep]
        before = stored_window_ids(self._index, page_ids)
        embeddings = self._model.encode_document(unit_inputs, batch_size=self.batch_size, show_progress=show_progress)
        self._index.add(unit_ids, embeddings, unit_metas, texts=unit_texts)
        written = set(unit_ids)
        stale = [w for page in page_ids for w in before.get(page, []) if w not in written]
        if stale:  # a replaced page now has fewer windows
            self._index.delete(stale)
        if self._lexical is not None:
            self._lexical.add(page_ids, [page_texts[p] for p in page_ids])
        logger.debug("added %d documents as %d windows", len(keep), len(unit_ids))
        return all_ids

    def add_texts(
        self,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str] | None = None,
        *,
        show_progress: bool | None = None,
    ) -> list[str]:
        """Encode and store plain texts, each kept in its metadata under ``"text"`` to be returned with results.

        An empty text, a metadata count that differs from the texts', or metadata that already has a ``"text"``
        key (it would be overwritten) raises :class:`~metaembed_rag.errors.InvalidInputError`.
        """
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
            raise InvalidInputError(f"texts must be a list of strings, got {type(texts).__name__}")
        texts = list(texts)
        for position, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise InvalidInputError(f"text #{position} is empty or not a string ({type(text).__name__})")
        given = [{} for _ in texts] if metadatas is None else [dict(m or {}) for m in metadatas]
        if len(given) != len(texts):
            raise InvalidInputError(f"got {len(texts)} texts but {len(given)} metadata objects")
        for position, metadata in enumerate(given):
            if TEXT_KEY in metadata:
                raise InvalidInputError(
                    f"metadata #{position} has the key {TEXT_KEY!r}, which holds the text itself; rename it"
                )
            metadata[TEXT_KEY] = texts[position]
        return self.add_documents(
            [ModelInput(text=t) for t in texts],
            ids=list(ids) if ids is not None else None,
            metadatas=given,
            show_progress=show_progress,
        )

    def _units(self, doc_id: str, item: ModelInput, meta: dict[str, Any]) -> list[tuple[str, ModelInput, dict]]:
        """The stored units of one document: itself, or its windows when its text is longer than the model reads."""
        if not self.windows or not item.text or item.image is not None:
            return [(doc_id, item, meta)]
        plan = self._model.split_document(
            item.text, window_tokens=self.window_tokens, overlap=self.window_overlap, max_windows=self.max_windows
        )
        if plan.capped:
            logger.warning(
                "document %s is too long: only its first %d of %d characters (%d windows, the max_windows limit) "
                "are indexed",
                doc_id,
                plan.covered_chars,
                len(item.text),
                plan.count,
            )
        if plan.count == 1:
            return [(doc_id, item, meta)]
        units = []
        for window in plan.windows:
            link = {
                "page": doc_id,
                "index": window.index,
                "count": plan.count,
                "start": window.start,
                "end": window.end,
                "text": window.text,
            }
            stored = dict(meta) if window.index == 0 else {k: v for k, v in meta.items() if k != "text"}
            stored[WINDOW_KEY] = link
            units.append((window_id(doc_id, window.index), ModelInput(text=window.text), stored))
        return units

    def _encode_queries(self, queries: Sequence[EncodeInput] | Sequence[ModelInput]):
        return self._model.encode_query(queries, batch_size=max(self.batch_size, 32), show_progress=False)

    def search(
        self,
        query: EncodeInput,
        *,
        budget: BudgetLike = (8, 16),
        k: int = 5,
        filter: MetadataFilter = None,
        cascade: Cascade = None,
        normalize: bool = True,
        hybrid: bool | dict | HybridOptions | None = None,
    ) -> list[SearchHit]:
        """The ``k`` best documents for one query (text, image, or an (image, text) pair).

        Scores are normalised (divided by ``r_q``, in ``[-1, 1]``) unless ``normalize=False``. With ``hybrid``
        (``True``, or :class:`~metaembed_rag.fusion.HybridOptions` / a dict of them) the multi-vector ranking is
        fused with BM25 over the page texts; the score is then the fused score and ``metadata["hybrid"]`` holds
        both ranks and scores.
        """
        return self.search_batch(
            [query], budget=budget, k=k, filter=filter, cascade=cascade, normalize=normalize, hybrid=hybrid
        )[0]

    def search_batch(
        self,
        queries: Sequence[EncodeInput],
        *,
        budget: BudgetLike = (8, 16),
        k: int = 5,
        filter: MetadataFilter = None,
        cascade: Cascade = None,
        normalize: bool = True,
        hybrid: bool | dict | HybridOptions | None = None,
    ) -> list[list[SearchHit]]:
        """:meth:`search` for several queries at once (one list of hits per query).

        ``k`` and ``budget`` are checked before anything else, so bad arguments raise on an empty index too.
        """
        if isinstance(queries, (str, bytes)) or not isinstance(queries, Sequence):
            raise InvalidInputError("search_batch takes a list of queries; use search() for one")
        check_k(k)
        Budget.parse(budget).validate(
            max_query=self._model.num_query_tokens, max_candidate=self._model.num_candidate_tokens
        )
        options = HybridOptions.parse(hybrid)
        items = to_model_inputs(list(queries))
        if options is not None and any(not item.text for item in items):
            raise InvalidInputError("a hybrid search needs a text query (BM25 cannot read an image)")
        if len(self._index) == 0:
            return [[] for _ in queries]
        embeddings = self._encode_queries(items)
        if options is None:
            return self._page_search(
                embeddings, budget=budget, k=k, filter=filter, cascade=cascade, normalize=normalize
            )
        if options.method == "rrf" and getattr(self._index, "fuses_pages", False):
            return self._store_fused(
                embeddings, [item.text or "" for item in items], budget, k, filter, cascade, options
            )
        dense = self._page_search(
            embeddings,
            budget=budget,
            k=max(k, options.candidates),
            filter=filter,
            cascade=cascade,
            normalize=normalize,
        )
        return [
            self._fused(item.text or "", hits, k=k, filter=filter, options=options)
            for item, hits in zip(items, dense, strict=True)
        ]

    def search_by_vectors(
        self,
        query_vectors: torch.Tensor,
        *,
        budget: BudgetLike = (8, 16),
        k: int = 5,
        filter: MetadataFilter = None,
        cascade: Cascade = None,
        normalize: bool = True,
    ) -> list[SearchHit]:
        """The ``k`` best documents for one query given as vectors ``[R_q, dim]`` (used as given, not re-normalised;
        the first ``r_q`` of them are scored, so ``R_q >= r_q``). No hybrid: BM25 needs the query text."""
        if not isinstance(query_vectors, torch.Tensor) or query_vectors.ndim != 2:
            raise InvalidInputError("query_vectors must be a tensor [R_q, dim]")
        if len(self._index) == 0:
            return []
        return self._page_search(
            query_vectors[None], budget=budget, k=k, filter=filter, cascade=cascade, normalize=normalize
        )[0]

    # ------------------------------------------------------------------------------------------- hybrid
    @property
    def lexical_if_built(self) -> LexicalIndex | None:
        """The BM25 side if it exists yet (``None`` for an older index until a hybrid search builds it)."""
        return self._lexical

    @property
    def lexical(self) -> LexicalIndex:
        """The BM25 side (built from the stored page texts on first use for an index made without one)."""
        if self._lexical is None:
            self._lexical = build_lexical(self._index)
        return self._lexical

    def _store_fused(self, embeddings, texts, budget, k, filter, cascade, options) -> list[list[SearchHit]]:
        """Hybrid search fused inside the store in one query (Qdrant: prefetch + RRF), for a store where that
        ranks pages as the in-process fusion does (every page one point: ``fuses_pages``)."""
        rows = self._index.hybrid_search(
            embeddings,
            texts,
            budget=budget,
            k=k,
            filter=filter,
            cascade=cascade,
            rrf_k=options.k,
            weights=(options.dense_weight, options.lexical_weight),
            candidates=options.candidates,
        )
        return [
            [SearchHit(h.id, h.score, {**h.metadata, "hybrid": {"fused_in": "store", **_NO_RANKS}}) for h in row]
            for row in rows
        ]

    def _lexical_hits(self, query: str, n: int, flt: Any) -> list[tuple[str, float]]:
        if getattr(self._index, "has_lexical", False):  # the store keeps BM25 itself (Qdrant's sparse vector)
            return [(hit.id, hit.score) for hit in self._index.lexical_search([query], k=n, filter=flt)[0]]
        ranking = self.lexical.ranking(query)
        if flt is None:
            return ranking[:n]
        validate_filter(flt)
        kept: list[tuple[str, float]] = []
        for start in range(0, len(ranking), 4 * n):
            chunk = ranking[start : start + 4 * n]
            metas = lookup_metadata(self._index, [doc_id for doc_id, _ in chunk])
            kept.extend(pair for pair in chunk if pair[0] in metas and matches_filter(metas[pair[0]], flt))
            if len(kept) >= n:
                break
        return kept[:n]

    def _fused(self, query: str, dense: list[SearchHit], *, k: int, filter: Any, options: HybridOptions):
        lexical = self._lexical_hits(query, options.candidates, filter)
        dense_pairs = [(hit.id, hit.score) for hit in dense]
        fused = fuse(
            [dense_pairs, lexical],
            method=options.method,
            k=options.k,
            weights=[options.dense_weight, options.lexical_weight],
        )[:k]
        by_id = {hit.id: hit for hit in dense}
        dense_rank = {doc_id: rank for rank, (doc_id, _) in enumerate(dense_pairs, 1)}
        lexical_rank = {doc_id: (rank, score) for rank, (doc_id, score) in enumerate(lexical, 1)}
        missing = lookup_metadata(self._index, [doc_id for doc_id, _ in fused if doc_id not in by_id])
        hits = []
        for doc_id, score in fused:
            if doc_id in by_id:
                metadata = dict(by_id[doc_id].metadata)
            else:
                metadata = dict(missing.get(doc_id, {}))
                info = window_info(metadata)
                if info is not None:  # a lexical-only hit: show its first window
                    metadata[WINDOW_KEY] = {key: v for key, v in info.items() if key != "text"}
                    metadata["window_text"] = info.get("text", "")
            metadata["hybrid"] = {
                "dense_rank": dense_rank.get(doc_id),
                "dense_score": by_id[doc_id].score if doc_id in by_id else None,
                "bm25_rank": lexical_rank.get(doc_id, (None, None))[0],
                "bm25_score": lexical_rank.get(doc_id, (None, None))[1],
            }
            hits.append(SearchHit(doc_id, float(score), metadata))
        return hits

    def _page_search(self, embeddings, *, budget, k, filter, cascade, normalize) -> list[list[SearchHit]]:
        """The ``k`` best pages per query: window hits are fetched until ``k`` distinct pages are found (exact:
        a page not among them has every window below the last one fetched)."""
        rows = len(self._index)
        fetch = min(rows, k * 4)
        while True:
            plan = cascade
            if cascade is not None and isinstance(cascade, (tuple, list)) and len(cascade) == 2:
                n = cascade[1]
                if isinstance(n, int) and not isinstance(n, bool) and n >= k:
                    plan = (cascade[0], max(n, fetch))
            raw = self._index.search(
                embeddings, budget=budget, k=max(1, fetch), filter=filter, cascade=plan, normalize=normalize
            )
            grouped = [page_hits(self._index, hits, k) for hits in raw]
            short = any(len(g) < k and len(h) >= fetch for g, h in zip(grouped, raw, strict=True))
            if not short or fetch >= rows:
                return grouped
            fetch = min(rows, fetch * 4)

    def delete(self, ids: Sequence[str]) -> None:
        """Remove documents by id, each with all its windows (unknown ids raise and nothing is removed)."""
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
            raise InvalidInputError(f"ids must be a list of strings, got {type(ids).__name__}")
        found = stored_window_ids(self._index, [i for i in ids if isinstance(i, str)])
        if len(found) < len(set(ids)):
            self._index.delete(ids)  # raises the store's own DocumentNotFoundError, removing nothing
        expanded = list(dict.fromkeys(w for doc_id in ids for w in found[doc_id]))
        self._index.delete(expanded)
        if self._lexical is not None:
            self._lexical.delete(found[doc_id][0] for doc_id in ids)

    def page_ids(self, ids: Sequence[str]) -> dict[str, list[str]]:
        """For each stored id of ``ids``: every stored id of its page (window 0 first); unknown ids left out."""
        return stored_window_ids(self._index, ids)

    def save(self, path: str | os.PathLike) -> Path:
        """Save the index (atomically); the model is not copied, only its identity is recorded."""
        save = getattr(self._index, "save", None)
        if save is None:
            raise InvalidInputError(f"{type(self._index).__name__} persists on its own and has no save()")
        saved = Path(save(path))
        if self._lexical is not None:
            self._lexical.save(saved / LEXICAL_DIR)
        return saved

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        model: MetaEmbedModel | str | None = None,
        *,
        device: str = "cpu",
        mmap: bool = False,
        batch_size: int = 16,
        **options: Any,
    ) -> MetaEmbedSearcher:
        """Load a saved index with ``model`` (default: the starter model); a model mismatch is refused.

        ``options`` are the constructor's keyword options (``windows``, ``window_tokens`` …)."""
        resolved = resolve_model(model)
        index = MultiVectorIndex.load(path, device=device, mmap=mmap, model=resolved)
        if "lexical" not in options:
            options["lexical"] = load_lexical(Path(path) / LEXICAL_DIR, stored_page_ids(index))
        return cls(resolved, index, batch_size=batch_size, **options)


_NO_RANKS = {"dense_rank": None, "dense_score": None, "bm25_rank": None, "bm25_score": None}
"""What a hybrid hit fused inside the store can say of each ranking (the store returns fused scores only)."""


def load_lexical(path: Path, page_ids: Sequence[str]) -> LexicalIndex | None:
    """The saved lexical side at ``path`` when it exists and matches ``page_ids``; else ``None`` (rebuilt when
    a hybrid search needs it)."""
    from .errors import IndexFormatError

    if not path.is_dir():
        return None
    try:
        lexical = LexicalIndex.load(path)
    except IndexFormatError as exc:
        logger.warning("ignoring the lexical index at %s (%s); it is rebuilt when a hybrid search needs it", path, exc)
        return None
    if ids_digest(lexical.ids) != ids_digest(page_ids):
        logger.warning("the lexical index at %s does not match the stored pages; it is rebuilt when needed", path)
        return None
    return lexical


def build_lexical(index: MultiVectorStore) -> LexicalIndex:
    """A lexical side built from the stored page texts (``metadata["text"]``) of ``index``."""
    from .results import TEXT_KEY

    pages = stored_page_ids(index)
    metas = lookup_metadata(index, pages)
    texts = [metas[p].get(TEXT_KEY) for p in pages]
    if pages and all(not isinstance(t, str) or not t for t in texts):
        raise InvalidInputError(
            "this index stores no page text, so a hybrid (BM25) search cannot be built for it; add the documents "
            "again (their text is kept for BM25 from then on)"
        )
    logger.info("building the lexical (BM25) side of %d pages from their stored text", len(pages))
    lexical = LexicalIndex()
    lexical.add(pages, [t if isinstance(t, str) else "" for t in texts])
    return lexical
