"""metaembed_rag: MetaEmbed multi-vector multimodal retrieval for RAG.

Heavy and optional modules load lazily, on first use of the name that needs them.

Example:
    >>> import metaembed_rag
    >>> metaembed_rag.Budget.parse("8,16")
    Budget(r_q=8, r_c=16)
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .budget import MATRYOSHKA_GROUPS, Budget
from .errors import MetaEmbedError

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "MetaEmbedModel": "metaembed_rag.modeling.model",
    "MetaEmbedConfig": "metaembed_rag.modeling.config",
    "maxsim": "metaembed_rag.scoring",
}

if TYPE_CHECKING:  # pragma: no cover
    from .modeling.config import MetaEmbedConfig
    from .modeling.model import MetaEmbedModel
    from .scoring import maxsim


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'metaembed_rag' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "MATRYOSHKA_GROUPS",
    "Budget",
    "MetaEmbedConfig",
    "MetaEmbedError",
    "MetaEmbedModel",
    "__version__",
    "maxsim",
]
