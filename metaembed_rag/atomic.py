"""Atomic, owner-checked writes: a crash never leaves a half-written file, and nothing foreign is ever replaced.

Files are written to a temporary name and renamed. Folders (an index, a collection, a checkpoint) are built in
a staging folder beside the target and swapped in; the target must be missing, empty, or already a folder of
the same kind written by this package (its marker file names the format), otherwise
:class:`~metaembed_rag.errors.UnsafePathError` is raised and nothing is touched. Every folder write holds the
folder's inter-process lock (:func:`folder_lock`); leftovers of a crashed swap (``.NAME.old-*``,
``.NAME.new-*``) are restored or removed, under that lock, by the next write or :func:`recover_folder`.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> write_json_atomic(p, {"a": 1}); read_json(p)
    {'a': 1}
    >>> kind = FolderKind("example folder", "marker.json", "example")
    >>> with atomic_directory(p.parent / "out", kind) as staging:
    ...     write_json_atomic(staging / "marker.json", {"format": "example"})
    >>> is_ours(p.parent / "out", kind)
    True
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import IndexFormatError, IndexLockedError, UnsafePathError

logger = logging.getLogger(__name__)

LOCK_TIMEOUT_ENV = "METAEMBED_RAG_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT_S = 600.0
_MAX_MARKER_BYTES = 1 << 20
_MAX_JSON_BYTES = 1 << 31


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------------------------ files
@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it is renamed onto ``target``.

    On an exception the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()  # our own temporary file (mkstemp above)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as pretty JSON to ``path`` atomically (lone surrogates are written as ``\\u`` escapes)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True) + "\n", encoding="utf-8")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file (UTF-8); too deeply nested JSON raises ``ValueError``, never ``RecursionError``.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "deep.json"
        >>> _ = p.write_text("[" * 100000 + "]" * 100000)
        >>> read_json(p)
        Traceback (most recent call last):
        ...
        ValueError: ... is nested too deeply to be read
    """
    return parse_json(Path(path).read_bytes(), str(path))


def parse_json(data: bytes | str, label: str = "JSON") -> Any:
    """``json.loads`` that turns recursion and decoding failures into ``ValueError`` naming ``label``."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError(f"{label} is nested too deeply to be read") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{label} is not UTF-8: {exc}") from None


def read_format_file(file: str | os.PathLike, format_name: str, version: int, *, what: str) -> dict[str, Any]:
    """Read a JSON file that names its format and version; anything else is an :class:`IndexFormatError`.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.json"
        >>> write_json_atomic(p, {"format": "x", "version": 2})
        >>> read_format_file(p, "x", 1, what="collection file")
        Traceback (most recent call last):
        ...
        metaembed_rag.errors.IndexFormatError: ... has format version 2; this metaembed-rag reads version 1 ...
    """
    try:
        config = read_json(file)
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"cannot read {file}: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != format_name:
        raise IndexFormatError(f"{file} is not a metaembed-rag {what}")
    if config.get("version") != version:
        raise IndexFormatError(
            f"{file} has format version {config.get('version')!r}; this metaembed-rag reads version {version} "
            "(upgrade metaembed-rag, or rebuild the index)"
        )
    return config


# ------------------------------------------------------------------------------------------------ folders
@dataclass(frozen=True)
class FolderKind:
    """A kind of folder this package writes, recognised by a JSON marker file holding ``{"format": FORMAT}``."""

    name: str
    marker: str
    format: str
    format_key: str = "format"


def is_ours(folder: str | os.PathLike, kind: FolderKind) -> bool:
    """Whether ``folder`` holds ``kind``'s marker file with its format name."""
    marker = Path(folder) / kind.marker
    try:
        if not marker.is_file() or marker.stat().st_size > _MAX_MARKER_BYTES:
            return False
        data = parse_json(marker.read_bytes(), str(marker))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get(kind.format_key) == kind.format


