"""The engine behind the framework adapters: a :class:`MetaEmbedSearcher` built on first use.

Constructing a retriever must be cheap and must not load a model; :class:`LazySearcher` keeps what it was
given (a model, a checkpoint path or ``None`` for the starter model; an index, an index folder or ``None`` for
the default index) and builds the searcher the first time it is needed. All adapters of one engine share the
same model and index, and models loaded by name are shared process-wide.

Example:
    >>> engine = LazySearcher(model=None, index=None)       # nothing loaded yet
    >>> engine.loaded
    False
    >>> ids = engine.add_texts(["MaxSim sums each query vector's best match.", "Bees dance."], ids=["m", "b"])
    >>> [page.id for page in engine.retrieve("what is MaxSim?", budget=(8, 16), k=1)]
    ['m']
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .budget import Budget, BudgetLike
from .errors import IndexNotFoundError, InvalidInputError, UnsupportedInputError
from .index.base import Cascade, MetadataFilter, MultiVectorStore, validate_filter
from .inputs import ModelInput, load_image
from .page_policy import PagePolicy
from .results import IMAGE_PATH_KEY, PageImageCache, RetrievedPage, hits_to_pages
from .validation import check_k

logger = logging.getLogger(__name__)


def shared_model(name_or_path: str | os.PathLike | None = None):
    """The process-wide model for a reference (``None``: the starter); see :mod:`metaembed_rag.modeling.loading`.

    Example:
        >>> model = shared_model("path/to/checkpoint")          # doctest: +SKIP
        >>> model is shared_model("path/to/checkpoint")         # doctest: +SKIP
        True
    """
    from .modeling.loading import load_model

    return load_model(name_or_path)


def text_query(query: Any) -> str:
    """Validate a text query: a non-empty ``str`` (``None``, bytes or blank text raise a typed error)."""
    if query is None:
        raise InvalidInputError("the query is None; pass the question as a non-empty string")
    if isinstance(query, (bytes, bytearray, memoryview)):
        raise UnsupportedInputError(
            "the query is bytes; decode it to str, or pass an image query by path (image_path=...)"
        )
    if not isinstance(query, str):
        raise UnsupportedInputError(f"the query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise InvalidInputError("the query is an empty string")
    return query


class LazySearcher:
    """A :class:`~metaembed_rag.searcher.MetaEmbedSearcher` created on first use from a model and an index.

    ``model``: a ``MetaEmbedModel``, a checkpoint path/hub id (loaded once per process), or ``None`` (the
    starter model, or the model an existing index was built with). ``index``: a ``MultiVectorStore``, a
    ``MetaEmbedSearcher``, a folder (an index built by ``metaembed-rag index``, or a saved
    ``MultiVectorIndex``), or ``None``: a new, empty in-memory index — never the CLI's index, whatever
    ``./.metaembed/`` holds. To search what ``metaembed-rag index`` built, ask for it:
    :meth:`for_collection` (or pass its folder as ``index``).
    """

    def __init__(self, model: Any = None, index: Any = None) -> None:
        self._model_spec = model
        self._index_spec = index
        self._searcher = None
        self._lock = threading.RLock()
        self.image_cache = PageImageCache()
        """Page images rendered for this engine's results, once per page (shared by its adapters)."""
        from .searcher import MetaEmbedSearcher

        if isinstance(index, MetaEmbedSearcher):
            self._searcher = index
        elif index is not None and not isinstance(index, (MultiVectorStore, str, os.PathLike)):
            raise UnsupportedInputError(
                f"index must be a MultiVectorStore, a MetaEmbedSearcher, an index folder or None, "
                f"got {type(index).__name__}"
            )
        if model is not None and not isinstance(model, (str, os.PathLike)) and not hasattr(model, "encode_query"):
            raise UnsupportedInputError(
                f"model must be a MetaEmbedModel, a checkpoint path or None, got {type(model).__name__}"
            )

    @classmethod
    def for_collection(cls, name_or_path: str | os.PathLike | None = None, *, model: Any = None) -> LazySearcher:
        """The engine over an index built by ``metaembed-rag index``: ``None`` is the CLI's default
        (``$METAEMBED_RAG_INDEX`` or ``./.metaembed/default``), a bare name ``./.metaembed/NAME``, else a folder.

        The model defaults to the one the index was built with. A missing index raises
        :class:`~metaembed_rag.errors.IndexNotFoundError` (nothing is created).
        """
        from .collection import DocumentCollection, resolve_collection_path

        path = resolve_collection_path(name_or_path)
        if not DocumentCollection.exists(path):
            raise IndexNotFoundError(
                f"no index built by `metaembed-rag index` at {path} (resolved from {name_or_path!r}); "
                "build one with `metaembed-rag index FILES`, or pass the folder of an existing one"
            )
        return cls(model=model, index=path)

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not loaded"
        return f"LazySearcher(model={_describe(self._model_spec)}, index={_describe(self._index_spec)}, {state})"

    def trace_params(self) -> dict[str, str]:
        """What tracing (e.g. LangSmith) records about this engine, without loading anything."""
        if self._searcher is not None:
            model = self._searcher.model.config.name or self._searcher.model.config.backbone
            store = type(self._searcher.index).__name__
        else:
            spec = self._model_spec
            model = "starter" if spec is None else (str(spec) if isinstance(spec, (str, os.PathLike)) else "custom")
            store = "MultiVectorIndex" if self._index_spec is None else _describe(self._index_spec)
        return {
            "ls_embedding_provider": "metaembed_rag",
            "ls_embedding_model": model,
            "ls_vector_store_provider": store,
        }

    # ---------------------------------------------------------------------------------------------- state
    @property
    def loaded(self) -> bool:
        """Whether the searcher (and so the model) has been built."""
        return self._searcher is not None

    @property
    def searcher(self):
        """The underlying searcher, built on first access."""
        if self._searcher is None:
            with self._lock:
                if self._searcher is None:
                    self._searcher = self._build()
        return self._searcher

    @property
    def model(self):
        return self.searcher.model

    @property
    def index(self) -> MultiVectorStore:
        return self.searcher.index

    def _resolve_model(self):
        spec = self._model_spec
        if spec is None or isinstance(spec, (str, os.PathLike)):
            return shared_model(spec)
        return spec

    def _build(self):
        from .collection import DocumentCollection
        from .searcher import MetaEmbedSearcher

        spec = self._index_spec
        if spec is None:  # a fresh index: only what this adapter is given, never the CLI's pages
            return MetaEmbedSearcher(model=self._resolve_model())
        if isinstance(spec, (str, os.PathLike)):
            path = Path(spec)
            if DocumentCollection.exists(path):  # an index built by `metaembed-rag index`
                if self._model_spec is None:
                    reference = DocumentCollection.read_config(path)["model"]["reference"]
                    model = shared_model(reference)
                else:
                    model = self._resolve_model()
                logger.info("using the index at %s", path.resolve())
                return DocumentCollection.open(path, model=model).searcher
            return MetaEmbedSearcher.load(spec, model=self._resolve_model())
        return MetaEmbedSearcher(model=self._resolve_model(), index=spec)

    # ------------------------------------------------------------------------------------------- search
    def check_budget(self, budget: BudgetLike) -> Budget:
        """Parse ``budget`` and refuse one the model or the index cannot serve (a ``BudgetError``)."""
        parsed = Budget.parse(budget)
        return parsed.validate(max_query=self.model.num_query_tokens, max_candidate=self.index.stored_vectors)

    def image_query(self, image: Any) -> ModelInput:
        """Validate an image query (path, bytes or PIL image) for this model."""
        if not self.model.supports_images:
            raise UnsupportedInputError(
                f"this model ({self.model.identity['name']}) is text-only and cannot encode an image query; "
                "use a vision checkpoint (Qwen2-VL family) or query with text"
            )
        return ModelInput(image=load_image(image))

    def retrieve(
        self,
        query: str | ModelInput,
        *,
        budget: BudgetLike = (8, 16),
        k: int = 5,
        filter: MetadataFilter = None,
        cascade: Cascade = None,
        hybrid: Any = None,
    ) -> list[RetrievedPage]:
        """The ``k`` best pages for a text query (or a prepared :class:`ModelInput`), best first.

        ``hybrid``: fuse with BM25 on the page text (``True``, a dict or :class:`~metaembed_rag.fusion.HybridOptions`).
        """
        if not isinstance(query, ModelInput):
            query = ModelInput(text=text_query(query))
        check_k(k)
        validate_filter(filter)
        parsed = self.check_budget(budget)
        if len(self.index) == 0:
            logger.warning(
                "searching an empty index; add documents first (an adapter built without an index never "
                "opens the CLI's; use from_collection() for that)"
            )
            return []
        hits = self.searcher.search(
            query, budget=parsed, k=k, filter=filter, cascade=cascade, normalize=True, hybrid=hybrid
        )
        return hits_to_pages(hits, tuple(parsed))

    def query_vectors(self, embedding: Any, budget: BudgetLike) -> tuple[torch.Tensor, Budget]:
        """A query given as vectors, and the budget it is searched at.

        ``embedding``: ``[R_q, dim]`` (a tensor, array or nested list; multi-vector, e.g. from
        ``model.encode_query``) or ``[dim]``. The rule for one vector (``[dim]`` or ``[1, dim]``): it is a query of
        ``r_q = 1``, so the budget becomes ``(1, r_c)``. With several vectors the budget's ``r_q`` must not exceed
        ``R_q`` (a :class:`~metaembed_rag.errors.BudgetError`). Vectors are used as given (not re-normalised).
        """
        try:
            tensor = torch.as_tensor(embedding, dtype=torch.float32).detach().cpu()
        except (TypeError, ValueError, RuntimeError) as exc:
            raise InvalidInputError(f"the query embedding is not a vector or a matrix of numbers ({exc})") from exc
        if tensor.ndim == 1:
            tensor = tensor[None]
        dim = self.index.dim
        if tensor.ndim != 2 or tensor.shape[0] == 0 or tensor.shape[1] != dim:
            raise InvalidInputError(
                f"the query embedding must be [R_q, {dim}] or [{dim}] for this index, got {list(tensor.shape)}"
            )
        if not torch.isfinite(tensor).all():
            raise InvalidInputError("the query embedding holds NaN or infinite values")
        parsed = Budget.parse(budget)
        if tensor.shape[0] == 1:
            parsed = Budget(1, parsed.r_c)
        parsed = parsed.validate(max_query=tensor.shape[0], max_candidate=self.index.stored_vectors)
        return tensor, parsed

    def retrieve_by_vector(
        self,
        embedding: Any,
        *,
        budget: BudgetLike = (8, 16),
        k: int = 5,
        filter: MetadataFilter = None,
        cascade: Cascade = None,
    ) -> list[RetrievedPage]:
        """The ``k`` best pages for a query given as vectors (see :meth:`query_vectors` for the shapes and budget
        rule); scores are normalised MaxSim."""
        check_k(k)
        validate_filter(filter)
        tensor, parsed = self.query_vectors(embedding, budget)
        hits = self.searcher.search_by_vectors(tensor, budget=parsed, k=k, filter=filter, cascade=cascade)
        return hits_to_pages(hits, tuple(parsed))

    async def aretrieve(self, query: str | ModelInput, **options: Any) -> list[RetrievedPage]:
        """:meth:`retrieve` in a worker thread, so the event loop stays free while MaxSim runs."""
        return await asyncio.to_thread(self.retrieve, query, **options)

    # -------------------------------------------------------------------------------------------- add
    def add_texts(
        self,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Encode and index texts (:meth:`MetaEmbedSearcher.add_texts`); each text is kept in its metadata
        (``"text"``) to be returned later."""
        return self.searcher.add_texts(texts, metadatas, ids)

    def add_pages(
        self,
        records: Iterable[Any],
        *,
        image_dir: str | os.PathLike | None = None,
        batch_size: int = 16,
        embedding_mode: str | None = None,
    ) -> list[str]:
        """Index page records from :func:`metaembed_rag.loaders.load_pages`, streaming ``batch_size`` at a time.

        Pages become ids, model inputs and metadata by the same :class:`~metaembed_rag.page_policy.PagePolicy` as
        the CLI's index: ``embedding_mode`` ``text`` / ``image`` / ``image+text`` (default: the page image for a
        vision model, the text for a text model); pages with nothing to embed are skipped with a warning. With
        ``image_dir``, page images are saved there as PNG and their path stored; without it, images are
        re-rendered from the PDF when a result asks for one. Ids are ``"<source>#page=<n>"``, so indexing a file
        again replaces its pages.
        """
        policy = PagePolicy.for_model(self.model, embedding_mode)
        added: list[str] = []
        batch: list[Any] = []
        for record in records:
            batch.append(record)
            if len(batch) >= batch_size:
                added += self._add_page_batch(batch, policy, image_dir)
                batch = []
        if batch:
            added += self._add_page_batch(batch, policy, image_dir)
        return added

    def add_pdfs(
        self,
        paths: Any,
        *,
        image_dir: str | os.PathLike | None = None,
        embedding_mode: str | None = None,
        **load_options: Any,
    ) -> list[str]:
        """Load PDFs/images (files, folders, globs) with :func:`~metaembed_rag.loaders.load_pages` and index them."""
        from .loaders import load_pages

        policy = PagePolicy.for_model(self.model, embedding_mode)
        load_options.setdefault("render", policy.mode != "text" or image_dir is not None)
        return self.add_pages(load_pages(paths, **load_options), image_dir=image_dir, embedding_mode=policy.mode)

    def _add_page_batch(self, records: list[Any], policy: PagePolicy, image_dir: str | os.PathLike | None) -> list[str]:
        units = []
        for record in records:
            extra = None
            if image_dir is not None and record.image is not None:
                extra = {IMAGE_PATH_KEY: _save_page_image(record, image_dir)}
            unit = policy.unit(record, extra)
            if unit is None:
                logger.warning("skipping %s page %s: %s", record.source, record.page, policy.why_skipped(record))
                continue
            units.append(unit)
        if not units:
            return []
        return self.searcher.add_documents(
            [u.input for u in units], ids=[u.id for u in units], metadatas=[u.metadata for u in units]
        )

    # ----------------------------------------------------------------------------------------- rescore
    def rescore(self, query: str | ModelInput, candidates: Sequence[ModelInput], *, budget: BudgetLike) -> list[float]:
        """Normalised MaxSim of ``query`` against ``candidates`` encoded on the fly (for reranking)."""
        if not isinstance(query, ModelInput):
            query = ModelInput(text=text_query(query))
        parsed = Budget.parse(budget).validate(
            max_query=self.model.num_query_tokens, max_candidate=self.model.num_candidate_tokens
        )
        if not candidates:
            return []
        q = self.model.encode_query([query], budget=parsed)
        d = self.model.encode_document(list(candidates), budget=parsed)
        return self.model.similarity(q, d, budget=parsed, normalize=True)[0].tolist()

    def single_vectors(self, inputs: Sequence[str | ModelInput], side: str) -> list[list[float]]:
        """The (1,1) vector of each input: the coarsest Matryoshka level, trained to work on its own."""
        items = [i if isinstance(i, ModelInput) else ModelInput(text=text_query(i)) for i in inputs]
        if not items:
            return []
        encoded: torch.Tensor = self.model.encode(items, side, budget=(1, 1))
        return encoded[:, 0].tolist()

    def save(self, path: str | os.PathLike) -> Any:
        return self.searcher.save(path)


def _save_page_image(record: Any, image_dir: str | os.PathLike) -> str:
    folder = Path(image_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stem = record.sha256 or hashlib.sha256(str(record.source).encode()).hexdigest()
    path = folder / f"{stem[:16]}-p{record.page}.png"
    if not path.exists():
        from .atomic import atomic_path

        with atomic_path(path) as tmp:
            record.image.save(tmp, format="PNG")
    return str(path.resolve())


def _describe(spec: Any) -> str:
    if spec is None:
        return "default"
    if isinstance(spec, (str, os.PathLike)):
        return repr(str(spec))
    return type(spec).__name__
