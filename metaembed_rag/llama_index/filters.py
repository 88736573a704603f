"""LlamaIndex ``MetadataFilters`` as the core's filter dict (:mod:`metaembed_rag.filters`), so every store runs it.

Operators: ``==  !=  >  >=  <  <=  in  nin`` map one to one, ``is_empty`` to "missing, null, '' or []";
conditions ``and``/``or``/``not`` (not = none of the filters holds, as in LlamaIndex's own stores) and nested
``MetadataFilters`` map to ``$and``/``$or``/``$not``. ``contains``, ``any``, ``all`` and the text-match operators
have no equivalent in the core's operator set and raise :class:`~metaembed_rag.filters.FilterError`.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from ..filters import FilterError, validate_filter
from ..filters import MetadataFilter as CoreFilter

_OPERATORS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
}
SUPPORTED = [op.value for op in _OPERATORS] + [FilterOperator.IS_EMPTY.value]


def to_core_filter(filters: Any) -> CoreFilter:
    """Accept the core's dict/predicate, or LlamaIndex ``MetadataFilters`` (translated to the core's dict).

    Example:
        >>> to_core_filter(MetadataFilters(filters=[MetadataFilter(key="page", value=[1, 2], operator="in")]))
        {'$and': [{'page': {'$in': [1, 2]}}]}
        >>> to_core_filter(MetadataFilters(filters=[MetadataFilter(key="page", value=2, operator=">=")],
        ...                                condition="not"))
        {'$not': {'$or': [{'page': {'$gte': 2}}]}}
    """
    if isinstance(filters, MetadataFilter):
        filters = MetadataFilters(filters=[filters])
    if not isinstance(filters, MetadataFilters):
        return validate_filter(filters)
    return validate_filter(_translate(filters))


def _translate(filters: MetadataFilters) -> dict[str, Any]:
    if not filters.filters:
        raise FilterError("empty MetadataFilters; pass filters=None to search everything")
    children = [_translate(f) if isinstance(f, MetadataFilters) else _condition(f) for f in filters.filters]
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return {"$and": children}
    if condition == FilterCondition.OR:
        return {"$or": children}
    if condition == FilterCondition.NOT:
        return {"$not": {"$or": children}}
    raise FilterError(f"filter condition {condition!r} is not supported; use and, or, not")


def _condition(item: MetadataFilter) -> dict[str, Any]:
    if item.operator == FilterOperator.IS_EMPTY:
        return {"$or": [{item.key: None}, {item.key: ""}, {item.key: {"$eq": []}}]}
    op = _OPERATORS.get(item.operator)
    if op is None:
        raise FilterError(
            f"filter operator {item.operator.value!r} (on {item.key!r}) is not supported; use one of "
            f"{', '.join(SUPPORTED)}"
        )
    value = item.value
    if op in ("$in", "$nin") and not isinstance(value, list):
        raise FilterError(f"filter operator {item.operator.value!r} on {item.key!r} needs a list, got {value!r}")
    return {item.key: {op: value}}