def check_writable(target: str | os.PathLike, kind: FolderKind) -> None:
    """Raise :class:`UnsafePathError` unless ``target`` is missing, an empty folder, or a ``kind`` folder.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp()); _ = (folder / "thesis.tex").write_text("...")
        >>> check_writable(folder, FolderKind("index", "index.json", "x"))
        Traceback (most recent call last):
        ...
        metaembed_rag.errors.UnsafePathError: ... is not a metaembed-rag index (it holds 1 other entry: ...
    """
    path = Path(target)
    if not os.path.lexists(path):
        return
    if not path.exists():
        raise UnsafePathError(f"{path} is a dangling symbolic link; refusing to write a {kind.name} there")
    if not path.is_dir():
        raise UnsafePathError(f"{path} is a file, not a folder; refusing to replace it with a {kind.name}")
    try:
        entries = sorted(p.name for p in path.iterdir())
    except OSError as exc:
        raise UnsafePathError(f"cannot list {path} ({exc.strerror or exc}); refusing to write there") from exc
    if not entries or is_ours(path, kind):
        return
    shown = ", ".join(repr(e) for e in entries[:3]) + (" …" if len(entries) > 3 else "")
    raise UnsafePathError(
        f"{path} is not a metaembed-rag {kind.name} (it holds {len(entries)} other entr"
        f"{'y' if len(entries) == 1 else 'ies'}: {shown}); refusing to replace it. Choose a new or empty folder."
    )


def real_target(target: str | os.PathLike) -> Path:
    """Where a folder write really goes: symlinks are followed (the link itself is kept) and the path made absolute."""
    return Path(os.path.realpath(os.fspath(target)))


def _leftovers(target: Path) -> list[Path]:
    """Staging folders of ours beside ``target``: exactly ``.NAME.new-XXXXXXXX`` / ``.NAME.old-XXXXXXXX`` (mkdtemp)."""
    parent = target.parent
    if not parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(new|old)-[a-z0-9_]{{8}}$")
    found = [p for p in parent.iterdir() if pattern.match(p.name)]
    return [p for p in found if p.is_dir() and not p.is_symlink()]


def recover_folder(target: str | os.PathLike, kind: FolderKind) -> list[str]:
    """Repair what a crashed swap left beside ``target``; returns what was done (also logged).

    A missing target is restored from the newest complete ``.NAME.old-*`` copy; every other staging folder of
    ours beside it is removed. Call it holding :func:`folder_lock` (every folder write does).
    """
    target = real_target(target)
    done: list[str] = []
    leftovers = sorted(_leftovers(target), key=lambda p: p.stat().st_mtime, reverse=True)
    if not leftovers:
        return done
    if not target.exists():
        for candidate in leftovers:
            if candidate.name.startswith(f".{target.name}.old-") and is_ours(candidate, kind):
                os.replace(candidate, target)
                _fsync_dir(target.parent)
                done.append(f"restored {target} from {candidate.name} (an interrupted save)")
                leftovers.remove(candidate)
                break
    for leftover in leftovers:
        shutil.rmtree(leftover, ignore_errors=True)  # a staging folder this package created (.NAME.new-/old-)
        done.append(f"removed {leftover.name}, left by an interrupted save of {target}")
    for line in done:
        logger.warning("%s", line)
    return done


def readable_folder(target: str | os.PathLike, kind: FolderKind) -> Path | None:
    """``target`` if it exists, else the previous version a writer moved aside mid-swap (read-only), else None."""
    path = Path(target)
    if path.exists():
        return path
    real = real_target(path)
    for candidate in sorted(_leftovers(real), key=lambda p: p.stat().st_mtime, reverse=True):
        if candidate.name.startswith(f".{real.name}.old-") and is_ours(candidate, kind):
            logger.warning("%s is being replaced or was interrupted mid-save; reading %s", path, candidate.name)
            return candidate
    return None


_ACTIVE_STAGING: set[Path] = set()
_STAGING_GUARD = threading.Lock()


