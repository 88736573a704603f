"""Registry of backbone families. A new family is one file plus one :func:`register_family` call.

Example:
    >>> family_for_model_type("bert").name
    'bert'
"""

from __future__ import annotations

import importlib

from ...errors import CheckpointError
from .base import BackboneFamily

# Built-in families, imported only when used: name -> (module:class, transformers model types).
_BUILTIN: dict[str, tuple[str, tuple[str, ...]]] = {
    "bert": (
        "metaembed_rag.modeling.families.bert:BertFamily",
        ("bert", "roberta", "xlm-roberta", "distilbert", "electra", "mpnet"),
    ),
    "qwen2_vl": ("metaembed_rag.modeling.families.qwen2_vl:Qwen2VLFamily", ("qwen2_vl", "qwen2_5_vl")),
}
_REGISTRY: dict[str, type[BackboneFamily]] = {}


def register_family(family: type[BackboneFamily]) -> type[BackboneFamily]:
    """Register a :class:`BackboneFamily` subclass (usable as a class decorator)."""
    _REGISTRY[family.name] = family
    return family


def get_family(name: str) -> type[BackboneFamily]:
    """The family registered (or built in) under ``name``."""
    if name not in _REGISTRY and name in _BUILTIN:
        module, attr = _BUILTIN[name][0].split(":")
        register_family(getattr(importlib.import_module(module), attr))
    try:
        return _REGISTRY[name]
    except KeyError:
        known = sorted(set(_REGISTRY) | set(_BUILTIN))
        raise CheckpointError(f"unknown backbone family {name!r}; known: {known}") from None


def family_for_model_type(model_type: str) -> type[BackboneFamily]:
    """The family that handles a ``transformers`` ``model_type``."""
    for family in _REGISTRY.values():
        if family.matches(model_type):
            return family
    for name, (_, model_types) in _BUILTIN.items():
        if model_type in model_types:
            return get_family(name)
    raise CheckpointError(
        f"no backbone family supports model_type {model_type!r}; "
        f"supported families: {sorted(set(_REGISTRY) | set(_BUILTIN))}. "
        "Adding one is a single file: see metaembed_rag/modeling/families/base.py"
    )


__all__ = ["BackboneFamily", "family_for_model_type", "get_family", "register_family"]
