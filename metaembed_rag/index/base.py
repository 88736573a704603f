"""The store contract every multi-vector index implements (in-process, Qdrant …), and its result types.

Retrievers and adapters depend on :class:`MultiVectorStore` only, so any store works with any of them.
:class:`MultiVectorStore` owns the rules for its input: its public ``add``/``search``/``delete``/``get``/
``find_ids``/``lookup_metadata`` validate once (ids, embeddings, metadata, ``k``, budgets, cascades, filters,
query shapes) and then call the ``_add``/``_search``/``_delete``/… that a backend implements, so every store
refuses the same input with the same typed error. The rules that had drifted between stores, decided here:

- a 2-D query ``[r_q, dim]`` is one query (as ``[1, r_q, dim]``); ``budget=None`` is the largest one
  (every query vector given, :attr:`~MultiVectorStore.stored_vectors`);
- a budget's ``r_c`` must be one of :attr:`~MultiVectorStore.stored_budgets` (every ``r_c`` up to
  ``stored_vectors`` in-process; the stored ones on Qdrant);
- a cascade ``(coarse, n)`` needs ``coarse`` at most the budget on both sides and an integer ``n >= k``;
- metadata keys are strings (other keys would be turned into strings by JSON); a ``None`` metadata is ``{}``;
- zero queries give ``[]``; an empty list of ids adds, deletes or gets nothing.

Example:
    >>> matches_filter({"source": "/d/a.pdf", "page": 3}, {"source": {"$in": ["a.pdf", "b.pdf"]}, "page": 3})
    True

Filters (:func:`matches_filter`, :func:`validate_filter`) are defined in :mod:`metaembed_rag.filters`.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Union

import torch

from ..budget import Budget, BudgetLike, resolve_budget
from ..errors import BudgetError, DocumentNotFoundError, DuplicateIdError, IncompatibleModelError, InvalidInputError
from ..filters import MetadataFilter, matches_filter, validate_filter
from ..validation import check_k

if TYPE_CHECKING:  # pragma: no cover
    from ..modeling.model import MetaEmbedModel

logger = logging.getLogger(__name__)

__all__ = [
    "Cascade",
    "MetadataFilter",
    "MultiVectorStore",
    "SearchHit",
    "StoredDocument",
    "check_ids",
    "check_model_identity",
    "matches_filter",
    "validate_metadata",
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
    bad_keys = [key for key in metadata if not isinstance(key, str)]
    if bad_keys:
        raise InvalidInputError(f"metadata keys of {doc_id!r} must be strings, got {bad_keys[:5]!r}")
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


def identity_summary(identity: Mapping[str, Any] | None) -> str:
    """A model identity in a few words, for error messages.

    Example:
        >>> identity_summary({"name": "starter", "embedding_dim": 384, "fingerprint": "ab12"})
        'starter (dim 384, fingerprint ab12)'
    """
    if not identity:
        return "unknown model"
    return f"{identity.get('name')} (dim {identity.get('embedding_dim')}, fingerprint {identity.get('fingerprint')})"


def check_model_identity(stored: Mapping[str, Any] | None, dim: int, model: MetaEmbedModel | Mapping[str, Any]) -> None:
    """Raise :class:`IncompatibleModelError` unless ``model`` is the one that made a store of ``dim``.

    ``stored`` is what the store recorded (``fingerprint``/``name``/``family``; missing keys are not compared).

    Example:
        >>> check_model_identity({"fingerprint": "ab"}, 8, {"embedding_dim": 8, "fingerprint": "ab"})
        >>> check_model_identity({"fingerprint": "ab"}, 8, {"embedding_dim": 16})
        Traceback (most recent call last):
        ...
        metaembed_rag.errors.IncompatibleModelError: the index stores 8-dimensional vectors but ...
    """
    identity = dict(model) if isinstance(model, Mapping) else dict(model.identity)
    model_dim = identity.get("embedding_dim")
    if model_dim is not None and model_dim != dim:
        raise IncompatibleModelError(
            f"the index stores {dim}-dimensional vectors but the model {identity_summary(identity)} "
            f"produces {model_dim}-dimensional ones"
        )
    if not stored:
        logger.warning("the index records no model identity; only its dimension (%d) could be checked", dim)
        return
    for key in ("fingerprint", "name", "family"):
        if stored.get(key) is not None and identity.get(key) is not None and stored[key] != identity[key]:
            raise IncompatibleModelError(
                f"the index was built with {identity_summary(dict(stored))}, not with "
                f"{identity_summary(identity)} ({key} differs); re-encode the documents or load the right model"
            )


def _check_finite(what: str, tensor: torch.Tensor) -> None:
    if not bool(torch.isfinite(tensor).all()):
        bad = (~torch.isfinite(tensor)).reshape(tensor.shape[0], -1).any(dim=1).nonzero().flatten().tolist()
        raise InvalidInputError(f"{what} contain NaN or infinite values (rows {bad[:10]})")


class MultiVectorStore(ABC):
    """A collection of documents, each with a fixed number of vectors, searchable by budgeted MaxSim.

    The public methods validate their input once, here, and call the backend's ``_add``, ``_search``,
    ``_delete``, ``_get`` (and, where a backend has them, ``_find_ids`` and ``_lookup_metadata``) with
    checked values only. A backend implements those, :attr:`dim` and :attr:`stored_vectors`, and ``__len__``.
    """

    reserved_metadata_keys: ClassVar[frozenset[str]] = frozenset()
    """Metadata keys a backend keeps for itself (refused in the documents' metadata)."""

    # ----------------------------------------------------------------------------------- what is stored
    @property
    @abstractmethod
    def dim(self) -> int:
        """Dimension of the stored vectors."""

    @property
    @abstractmethod
    def stored_vectors(self) -> int:
        """Candidate vectors stored per document (the largest usable ``r_c``)."""

    @property
    def stored_budgets(self) -> tuple[int, ...]:
        """The candidate budgets ``r_c`` a search may use: every one up to :attr:`stored_vectors` by default."""
        return tuple(range(1, self.stored_vectors + 1))

    @abstractmethod
    def __len__(self) -> int: ...

    def _where(self) -> str:
        """How error messages name this store."""
        return f"this {type(self).__name__}"

    # ------------------------------------------------------------------------------------ the contract
    def add(
        self,
        ids: Sequence[str],
        embeddings: torch.Tensor,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        texts: Sequence[str | None] | None = None,
    ) -> None:
        """Insert or replace (upsert by id) documents; ``embeddings`` is ``[n, >= stored_vectors, dim]``.

        Vectors beyond :attr:`stored_vectors` are dropped. ``texts`` (one per id, ``None`` for none) are the page
        texts a store with a lexical side of its own indexes (Qdrant's BM25 vector); other stores ignore them.
        Everything is validated before anything is stored: a refused call changes nothing.
        """
        ids = check_ids(ids, unique=True)
        vectors = self._check_embeddings(embeddings, len(ids))
        metas = self._check_metadatas(metadatas, ids)
        page_texts = self._check_texts(texts, len(ids))
        if ids:
            self._add(ids, vectors, metas, page_texts)

    upsert = add
    """The same as :meth:`add` (which replaces documents with the same id)."""

    def delete(self, ids: Sequence[str]) -> None:
        """Remove documents; if any id is unknown, :class:`~metaembed_rag.errors.DocumentNotFoundError` names
        it and nothing is removed. Repeated ids count once."""
        unique = list(dict.fromkeys(check_ids(ids, unique=False)))
        if unique:
            self._delete(unique)

    def get(self, ids: Sequence[str]) -> list[StoredDocument]:
        """The stored documents, in the order asked for (float32 CPU vectors ``[stored_vectors, dim]``)."""
        ids = check_ids(ids, unique=False)
        return self._get(ids) if ids else []

    def lookup_metadata(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The metadata of those of ``ids`` that are stored (unknown ids are left out, nothing raises)."""
        unique = list(dict.fromkeys(check_ids(ids, unique=False)))
        return self._lookup_metadata(unique) if unique else {}

    def find_ids(self, filter: MetadataFilter = None) -> list[str]:
        """Ids of the stored documents whose metadata passes ``filter`` (all of them for ``None``)."""
        return self._find_ids(validate_filter(filter))

    def search(
        self,
        query_embeddings: torch.Tensor,
        *,
        budget: BudgetLike | None,
        k: int = 10,
        filter: MetadataFilter = None,
        cascade: Cascade = None,
        normalize: bool = False,
    ) -> list[list[SearchHit]]:
        """Per query (``[n_q, R_q, dim]``, or one ``[R_q, dim]``), the top ``k`` documents by MaxSim at ``budget``.

        Args:
            budget: ``(r_q, r_c)``; ``r_q`` at most the query vectors given, ``r_c`` one of
                :attr:`stored_budgets`; ``None`` for the largest.
            filter: a metadata filter (see :mod:`metaembed_rag.filters`) or a predicate on the metadata.
            cascade: ``(coarse_budget, n_candidates)``: score every document at the coarse budget (at most
                ``budget`` on both sides), then rescore the best ``n_candidates`` (at least ``k``) at ``budget``.
            normalize: divide scores by ``r_q`` (they then lie in ``[-1, 1]`` for unit vectors).
        """
        queries = self._check_queries(query_embeddings)
        k = check_k(k)
        b = self._resolve_budget(budget, queries.shape[1])
        coarse = self._check_cascade(cascade, b, k, queries.shape[1])
        flt = validate_filter(filter)
        if queries.shape[0] == 0:
            return []
        return self._search(queries, b, k, flt, coarse, bool(normalize))

    # ------------------------------------------------------------------------- what a backend implements
    @abstractmethod
    def _add(
        self, ids: list[str], embeddings: torch.Tensor, metadatas: list[dict[str, Any]], texts: list[str | None]
    ) -> None:
        """Store checked documents: unique ids, ``[n, stored_vectors, dim]`` finite floats, JSON-safe dicts, and
        page texts (``None`` where none was given)."""

    @abstractmethod
    def _delete(self, ids: list[str]) -> None:
        """Remove unique, checked ids; raise :meth:`_not_found` (removing nothing) if any is unknown."""

    @abstractmethod
    def _get(self, ids: list[str]) -> list[StoredDocument]:
        """Fetch checked ids (repeats allowed) in order; raise :meth:`_not_found` if any is unknown."""

    @abstractmethod
    def _search(
        self,
        queries: torch.Tensor,
        budget: Budget,
        k: int,
        filter: MetadataFilter,
        cascade: tuple[Budget, int] | None,
        normalize: bool,
    ) -> list[list[SearchHit]]:
        """Search checked queries ``[n_q >= 1, R_q, dim]`` at a checked budget and cascade, a validated filter."""

    def _lookup_metadata(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Metadata of the stored ones of unique, checked ids (by default through :meth:`_get`, id by id)."""
        found = {}
        for doc_id in ids:
            try:
                found[doc_id] = self._get([doc_id])[0].metadata
            except DocumentNotFoundError:
                continue
        return found

    def _find_ids(self, filter: MetadataFilter) -> list[str]:
        raise NotImplementedError(f"{type(self).__name__} cannot list its documents by metadata")

    def _not_found(self, missing: Sequence[str]) -> DocumentNotFoundError:
        """The error for unknown ids (every store words it the same way)."""
        return DocumentNotFoundError(f"{len(missing)} id(s) not in {self._where()}: {list(missing)[:10]}")

    # ----------------------------------------------------------------------------------------- the rules
    def _check_embeddings(self, embeddings: Any, n: int) -> torch.Tensor:
        """``embeddings[:, :stored_vectors]`` (detached, dtype and device kept) once its shape and values pass."""
        if not isinstance(embeddings, torch.Tensor):
            raise InvalidInputError(f"embeddings must be a torch.Tensor, got {type(embeddings).__name__}")
        if embeddings.ndim != 3:
            raise InvalidInputError(f"embeddings must have shape [n, vectors, dim], got {tuple(embeddings.shape)}")
        if embeddings.shape[-1] != self.dim:
            raise IncompatibleModelError(
                f"embeddings have dimension {embeddings.shape[-1]} but {self._where()} stores {self.dim} "
                "(were they made by another model?)"
            )
        if embeddings.shape[0] != n:
            raise InvalidInputError(f"got {n} ids but {embeddings.shape[0]} embeddings")
        if embeddings.shape[1] < self.stored_vectors:
            raise InvalidInputError(
                f"embeddings have {embeddings.shape[1]} vectors per document; {self._where()} stores "
                f"{self.stored_vectors} (its stored_vectors)"
            )
        if not embeddings.is_floating_point():
            raise InvalidInputError(f"embeddings must be floating point, got {embeddings.dtype}")
        embeddings = embeddings[:, : self.stored_vectors].detach()
        _check_finite("embeddings", embeddings)
        return embeddings

    def _check_metadatas(self, metadatas: Any, ids: Sequence[str]) -> list[dict[str, Any]]:
        """One JSON-safe dict per id (``None`` for all, or for one, is ``{}``)."""
        n = len(ids)
        if metadatas is None:
            return [{} for _ in ids]
        if isinstance(metadatas, (Mapping, str, bytes)) or not isinstance(metadatas, Sequence):
            kind = type(metadatas).__name__
            raise InvalidInputError(f"metadatas must be a list of {n} dicts (one per id), got {kind}")
        if len(metadatas) != n:
            raise InvalidInputError(f"got {n} ids but {len(metadatas)} metadata dicts; pass a list of {n} dicts")
        out = []
        for doc_id, meta in zip(ids, metadatas, strict=True):
            meta = validate_metadata({} if meta is None else meta, doc_id)
            reserved = sorted(self.reserved_metadata_keys.intersection(meta))
            if reserved:
                raise InvalidInputError(f"metadata of {doc_id!r} uses the reserved key(s) {reserved}")
            out.append(meta)
        return out

    @staticmethod
    def _check_texts(texts: Any, n: int) -> list[str | None]:
        """One page text (or ``None``) per id."""
        if texts is None:
            return [None] * n
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence) or len(texts) != n:
            raise InvalidInputError(f"texts must be a list of {n} strings or None (one per id)")
        bad = [i for i, text in enumerate(texts) if text is not None and not isinstance(text, str)]
        if bad:
            raise InvalidInputError(f"texts must be strings or None; #{bad[0]} is {type(texts[bad[0]]).__name__}")
        for text in texts:
            if text:
                _check_unicode(text, "a page text")
        return list(texts)

    def _check_queries(self, queries: Any) -> torch.Tensor:
        """Queries as ``[n_q, R_q, dim]`` (a 2-D ``[R_q, dim]`` is one query), detached, finite floats."""
        if not isinstance(queries, torch.Tensor):
            raise InvalidInputError(f"query_embeddings must be a torch.Tensor, got {type(queries).__name__}")
        if queries.ndim == 2:
            queries = queries.unsqueeze(0)
        if queries.ndim != 3:
            raise InvalidInputError(f"query_embeddings must be [n_q, r_q, dim], got {tuple(queries.shape)}")
        if queries.shape[-1] != self.dim:
            raise IncompatibleModelError(
                f"query embeddings have dimension {queries.shape[-1]} but {self._where()} stores {self.dim}"
            )
        if not queries.is_floating_point():
            raise InvalidInputError(f"query embeddings must be floating point, got {queries.dtype}")
        queries = queries.detach()
        if queries.numel():
            _check_finite("query embeddings", queries)
        return queries

    def _resolve_budget(self, budget: BudgetLike | None, query_vectors: int, what: str = "budget") -> Budget:
        """``budget`` parsed and checked against the query vectors given and the stored candidate budgets."""
        try:
            b = resolve_budget(budget, max_query=query_vectors, max_candidate=self.stored_vectors)
        except BudgetError as exc:
            if what == "budget":
                raise
            raise BudgetError(f"{what}: {exc}") from None
        stored = self.stored_budgets
        if b.r_c not in stored:
            raise BudgetError(
                f"{what} {tuple(b)} needs r_c={b.r_c}, but {self._where()} stores only r_c in {list(stored)}; "
                f"search at one of those or rebuild with stored budgets including {b.r_c}"
            )
        return b

    def _check_cascade(self, cascade: Cascade, budget: Budget, k: int, query_vectors: int) -> tuple[Budget, int] | None:
        """``(coarse budget, n_candidates)`` checked: coarse within ``budget`` and stored, ``n_candidates >= k``."""
        if cascade is None:
            return None
        if not isinstance(cascade, (tuple, list)) or len(cascade) != 2:
            raise InvalidInputError(f"cascade must be (coarse_budget, n_candidates), got {cascade!r}")
        coarse_value, n_candidates = cascade
        coarse = self._resolve_budget(coarse_value, query_vectors, "cascade budget")
        if coarse.r_q > budget.r_q or coarse.r_c > budget.r_c:
            raise BudgetError(f"cascade coarse budget {tuple(coarse)} must not exceed the budget {tuple(budget)}")
        if isinstance(n_candidates, bool) or not isinstance(n_candidates, int) or n_candidates < k:
            raise InvalidInputError(f"cascade n_candidates must be an integer >= k ({k}), got {n_candidates!r}")
        return coarse, n_candidates
