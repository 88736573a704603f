"""``MetaEmbedSearcher``: a model and a multi-vector store behind two calls, ``add_documents`` and ``search``.

This is the retrieval facade the LangChain/LlamaIndex adapters and the CLI build on. It encodes documents and
queries with a :class:`~metaembed_rag.MetaEmbedModel` and keeps them in any
:class:`~metaembed_rag.index.base.MultiVectorStore` (the in-process :class:`MultiVectorIndex` by default).

Document ids: when not given, each document's id is a stable content hash (SHA-256 of its text, its image's
pixels and its metadata, 32 hex digits), so adding the same document twice stores it once, and identical
inputs within one call map to the same id.

Example:
    >>> from metaembed_rag.searcher import MetaEmbedSearcher
    >>> searcher = MetaEmbedSearcher(model)                                   # doctest: +SKIP
    >>> searcher.add_documents(["Paris is the capital of France."], metadatas=[{"source": "geo.txt"}])  # doctest: +SKIP
    >>> hits = searcher.search("capital of France?", budget=(8, 16), k=1)    # doctest: +SKIP
    >>> hits[0].metadata["source"]                                           # doctest: +SKIP
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

from .budget import BudgetLike
from .errors import CheckpointError, DuplicateIdError, IncompatibleModelError, InvalidInputError
from .index.base import Cascade, MetadataFilter, MultiVectorStore, SearchHit, validate_metadata
from .index.memory import MultiVectorIndex, check_model_identity
from .inputs import EncodeInput, ModelInput, to_model_inputs
from .modeling.model import MetaEmbedModel

logger = logging.getLogger(__name__)


def _resolve_model(model: MetaEmbedModel | str | os.PathLike | None) -> MetaEmbedModel:
    if isinstance(model, MetaEmbedModel):
        return model
    if model is None:
        try:
            from .starter import STARTER_MODEL  # built separately; imported only when needed
        except ImportError as exc:
            raise CheckpointError(
                "no starter model ships with this version of metaembed_rag; pass a MetaEmbedModel or a "
                "checkpoint path as `model`"
            ) from exc
        model = STARTER_MODEL
    if isinstance(model, (str, os.PathLike)):
        return MetaEmbedModel.from_pretrained(model)
    raise InvalidInputError(f"model must be a MetaEmbedModel, a checkpoint path/id or None, got {type(model).__name__}")


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
    """

    def __init__(
        self,
        model: MetaEmbedModel | str | None = None,
        index: MultiVectorStore | None = None,
        *,
        batch_size: int = 16,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
        self._model = _resolve_model(model)
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

        Documents whose id already exists are replaced. Everything is validated before encoding.
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
            all_ids = list(ids)
            if len(set(all_ids)) != n:
                raise DuplicateIdError("duplicate ids in one add_documents call")
        first: dict[str, int] = {}
        for position, doc_id in enumerate(all_ids):
            first.setdefault(doc_id, position)
        keep = sorted(first.values())  # identical generated ids = identical documents: encode once
        embeddings = self._model.encode_document(
            [items[i] for i in keep], batch_size=self.batch_size, show_progress=show_progress
        )
        self._index.add([all_ids[i] for i in keep], embeddings, [metas[i] for i in keep])
        logger.debug("added %d documents", len(keep))
        return all_ids

    def _encode_queries(self, queries: Sequence[EncodeInput]):
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
    ) -> list[SearchHit]:
        """The ``k`` best documents for one query (text, image, or an (image, text) pair).

        Scores are normalised (divided by ``r_q``, in ``[-1, 1]``) unless ``normalize=False``.
        """
        return self.search_batch([query], budget=budget, k=k, filter=filter, cascade=cascade, normalize=normalize)[0]

    def search_batch(
        self,
        queries: Sequence[EncodeInput],
        *,
        budget: BudgetLike = (8, 16),
        k: int = 5,
        filter: MetadataFilter = None,
        cascade: Cascade = None,
        normalize: bool = True,
    ) -> list[list[SearchHit]]:
        """:meth:`search` for several queries at once (one list of hits per query)."""
        if isinstance(queries, (str, bytes)) or not isinstance(queries, Sequence):
            raise InvalidInputError("search_batch takes a list of queries; use search() for one")
        if len(self._index) == 0:
            to_model_inputs(list(queries))  # still reject malformed queries
            return [[] for _ in queries]
        embeddings = self._encode_queries(list(queries))
        return self._index.search(embeddings, budget=budget, k=k, filter=filter, cascade=cascade, normalize=normalize)

    def delete(self, ids: Sequence[str]) -> None:
        """Remove documents by id (unknown ids raise and nothing is removed)."""
        self._index.delete(ids)

    def save(self, path: str | os.PathLike) -> Path:
        """Save the index (atomically); the model is not copied, only its identity is recorded."""
        save = getattr(self._index, "save", None)
        if save is None:
            raise InvalidInputError(f"{type(self._index).__name__} persists on its own and has no save()")
        return save(path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        model: MetaEmbedModel | str | None = None,
        *,
        device: str = "cpu",
        mmap: bool = False,
        batch_size: int = 16,
    ) -> MetaEmbedSearcher:
        """Load a saved index with ``model`` (default: the starter model); a model mismatch is refused."""
        resolved = _resolve_model(model)
        index = MultiVectorIndex.load(path, device=device, mmap=mmap, model=resolved)
        return cls(resolved, index, batch_size=batch_size)
