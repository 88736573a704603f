"""Add and delete through the server (opt-in): each write is one locked, saved transaction on the collection folder.

A write opens the collection fresh from disk under the folder's write lock (the lock ``metaembed-rag index`` and
``delete`` hold), applies the change, and saves (atomic folder replacement, merge-on-save by generation), so a
concurrent CLI run and the server never lose each other's pages. Searches keep running on the previous state while
a write is in progress and switch to the saved state when it is done.

Rules (the CLI's, plus a root for paths): a path to add must exist (:class:`InputNotFoundError`) and lie under one
of the allowed roots (:class:`UnsafePathError`; default: the server's working folder), the index folder is never
indexed into itself, only the collection folder is written, and requests are bounded (number of paths and texts,
characters of text). Deletes are all or nothing: an unknown id or source raises and nothing is removed.

Example:
    >>> writer = CollectionWriter(".metaembed/default", model, roots=["docs/"])   # doctest: +SKIP
    >>> writer.add_paths(["docs/report.pdf"])["pages_indexed"]                       # doctest: +SKIP
    12
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .atomic import folder_lock, real_target
from .collection import COLLECTION_FILE, DocumentCollection
from .errors import DocumentNotFoundError, InputNotFoundError, InvalidInputError, UnsafePathError
from .filters import path_matches

logger = logging.getLogger(__name__)

MAX_PATHS = 100
MAX_TEXTS = 1000
MAX_TEXT_CHARS = 1_000_000
MAX_IDS = 10_000


class WritesDisabledError(InvalidInputError):
    """A write (add/delete) was asked of a server started without ``--allow-writes``."""


def _strings(value: Any, name: str, limit: int) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise InvalidInputError(f"{name} must be a list of non-empty strings")
    if len(value) > limit:
        raise InvalidInputError(f"at most {limit} {name} per request, got {len(value)}")
    return list(value)


class CollectionWriter:
    """Writes to the collection at ``path`` with ``model`` (the one the server searches with).

    ``roots``: folders whose files may be added (default: the working folder); ``lock_wait_s``: how long a write
    waits for another writer (a CLI ``index`` run) before :class:`~metaembed_rag.errors.IndexLockedError`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        model: Any,
        *,
        roots: Sequence[str | os.PathLike] | None = None,
        lock_wait_s: float = 60.0,
    ) -> None:
        self.path = Path(path)
        self.model = model
        self.roots = [real_target(r) for r in (roots if roots else [os.getcwd()])]
        self.lock_wait_s = lock_wait_s
        self.last_stamp: tuple[int, int, int] | None = None
        """``collection.json``'s (inode, mtime, size) right after the last write saved, taken under the lock."""
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------- checks
    def check_path(self, path: str) -> str:
        """``path`` made absolute, if it exists and lies under an allowed root once links are followed; else a
        typed error."""
        absolute = os.path.abspath(os.path.expanduser(path))
        if not os.path.exists(absolute):
            raise InputNotFoundError(f"{path} does not exist (on the server)")
        real = real_target(absolute)
        if not any(real == root or root in real.parents for root in self.roots):
            allowed = ", ".join(str(r) for r in self.roots)
            raise UnsafePathError(f"{path} is outside the folders this server may add from ({allowed})")
        return absolute

    # ------------------------------------------------------------------------------------------- writes
    def transaction(self, change: Callable[[DocumentCollection], dict[str, Any]]) -> tuple[dict[str, Any], Any]:
        """Open the collection under its lock, apply ``change``, save; returns (``change``'s report, searcher).

        The report adds ``index_pages`` (pages of indexed files) and ``index_documents`` (those plus texts)."""
        with self._lock, folder_lock(self.path, timeout=self.lock_wait_s):
            collection = DocumentCollection.open(self.path, model=self.model)
            report = change(collection)
            if collection.has_unsaved_changes:
                collection.save()
            info = os.stat(self.path / COLLECTION_FILE)
            self.last_stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
            report.update(
                {
                    "index_pages": collection.file_page_count,
                    "index_documents": len(collection),
                    "generation": collection.generation,
                }
            )
            return report, collection.searcher

    def add_paths(self, paths: Any, *, reindex: bool = False) -> tuple[dict[str, Any], Any]:
        """Index files and folders (as ``metaembed-rag index`` does); returns its report and the new searcher."""
        from .loaders import discover_files
        from .pipeline import index_files

        checked = [self.check_path(p) for p in _strings(paths, "paths", MAX_PATHS)]
        files, _ = discover_files(checked)
        for file in files:  # a folder under a root may hold a link to a file outside every root
            self.check_path(str(file))

        def change(collection: DocumentCollection) -> dict[str, Any]:
            report = index_files(collection, checked, reindex=reindex, show_progress=False)
            return report.to_dict()

        return self.transaction(change)

    def add_texts(self, texts: Any, *, ids: Any = None, metadatas: Any = None) -> tuple[dict[str, Any], Any]:
        """Add plain texts (upsert by id; default ids are content hashes)."""
        texts = _strings(texts, "texts", MAX_TEXTS)
        chars = sum(len(t) for t in texts)
        if chars > MAX_TEXT_CHARS:
            raise InvalidInputError(f"at most {MAX_TEXT_CHARS} characters of text per request, got {chars}")
        if ids is not None:
            ids = _strings(ids, "ids", MAX_TEXTS)
            if len(ids) != len(texts):
                raise InvalidInputError(f"got {len(texts)} texts but {len(ids)} ids")
        if metadatas is not None and (
            not isinstance(metadatas, (list, tuple)) or not all(isinstance(m, dict) for m in metadatas)
        ):
            raise InvalidInputError("metadatas must be a list of objects, one per text")

        def change(collection: DocumentCollection) -> dict[str, Any]:
            added = collection.add_texts(texts, ids=ids, metadatas=metadatas)
            return {"ids": added}

        return self.transaction(change)

    def delete(self, *, ids: Any = None, sources: Any = None) -> tuple[dict[str, Any], Any]:
        """Remove pages/texts by id and whole files by source (as the user names them: absolute, relative to the
        server's working folder, or a unique file name). All or nothing."""
        if ids is None and sources is None:
            raise InvalidInputError("give ids and/or sources to delete")
        ids = _strings(ids, "ids", MAX_IDS) if ids is not None else []
        sources = _strings(sources, "sources", MAX_PATHS) if sources is not None else []

        def change(collection: DocumentCollection) -> dict[str, Any]:
            keys = [_resolve_source(collection, s) for s in sources]  # all resolved before anything is removed
            missing = [i for i in dict.fromkeys(ids) if i not in collection.index]
            if missing:
                raise DocumentNotFoundError(f"{len(missing)} id(s) are not in the index: {missing[:5]}")
            removed = {key: collection.delete_source(key) for key in dict.fromkeys(keys)}
            still = [i for i in dict.fromkeys(ids) if i in collection.index]  # a source may have taken some
            count = collection.delete_ids(still) if still else 0
            return {"removed_ids": count, "removed_sources": removed}

        return self.transaction(change)


def _resolve_source(collection: DocumentCollection, wanted: str) -> str:
    """The one indexed file ``wanted`` names (see :func:`~metaembed_rag.filters.path_matches`)."""
    found = [key for key in collection.files if path_matches(key, wanted)]
    if not found:
        known = ", ".join(sorted(collection.files)[:5]) or "none"
        raise DocumentNotFoundError(f"{wanted} is not an indexed file (indexed files: {known})")
    if len(found) > 1:
        raise InvalidInputError(f"{wanted} names {len(found)} indexed files ({', '.join(found[:5])}); be more specific")
    return found[0]
