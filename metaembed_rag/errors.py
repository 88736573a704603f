"""The exception hierarchy: every error this package raises on purpose is a :class:`MetaEmbedError`.

Each subclass also derives from the matching builtin (``ValueError``, ``KeyError``, ``ImportError`` …), so
code that already catches those keeps working.

Example:
    >>> from metaembed_rag.errors import BudgetError, MetaEmbedError
    >>> issubclass(BudgetError, MetaEmbedError) and issubclass(BudgetError, ValueError)
    True
"""

from __future__ import annotations


class MetaEmbedError(Exception):
    """Base class of all errors raised by metaembed_rag."""


class InvalidInputError(MetaEmbedError, ValueError):
    """An input to encode, index or search is malformed (empty, wrong type, wrong shape, NaN …)."""


class UnsupportedInputError(InvalidInputError, TypeError):
    """An input of a type or modality the model cannot handle (e.g. an image for a text-only model)."""


class ImageLoadError(InvalidInputError):
    """An image could not be read or decoded, or has size zero."""


class BudgetError(MetaEmbedError, ValueError):
    """A retrieval budget is malformed or exceeds what the model or index provides."""


class CheckpointError(MetaEmbedError, ValueError):
    """A folder is not a valid MetaEmbed checkpoint, or has an unknown format version."""


class IncompatibleModelError(MetaEmbedError, ValueError):
    """Embeddings, an index or a checkpoint belong to another model (other dimension or identity)."""


class IndexFormatError(MetaEmbedError, ValueError):
    """A saved index is truncated, tampered with, or written by an unknown format version."""


class UnsafePathError(MetaEmbedError, ValueError):
    """A write would replace or delete something this package did not create (a user's folder or file)."""


class IndexLockedError(MetaEmbedError, TimeoutError):
    """Another process holds the write lock of an index, collection or checkpoint folder."""


class DocumentNotFoundError(MetaEmbedError, KeyError):
    """One or more document ids are not in the index."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "document not found"


class DuplicateIdError(InvalidInputError):
    """The same document id appears more than once in one call."""


class MissingDependencyError(MetaEmbedError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class LoaderError(MetaEmbedError, OSError):
    """A document (PDF, image) could not be loaded."""


class InputNotFoundError(LoaderError, FileNotFoundError):
    """A file, folder or glob given as input does not exist (or matches nothing)."""


class IndexNotFoundError(MetaEmbedError, FileNotFoundError):
    """An index that was asked for by name or folder does not exist."""


class StoreConnectionError(MetaEmbedError, ConnectionError):
    """An external vector store (e.g. a Qdrant server) could not be reached."""


def require(module: str, extra: str, purpose: str | None = None):
    """Import an optional dependency, or raise :class:`MissingDependencyError` naming the extra.

    Example:
        >>> np = require("numpy", "dev")
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"'{module}' is needed{what} but is not installed. Install it with: pip install 'metaembed-rag[{extra}]'"
        ) from exc