def _inside_staging(target: Path) -> bool:
    with _STAGING_GUARD:
        return any(parent in _ACTIVE_STAGING for parent in target.parents)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, kind: FolderKind) -> Iterator[Path]:
    """Yield a fresh staging folder; on success it replaces ``target`` in one step.

    ``target`` must be missing, empty or already a ``kind`` folder (:func:`check_writable`); the write holds
    the folder's lock and first repairs leftovers of an earlier crash. Where the OS can exchange two paths
    atomically (Linux ``renameat2``) readers never see the target missing; elsewhere the old folder is moved
    aside first, and readers fall back to it (:func:`readable_folder`). A write nested inside another
    folder's staging (a checkpoint's model folder, a collection's index) goes straight into that staging.
    """
    target = real_target(target)
    if _inside_staging(target):
        check_writable(target, kind)
        target.mkdir(parents=True, exist_ok=True)
        yield target
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(target):
        recover_folder(target, kind)
        check_writable(target, kind)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
        with _STAGING_GUARD:
            _ACTIVE_STAGING.add(staging)
        try:
            yield staging
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)  # our own staging folder
            raise
        finally:
            with _STAGING_GUARD:
                _ACTIVE_STAGING.discard(staging)
        _swap_into_place(staging, target)


def _swap_into_place(staging: Path, target: Path) -> None:
    if target.exists() and _exchange(staging, target):
        _fsync_dir(target.parent)
        shutil.rmtree(staging, ignore_errors=True)  # now holds the previous version of our own folder
        return
    backup = None
    if target.exists():
        backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        backup.rmdir()
        os.replace(target, backup)
    os.replace(staging, target)
    _fsync_dir(target.parent)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)  # the previous version of our own folder


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: Any = None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    global _renameat2
    if _renameat2 is None:
        _renameat2 = False
        with contextlib.suppress(OSError, AttributeError, TypeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            func = libc.renameat2
            func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            func.restype = ctypes.c_int
            _renameat2 = func
    if not _renameat2:
        return False
    return _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


# ------------------------------------------------------------------------------------------------ locks
class _HeldLock:
    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.count = 0
        self.owner = threading.get_ident()


_HELD: dict[Path, _HeldLock] = {}
_HELD_GUARD = threading.Lock()


def lock_file_for(target: str | os.PathLike) -> Path:
    """The lock file of a folder: ``.NAME.lock`` beside its real path (one lock per real folder)."""
    real = real_target(target)
    return real.parent / f".{real.name}.lock"


def _timeout(value: float | None) -> float:
    if value is not None:
        return value
    with contextlib.suppress(ValueError):
        return float(os.environ.get(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT_S))
    return DEFAULT_LOCK_TIMEOUT_S


@contextlib.contextmanager
def folder_lock(target: str | os.PathLike, *, timeout: float | None = None) -> Iterator[None]:
    """Hold the inter-process write lock of a folder; re-entrant within a thread.

    Waits up to ``timeout`` seconds (default ``$METAEMBED_RAG_LOCK_TIMEOUT`` or 600) for another writer, then
    raises :class:`IndexLockedError`. The CLI, :func:`~metaembed_rag.pipeline.index_files`, collections,
    indexes and checkpoints all take this same lock.
    """
    lock_file = lock_file_for(target)
    with _HELD_GUARD:
        held = _HELD.get(lock_file)
        if held is not None and held.owner == threading.get_ident():
            held.count += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _HELD_GUARD:
                held.count -= 1
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no cross-process lock
        yield
        return
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_file, "a+")  # noqa: SIM115 - closed in the finally below
    try:
        limit = _timeout(timeout)
        deadline = time.monotonic() + limit
        waited = limit <= 0  # a mere attempt (timeout 0) says nothing
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if not waited:
                    logger.warning("%s is being written by another process; waiting for it", real_target(target))
                    waited = True
                if time.monotonic() >= deadline:
                    raise IndexLockedError(
                        f"{real_target(target)} is being written by another process; gave up after "
                        f"{limit:g} s (set {LOCK_TIMEOUT_ENV} to wait longer)"
                    ) from None
                time.sleep(0.05)
        entry = _HeldLock(handle)
        entry.count = 1
        with _HELD_GUARD:
            _HELD[lock_file] = entry
        try:
            yield
        finally:
            with _HELD_GUARD:
                _HELD.pop(lock_file, None)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()
