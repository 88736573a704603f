"""``DocumentCollection``: a folder holding a page index, the model it was built with, and a file manifest.

The folder (default ``./.metaembed/default``) is what ``metaembed-rag index`` builds and ``search`` reads::

    collection.json   format name and version, the model (reference and identity), the embedding mode
                      (text / image / image+text), the rendering dpi, and one entry per indexed file:
                      its SHA-256, its page ids, skipped pages and whether it was indexed completely
    index/            the :class:`~metaembed_rag.index.MultiVectorIndex` (one unit per page, or one per window of
                      a page longer than the model reads; its metadata holds source, page, page_count, sha256,
                      title, author, text …)
    lexical/          the BM25 side for hybrid search (:class:`~metaembed_rag.lexical.LexicalIndex`); derived data:
                      when it is missing (an index built before hybrid search) or out of date, it is rebuilt from
                      the stored page text at the first hybrid search

The whole folder is replaced atomically on :meth:`DocumentCollection.save`, so the manifest and the index
always agree, and a crash leaves the previous state. Every writer (the CLI, :func:`~metaembed_rag.pipeline.index_files`,
:meth:`DocumentCollection.save`) holds the folder's inter-process lock; a save that finds the folder changed on disk
since it was read (another process saved in between) merges its own changes into that state instead of
overwriting it, so neither writer's pages are lost. Only a missing folder, an empty one, or a collection of this
package is ever written (:class:`~metaembed_rag.errors.UnsafePathError` otherwise).

Example:
    >>> import tempfile
    >>> from metaembed_rag.pipeline import index_files
    >>> folder = tempfile.TemporaryDirectory()
    >>> collection = DocumentCollection.create(f"{folder.name}/index", model="starter")
    >>> report = index_files(collection, ["examples/"], ocr=False, show_progress=False)  # from the repository root
    >>> len(collection), collection.file_page_count, collection.embedding_mode
    (4, 4, 'text')
    >>> hits = collection.search("Which quarter had the highest revenue?", budget=(8, 16), k=1)
    >>> hits[0].metadata["source"].endswith("sales-table.pdf")
    True
    >>> folder.cleanup()
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import (
    FolderKind,
    atomic_directory,
    folder_lock,
    read_format_file,
    readable_folder,
    real_target,
    recover_folder,
    write_json_atomic,
)
from .budget import BudgetLike
from .errors import (
    DocumentNotFoundError,
    IndexFormatError,
    IndexLockedError,
    IndexNotFoundError,
    InvalidInputError,
    UnsafePathError,
)
from .modeling.loading import load_model, model_reference
from .page_policy import (
    EMBEDDING_MODES,
    EmbeddingMode,
    PagePolicy,
    check_embedding_mode,
    page_id,
    page_source,
    source_key,
)

if TYPE_CHECKING:  # pragma: no cover
    from .index import MultiVectorIndex, SearchHit
    from .inputs import ModelInput
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

COLLECTION_KIND = FolderKind("index", COLLECTION_FILE, FORMAT_NAME)
"""How a collection folder is recognised (and so may be replaced by a new save)."""


def resolve_collection_path(name_or_dir: str | os.PathLike | None) -> Path:
    """``None`` → ``$METAEMBED_RAG_INDEX`` or ``./.metaembed/default``; a name without a slash → ``./.metaembed/NAME``.

    A bare name never means a folder of the working directory, even when one of that name exists.

    Example:
        >>> resolve_collection_path("papers").as_posix(), resolve_collection_path("./x/y").as_posix()
        ('.metaembed/papers', 'x/y')
    """
    if name_or_dir is None:
        name_or_dir = os.environ.get(COLLECTION_ENV) or DEFAULT_COLLECTION
    text = os.fspath(name_or_dir)
    if not text.strip():
        raise InvalidInputError("the index name or folder is empty")
    if isinstance(name_or_dir, Path) or "/" in text or os.sep in text:
        return Path(text).expanduser()
    if text in (".", "..") or text.startswith("~"):
        raise InvalidInputError(f"{text!r} is not an index name; give a folder path such as ./{text}/index")
    return DEFAULT_COLLECTION.parent / text


def check_collection_path(path: str | os.PathLike, sources: Sequence[str | os.PathLike] = ()) -> None:
    """Refuse an index folder that is the working folder, one of its ancestors, or a folder being indexed.

    Example:
        >>> check_collection_path(".")
        Traceback (most recent call last):
        ...
        metaembed_rag.errors.UnsafePathError: the index folder . is the working folder...
    """
    real = real_target(path)
    cwd = real_target(os.getcwd())
    if real == cwd or real in cwd.parents:
        where = "the working folder" if real == cwd else "an ancestor of the working folder"
        raise UnsafePathError(f"the index folder {path} is {where}; give a folder of its own, e.g. .metaembed/NAME")
    for source in sources:
        if not os.path.exists(source):
            continue
        folder = real_target(source)
        if real == folder or real in folder.parents:
            raise UnsafePathError(
                f"the index folder {path} is {'' if real == folder else 'an ancestor of '}{source}, which is being "
                "indexed; keep the index apart from the documents (e.g. --index NAME for .metaembed/NAME)"
            )


@dataclass
class FileEntry:
    """What the collection knows about one indexed file."""

    sha256: str
    page_count: int
    ids: list[str] = field(default_factory=list)
    skipped_pages: list[tuple[int, str]] = field(default_factory=list)
    complete: bool = False

    @classmethod
    def from_dict(cls, data: Any) -> FileEntry:
        """Parse one manifest entry; anything of the wrong shape or type raises ``ValueError``."""
        if not isinstance(data, dict):
            raise ValueError(f"an entry must be an object, found {type(data).__name__}")
        sha, count = data.get("sha256"), data.get("page_count")
        ids, skipped = data.get("ids", []), data.get("skipped_pages", [])
        if not isinstance(sha, str) or type(count) is not int or count < 0:
            raise ValueError("sha256 must be a string and page_count a non-negative integer")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError("ids must be a list of strings")
        if not isinstance(skipped, list) or not all(
            isinstance(e, list) and len(e) == 2 and type(e[0]) is int and isinstance(e[1], str) for e in skipped
        ):
            raise ValueError("skipped_pages must be a list of [page, reason] pairs")
        return cls(sha, count, list(ids), [(p, r) for p, r in skipped], data.get("complete") is True)


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
        """The BM25 side as loaded or created for :attr:`index` (the searcher keeps it up to date once built)."""
        self._lexical_index: Any = index
        self._mark_saved()
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
        if self._searcher is None or self._searcher.index is not self.index:
            from .searcher import MetaEmbedSearcher

            lexical = self.lexical if self._lexical_index is self.index else None  # a merged index: rebuilt
            self._searcher = MetaEmbedSearcher(self.model, self.index, lexical=lexical)
        return self._searcher

    # ------------------------------------------------------------------------------------------ opening
    @staticmethod
    def exists(path: str | os.PathLike) -> bool:
        return DocumentCollection._folder(path) is not None

    @staticmethod
    def _folder(path: str | os.PathLike) -> Path | None:
        folder = readable_folder(path, COLLECTION_KIND)
        return folder if folder is not None and (folder / COLLECTION_FILE).is_file() else None

    @staticmethod
    def recover(path: str | os.PathLike, *, wait: bool = True) -> list[str]:
        """Restore or remove what an interrupted save left beside ``path`` (logged); returns what was done.

        With ``wait=False`` nothing is done while another process is writing (its staging folder is live).
        """
        try:
            with folder_lock(path, timeout=None if wait else 0):
                return recover_folder(path, COLLECTION_KIND)
        except IndexLockedError:
            if wait:
                raise
            return []

    @staticmethod
    def read_config(path: str | os.PathLike) -> dict[str, Any]:
        """The checked ``collection.json`` of a collection folder (the model is not loaded)."""
        folder = Path(path)
        found = DocumentCollection._folder(folder)
        if found is None:
            if folder.exists():
                raise IndexFormatError(f"{folder} is not a metaembed-rag index (no {COLLECTION_FILE})")
            raise IndexNotFoundError(f"no index at {folder}; build one with: metaembed-rag index PATH")
        file = found / COLLECTION_FILE
        config = read_format_file(file, FORMAT_NAME, FORMAT_VERSION, what="collection file")
        model = config.get("model")
        if not isinstance(model, dict) or not isinstance(model.get("reference"), str):
            raise IndexFormatError(f"{file}: 'model' must be an object with a 'reference' string")
        if model.get("identity") is not None and not isinstance(model["identity"], dict):
            raise IndexFormatError(f"{file}: the model identity must be an object")
        if config.get("embedding_mode") not in EMBEDDING_MODES:
            raise IndexFormatError(f"{file}: unknown embedding mode {config.get('embedding_mode')!r}")
        dpi = config.get("dpi")
        if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not dpi > 0:
            raise IndexFormatError(f"{file}: 'dpi' must be a positive number")
        generation = config.get("generation", 0)
        if type(generation) is not int or generation < 0:
            raise IndexFormatError(f"{file}: 'generation' must be a non-negative integer")
        if not isinstance(config.get("files", {}), dict):
            raise IndexFormatError(f"{file}: 'files' must be an object")
        return config

    @staticmethod
    def read_files(path: str | os.PathLike, config: dict[str, Any]) -> dict[str, FileEntry]:
        """The file manifest of a checked config; a malformed entry raises :class:`IndexFormatError`."""
        files = {}
        for source, entry in config.get("files", {}).items():
            try:
                files[source] = FileEntry.from_dict(entry)
            except ValueError as exc:
                raise IndexFormatError(
                    f"{Path(path) / COLLECTION_FILE}: malformed entry for {source!r} ({exc})"
                ) from exc
        return files

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
        from .atomic import check_writable
        from .index import MultiVectorIndex

        path = Path(path)
        cls.recover(path)
        if cls.exists(path):
            raise InvalidInputError(f"an index already exists at {path}")
        check_writable(real_target(path), COLLECTION_KIND)
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
            "generation": 0,
        }
        collection = cls(path, index, config, {}, model=model)
        from .lexical import LexicalIndex

        collection.lexical = LexicalIndex()
        return collection

    @classmethod
    def _read_state(cls, path: Path, *, mmap: bool) -> tuple[dict[str, Any], MultiVectorIndex, dict[str, FileEntry]]:
        from .index import MultiVectorIndex

        config = cls.read_config(path)
        folder = cls._folder(path) or path
        if not (folder / INDEX_DIR).is_dir():
            raise IndexFormatError(f"{folder} has no {INDEX_DIR}/ folder: the index is damaged (rebuild it)")
        index = MultiVectorIndex.load(folder / INDEX_DIR, mmap=mmap)
        files = cls.read_files(path, config)
        _check_manifest(folder, config, index, files)
        return config, index, files

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
        """Open a saved collection; its model (the recorded one, or ``model``, which must match) loads on first use.

        Leftovers of an interrupted save are repaired first, unless another process is writing right now.
        """
        path = Path(path)
        cls.recover(path, wait=False)
        config, index, files = cls._read_state(path, mmap=mmap)
        if model is None or isinstance(model, (str, os.PathLike)):
            reference = config["model"]["reference"] if model is None else model_reference(model)
            collection = cls(
                path, index, config, files, model_loader=lambda: load_model(reference, device=device, dtype=dtype)
            )
        else:
            collection = cls(path, index, config, files, model=model)
        from .searcher import load_lexical

        folder = cls._folder(path) or path
        from .windows import stored_page_ids

        collection.lexical = load_lexical(folder / LEXICAL_DIR, stored_page_ids(index))
        return collection

    @classmethod
    def open_or_create(cls, path: str | os.PathLike, **kwargs: Any) -> DocumentCollection:
        """Open the collection at ``path``, or create it when there is none (``kwargs`` as in :meth:`create`)."""
        cls.recover(path)
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

    @property
    def generation(self) -> int:
        """How many times the folder has been saved; a save that finds another number on disk merges."""
        return int(self.config.get("generation", 0))

    @property
    def has_unsaved_changes(self) -> bool:
        return bool(self._upserted or self._deleted) or self._files_changed()

    def __len__(self) -> int:
        """Pages in the collection (a long page stored as several windows counts once), with or without a
        file entry in the manifest."""
        from .windows import stored_page_ids

        return len(stored_page_ids(self.index))

    @property
    def file_page_count(self) -> int:
        """Pages of the indexed files (those in the manifest); :func:`len` also counts texts and pages added
        without a file entry."""
        return sum(len(entry.ids) for entry in self.files.values())

    @property
    def window_count(self) -> int:
        """Stored multi-vector units: one per page, or one per window of a page longer than the model reads."""
        return len(self.index)

    # ------------------------------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def writing(self) -> Iterator[DocumentCollection]:
        """Hold the folder's write lock (as the CLI does); on entry, catch up with saves made by others."""
        with folder_lock(self.path):
            self._catch_up()
            yield self

    def save(self) -> Path:
        """Write index and manifest together, atomically replacing the folder (under its lock).

        If another process saved since this collection was read, its state is loaded and this collection's own
        changes (pages added or removed, file entries) are applied on top, so nothing either wrote is lost.
        """
        with folder_lock(self.path):
            on_disk = self._disk_generation()
            if on_disk is not None and on_disk != self.generation:
                self._merge_into_disk_state()
            self.config["generation"] = max(on_disk or 0, self.generation) + 1
            self.config["files"] = {source: asdict(entry) for source, entry in sorted(self.files.items())}
            lexical = self._lexical_side()
            with atomic_directory(self.path, COLLECTION_KIND) as staging:
                self.index.save(staging / INDEX_DIR)
                if lexical is not None:
                    lexical.save(staging / LEXICAL_DIR)
                write_json_atomic(staging / COLLECTION_FILE, self.config)
            self._mark_saved()
        return self.path

    def _mark_saved(self) -> None:
        self._upserted: set[str] = set()
        self._deleted: set[str] = set()
        self._saved_files = {source: asdict(entry) for source, entry in self.files.items()}

    def _files_changed(self) -> bool:
        return {source: asdict(entry) for source, entry in self.files.items()} != self._saved_files

    def _disk_generation(self) -> int | None:
        if self._folder(self.path) is None:
            return None
        return int(self.read_config(self.path).get("generation", 0))

    def _catch_up(self) -> None:
        on_disk = self._disk_generation()
        if on_disk is None or on_disk == self.generation:
            return
        if self.has_unsaved_changes:
            return  # save() merges them into the newer state
        self.config, self.index, self.files = self._read_state(self.path, mmap=False)
        self._mark_saved()
        logger.info("%s was updated by another process; reloaded it (generation %d)", self.path, on_disk)

    def _merge_into_disk_state(self) -> None:
        config, index, files = self._read_state(self.path, mmap=False)
        gone = [i for i in self._deleted if i in index]
        if gone:
            index.delete(gone)
        mine = [i for i in self._upserted if i in self.index]
        if mine:
            import torch

            docs = self.index.get(mine)
            index.add(mine, torch.stack([d.embeddings for d in docs]), [d.metadata for d in docs])
        current = {source: asdict(entry) for source, entry in self.files.items()}
        for source, entry in self.files.items():
            if self._saved_files.get(source) != current[source]:
                files[source] = entry
        for source in set(self._saved_files) - set(self.files):
            files.pop(source, None)
        logger.warning(
            "%s was saved by another process meanwhile; merged this writer's %d added and %d removed pages into it",
            self.path,
            len(mine),
            len(gone),
        )
        config["files"] = {}
        config["generation"] = int(config.get("generation", 0))
        self.config.update({k: v for k, v in config.items() if k not in ("files",)})
        self.index, self.files = index, files

    @property
    def page_policy(self) -> PagePolicy:
        """How this collection turns a page into an id, a model input and metadata (its embedding mode)."""
        return PagePolicy(self.embedding_mode)

    def model_input(self, record: PageRecord) -> ModelInput | None:
        """What gets embedded for a page in this collection's mode; ``None`` when the page has nothing."""
        return self.page_policy.model_input(record)

    def add_pages(self, records: Sequence[PageRecord], inputs: Sequence[Any], *, batch_size: int = 16) -> list[str]:
        """Encode ``inputs`` (one per record) and upsert them as the records' pages."""
        if not records:
            return []
        policy = self.page_policy
        ids = [page_id(page_source(record), record.page) for record in records]
        metadatas = [policy.metadata(record) for record in records]
        self.searcher.batch_size = batch_size
        added = self.searcher.add_documents(list(inputs), ids=ids, metadatas=metadatas, show_progress=False)
        units = [w for windows in self.searcher.page_ids(added).values() for w in windows]  # every window
        self._upserted.update(units)
        self._deleted.difference_update(units)
        return added

    def delete_pages(self, ids: Sequence[str]) -> int:
        """Remove pages by id, each with all its windows (those not present are ignored; no model is loaded);
        returns how many pages were removed."""
        from .windows import stored_window_ids

        present = [i for i in dict.fromkeys(ids) if i in self.index]
        if present:
            found = stored_window_ids(self.index, present)
            units = list(dict.fromkeys(w for doc_id in present for w in found[doc_id]))
            self.index.delete(units)
            self._deleted.update(units)
            self._upserted.difference_update(units)
            lexical = self._lexical_side()
            if lexical is not None:
                lexical.delete(found[doc_id][0] for doc_id in present)
        return len(present)

    def add_texts(
        self,
        texts: Sequence[str],
        *,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[dict[str, Any]] | None = None,
    ) -> list[str]:
        """Encode and upsert plain texts (no file entry); ``ids`` default to content hashes. The text is kept in
        ``metadata["text"]``; an id that names a page of an indexed file is refused (re-index the file instead)."""
        if ids is not None:
            of_files = {i for entry in self.files.values() for i in entry.ids}
            taken = [i for i in ids if i in of_files]
            if taken:
                raise InvalidInputError(f"id(s) {taken[:3]} name pages of indexed files; re-index the file instead")
        added = self.searcher.add_texts(texts, metadatas, ids, show_progress=False)
        units = [w for windows in self.searcher.page_ids(added).values() for w in windows]
        self._upserted.update(units)
        self._deleted.difference_update(units)
        return added

    def delete_ids(self, ids: Sequence[str]) -> int:
        """Remove pages or texts by id, all or nothing: an id not stored raises :class:`DocumentNotFoundError`
        and nothing is removed. A removed page of an indexed file leaves that file's entry (its other pages stay,
        and an unchanged file is not re-indexed; ``delete_source`` removes a whole file)."""
        wanted = list(dict.fromkeys(ids))
        missing = [i for i in wanted if i not in self.index]
        if missing:
            raise DocumentNotFoundError(f"{len(missing)} id(s) are not in the index at {self.path}: {missing[:5]}")
        removed = self.delete_pages(wanted)
        gone = set(wanted)
        for entry in self.files.values():
            if gone.intersection(entry.ids):
                entry.ids = [i for i in entry.ids if i not in gone]
        return removed

    def _lexical_side(self) -> Any:
        """The BM25 side that matches :attr:`index` (``None`` when it has to be rebuilt)."""
        if self._searcher is not None and self._searcher.index is self.index:
            return self._searcher.lexical_if_built
        return self.lexical if self._lexical_index is self.index else None

    def delete_source(self, source: str | os.PathLike) -> int:
        """Remove every page of a file (indexed by the CLI, or added with :meth:`add_pages`); returns the number of
        pages removed. A file with no page here raises :class:`~metaembed_rag.errors.DocumentNotFoundError`."""
        from .windows import stored_page_ids

        key = source_key(source)
        entry = self.files.pop(key, None)
        ids = list(entry.ids) if entry is not None else []
        known = set(ids)
        ids += [i for i in stored_page_ids(self.index) if i.rsplit("#page=", 1)[0] == key and i not in known]
        if entry is None and not ids:
            listed = ", ".join(sorted(self.files)[:5]) or "none"
            raise DocumentNotFoundError(f"{source} is not in the index at {self.path} (indexed files: {listed})")
        return self.delete_pages(ids)

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
        return self.searcher.search(
            query, budget=budget, k=k, cascade=cascade, filter=filter, normalize=normalize, hybrid=hybrid
        )

    def info(self) -> dict[str, Any]:
        """A JSON-ready summary: model, mode, dpi, counts, sizes, and per-file page counts."""
        return summarize(self.path, self.config, pages=len(self), files=self.files, index=self.index)


def _check_manifest(folder: Path, config: dict[str, Any], index: MultiVectorIndex, files: dict[str, FileEntry]) -> None:
    """Every page the manifest lists must be in the index, and the index must be of the manifest's model.

    (Pages added through :meth:`DocumentCollection.add_pages` without a file entry are allowed.)
    """
    from .windows import stored_page_ids

    listed = {i for entry in files.values() for i in entry.ids}
    stored = set(stored_page_ids(index))  # window 0 of each page (the other windows hang off it)
    missing = len(listed - stored)
    if missing:
        raise IndexFormatError(
            f"{folder}: {missing} page(s) listed in {COLLECTION_FILE} are missing from {INDEX_DIR}/: the index is "
            "damaged or was replaced (rebuild it)"
        )
    identity = config["model"].get("identity") or {}
    recorded = index.model_identity or {}
    if identity.get("embedding_dim") not in (None, index.dim) or (
        identity.get("fingerprint") and recorded.get("fingerprint") not in (None, identity["fingerprint"])
    ):
        raise IndexFormatError(f"{folder}: {INDEX_DIR}/ was built with another model than {COLLECTION_FILE} records")


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

            folder = DocumentCollection._folder(path) or path
            index_config = read_index_config(folder / INDEX_DIR)
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
