"""Metadata filters as Qdrant conditions: what Qdrant can match exactly runs inside it, the rest here.

Example:
    >>> conditions, residual = translate_filter({"page": {"$in": [1, 2]}, "lang": "en"})
    >>> [(c.kind, c.key, c.values) for c in conditions], residual
    ([('any', 'page', (1, 2)), ('match', 'lang', ('en',))], False)
    >>> translate_filter({"page": {"$gt": 3}})[1]  # checked on the payloads
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ...filters import FILE_NAME_KEY, SOURCE_KEY, MetadataFilter, exact_source
from .schema import Condition


def _is_qdrant_key(key: Any) -> bool:
    # Qdrant reads "." and "[" in a key as a path into nested payload; such keys are matched here instead.
    return isinstance(key, str) and key != "" and not any(ch in key for ch in '.[]"')


def _value_condition(key: str, value: Any, booleans: bool) -> Condition | None:
    """The Qdrant condition for ``metadata[key] == value``, or ``None`` when Qdrant cannot express it."""
    if value is None:
        return Condition("null", key)
    if isinstance(value, bool) and not booleans:
        return None
    if isinstance(value, (bool, str)) or (isinstance(value, int) and not isinstance(value, bool)):
        return Condition("match", key, (value,))
    if isinstance(value, float) and math.isfinite(value):
        return Condition("range_eq", key, (value,))
    return None


def translate_filter(flt: MetadataFilter, *, booleans: bool = True) -> tuple[tuple[Condition, ...], bool]:
    """Split a filter into Qdrant conditions and whether a residual must be checked here on the payloads.

    Equality on strings, integers and booleans, ``$in`` lists of them, finite floats (as a closed range),
    ``None`` (missing or null) and ``$and`` of such become Qdrant conditions. The rest of the operator set of
    :mod:`metaembed_rag.filters` (``$ne $nin $gt $gte $lt $lte $or $not``), a callable, list or dict values,
    ``source`` values that are not absolute paths (matched by the path rules), ``file_name`` and keys with
    ``.``/``[`` (which Qdrant reads as nested paths) are evaluated exactly on the payloads instead, and so are
    booleans when ``booleans`` is false (Qdrant Edge 0.9 reads ``MatchValue(True)`` as the integer 1, which
    matches no boolean payload).
    """
    if flt is None:
        return (), False
    if callable(flt):
        return (), True
    conditions: list[Condition] = []
    residual = False
    for key, wanted in flt.items():
        if key == "$and":
            for child in wanted:
                child_conditions, child_residual = translate_filter(child, booleans=booleans)
                conditions.extend(child_conditions)
                residual = residual or child_residual
            continue
        if key.startswith("$") or not _is_qdrant_key(key) or key == FILE_NAME_KEY:
            residual = True
            continue
        ops = wanted if isinstance(wanted, Mapping) else {"$eq": wanted}
        for op, operand in ops.items():
            condition = _op_condition(key, op, operand, booleans)
            if condition is None:
                residual = True
            else:
                conditions.append(condition)
    return tuple(conditions), residual


def _op_condition(key: str, op: str, operand: Any, booleans: bool) -> Condition | None:
    """The Qdrant condition for one ``key: {op: operand}``, or ``None`` when it is checked on the payloads."""
    if op == "$eq":
        if key == SOURCE_KEY and not exact_source(operand):
            return None
        return _value_condition(key, operand, booleans)
    if op != "$in":
        return None
    values = list(operand)
    if not values:
        return Condition("any", key, ())  # matches nothing
    if key == SOURCE_KEY and not all(exact_source(v) for v in values):
        return None
    if all(isinstance(v, str) for v in values) or all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return Condition("any", key, tuple(values))
    nested = [_value_condition(key, v, booleans) for v in values]
    if any(c is None for c in nested):
        return None
    return Condition("or", key, nested=tuple(nested))  # type: ignore[arg-type]
