"""Find the loadable files under paths, folders (walked recursively) and glob patterns.

Symlink loops are walked once, non-regular files (FIFOs, sockets, dangling links) and unreadable folders are
reported as failures instead of stopping the walk.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "a.pdf").write_bytes(b"%PDF-1.7")
    8
    >>> files, failures = discover_files([root]); [f.name for f in files], failures
    (['a.pdf'], [])
"""

from __future__ import annotations

import glob
import logging
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .images import IMAGE_SUFFIXES
from .records import LoadFailure

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = frozenset({".pdf"} | IMAGE_SUFFIXES)
_GLOB_CHARS = set("*?[")


def discover_files(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    suffixes: Iterable[str] = SUPPORTED_SUFFIXES,
) -> tuple[list[Path], list[LoadFailure]]:
    """Expand ``paths`` into loadable files (sorted per argument, deduplicated) and failures.

    A file named explicitly is always kept (its content decides whether it loads); files found in folders or
    by globs are kept when their suffix is in ``suffixes``.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    wanted = {s.lower() for s in suffixes}
    files: list[Path] = []
    failures: list[LoadFailure] = []
    seen: set[str] = set()

    def keep(path: Path, explicit: bool) -> None:
        if not explicit and path.suffix.lower() not in wanted:
            return
        try:
            info = path.stat()
        except OSError as exc:
            failures.append(LoadFailure(str(path), f"cannot read: {exc.strerror or exc}"))
            return
        if not stat.S_ISREG(info.st_mode):
            failures.append(LoadFailure(str(path), "not a regular file"))
            return
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            files.append(path)

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for found in _walk(path, failures):
                keep(found, explicit=False)
        elif path.exists() or path.is_symlink():
            keep(path, explicit=True)
        elif _GLOB_CHARS & set(str(raw)):
            matches = sorted(glob.glob(str(raw), recursive=True))
            if not matches:
                failures.append(LoadFailure(str(raw), "the pattern matches no file", missing=True))
            for match in matches:
                match_path = Path(match)
                if match_path.is_dir():
                    for found in _walk(match_path, failures):
                        keep(found, explicit=False)
                else:
                    keep(match_path, explicit=False)
        else:
            failures.append(LoadFailure(str(raw), "no such file or folder", missing=True))
    return files, failures


def require_existing(paths: str | os.PathLike | Iterable[Any]) -> None:
    """Raise :class:`~metaembed_rag.errors.InputNotFoundError` naming every path (or glob) in ``paths`` that
    does not exist (matches nothing); bytes and images in ``paths`` are ignored.

    Example:
        >>> require_existing(["/no/such/folder/"])
        Traceback (most recent call last):
        metaembed_rag.errors.InputNotFoundError: /no/such/folder/: no such file or folder
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    missing = []
    for raw in paths:
        if not isinstance(raw, (str, os.PathLike)):
            continue
        path = Path(raw)
        if path.exists() or path.is_symlink():
            continue
        if _GLOB_CHARS & set(str(raw)):
            if not glob.glob(str(raw), recursive=True):
                missing.append(f"{raw}: the pattern matches no file")
        else:
            missing.append(f"{raw}: no such file or folder")
    if missing:
        from ..errors import InputNotFoundError

        raise InputNotFoundError("; ".join(missing))


def _walk(root: Path, failures: list[LoadFailure]) -> list[Path]:
    """Files under ``root`` (following symlinks, each real folder once), sorted."""
    found: list[Path] = []
    visited: set[tuple[int, int]] = set()

    def on_error(exc: OSError) -> None:
        failures.append(LoadFailure(str(exc.filename or root), f"cannot read folder: {exc.strerror or exc}"))

    for folder, dirs, names in os.walk(root, followlinks=True, onerror=on_error):
        try:
            info = os.stat(folder)
        except OSError as exc:
            on_error(exc)
            dirs[:] = []
            continue
        key = (info.st_dev, info.st_ino)
        if key in visited:
            logger.info("skipping %s: folder already visited (symlink loop)", folder)
            dirs[:] = []
            continue
        visited.add(key)
        found.extend(Path(folder) / name for name in names)
    return sorted(found)
