"""The MetaEmbed encoder, its checkpoint format and its backbone families (loaded lazily: no torch on import)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "MetaEmbedConfig": "metaembed_rag.modeling.config",
    "MetaEmbedModel": "metaembed_rag.modeling.model",
    "PreparedBatch": "metaembed_rag.modeling.model",
}

if TYPE_CHECKING:  # pragma: no cover
    from .config import MetaEmbedConfig
    from .model import MetaEmbedModel, PreparedBatch


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'metaembed_rag.modeling' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["MetaEmbedConfig", "MetaEmbedModel", "PreparedBatch"]
