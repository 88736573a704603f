"""LlamaIndex ``MetadataFilters`` as the core's metadata filter (a dict when possible, else a predicate)."""

from __future__ import annotations

import operator
from typing import Any

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from ..errors import UnsupportedInputError
from ..index.base import MetadataFilter as CoreFilter
from ..index.base import validate_filter

_COMPARE = {
    FilterOperator.EQ: operator.eq,
    FilterOperator.NE: operator.ne,
    FilterOperator.GT: operator.gt,
    FilterOperator.LT: operator.lt,
    FilterOperator.GTE: operator.ge,
    FilterOperator.LTE: operator.le,
    FilterOperator.IN: lambda value, wanted: value in wanted,
    FilterOperator.NIN: lambda value, wanted: value not in wanted,
}


def to_core_filter(filters: Any) -> CoreFilter:
    """Accept the core's dict/predicate, or LlamaIndex ``MetadataFilters``.

    ``AND`` of ``==``/``in`` filters becomes a plain dict (which every store can push down); other operators
    (``!=``, ``>``, ``<``, ``>=``, ``<=``, ``nin``) and ``OR``/``NOT`` become a predicate on the metadata.

    Example:
        >>> to_core_filter(MetadataFilters(filters=[MetadataFilter(key="page", value=[1, 2], operator="in")]))
        {'page': {'$in': [1, 2]}}
    """
    if not isinstance(filters, MetadataFilters):
        return validate_filter(filters)
    plain = _as_dict(filters)
    return plain if plain is not None else _predicate(filters)


def _as_dict(filters: MetadataFilters) -> dict[str, Any] | None:
    if filters.condition not in (None, FilterCondition.AND):
        return None
    out: dict[str, Any] = {}
    for item in filters.filters:
        if not isinstance(item, MetadataFilter) or item.key in out:
            return None
        if item.operator == FilterOperator.EQ:
            out[item.key] = item.value
        elif item.operator == FilterOperator.IN and isinstance(item.value, list):
            out[item.key] = {"$in": list(item.value)}
        else:
            return None
    return out


def _predicate(filters: MetadataFilters):
    def check(item: Any, metadata: dict[str, Any]) -> bool:
        if isinstance(item, MetadataFilters):
            results = [check(child, metadata) for child in item.filters]
            if item.condition == FilterCondition.OR:
                return any(results)
            if item.condition == FilterCondition.NOT:
                return not any(results)
            return all(results)
        compare = _COMPARE.get(item.operator)
        if compare is None:
            raise UnsupportedInputError(
                f"filter operator {item.operator.value!r} is not supported; use one of "
                f"{', '.join(op.value for op in _COMPARE)}"
            )
        if item.key not in metadata:
            return item.operator in (FilterOperator.NE, FilterOperator.NIN)
        try:
            return bool(compare(metadata[item.key], item.value))
        except TypeError:
            return False

    _validate(filters)
    return lambda metadata: check(filters, metadata)


def _validate(filters: MetadataFilters) -> None:
    for item in filters.filters:
        if isinstance(item, MetadataFilters):
            _validate(item)
        elif item.operator not in _COMPARE:
            raise UnsupportedInputError(
                f"filter operator {item.operator.value!r} is not supported; use one of "
                f"{', '.join(op.value for op in _COMPARE)}"
            )
