"""Metadata filters: one operator set for every store (in-process, Qdrant) and every adapter.

A filter is ``None``, a predicate on the metadata dict, or a dict of conditions, all of which must hold::

    {"page": 3}                                   equality (same as {"page": {"$eq": 3}})
    {"page": {"$gte": 2, "$lt": 5}}               several operators on one key: all must hold
    {"source": {"$in": ["a.pdf", "b.pdf"]}}       $in / $nin take a list
    {"$or": [{"page": 1}, {"kind": "image"}]}     $and / $or take a list of filters, $not one filter

Operators: ``$eq $ne $in $nin $gt $gte $lt $lte $and $or $not``; anything else is a :class:`FilterError`
(never a key name, never a silently empty result). A missing key counts as ``None``: it passes ``$ne`` and
``$nin`` of other values and fails the comparisons. Comparisons of values of different types fail.

``source`` matches the path as the user gave it: the stored (absolute) path equals it, equals it made absolute,
or ends with it at a path boundary, so ``"a.pdf"``, ``"reports/a.pdf"`` and ``"/home/me/reports/a.pdf"`` all
match ``/home/me/reports/a.pdf``. ``file_name`` (the key LlamaIndex readers set) falls back to the file name of
``source`` when the metadata has no ``file_name`` of its own.

Example:
    >>> meta = {"source": "/data/reports/a.pdf", "page": 3}
    >>> matches_filter(meta, {"source": "reports/a.pdf", "page": {"$gte": 2}})
    True
    >>> matches_filter(meta, {"$or": [{"page": 1}, {"file_name": "a.pdf"}]})
    True
    >>> matches_filter(meta, {"$not": {"page": {"$in": [3, 4]}}})
    False
    >>> validate_filter({"page": {"$like": 3}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    metaembed_rag.filters.FilterError: filter on 'page': unknown operator '$like'; use one of $eq, ...
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

from .errors import InvalidInputError

MetadataFilter = Union[Mapping[str, Any], Callable[[Mapping[str, Any]], bool], None]
"""A dict of conditions (see the module docs), or a predicate on the metadata dict."""

COMPARISONS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte")
LOGICAL = ("$and", "$or", "$not")
OPERATORS = COMPARISONS + LOGICAL

SOURCE_KEY = "source"
FILE_NAME_KEY = "file_name"
PATH_KEYS = (SOURCE_KEY, FILE_NAME_KEY)
"""Keys whose string values match by the path rules above (not plain equality)."""


class FilterError(InvalidInputError):
    """A metadata filter is malformed or uses an operator this package does not know."""


# ------------------------------------------------------------------------------------------------ validation
def validate_filter(flt: MetadataFilter) -> MetadataFilter:
    """Check a filter's shape and operators, raising :class:`FilterError`; returns it unchanged."""
    if flt is None or callable(flt):
        return flt
    _check_clause(flt, "the filter")
    return flt


def _check_clause(clause: Any, where: str) -> None:
    if not isinstance(clause, Mapping):
        raise FilterError(f"{where} must be a dict of conditions or a callable, got {type(clause).__name__}")
    for key, wanted in clause.items():
        if not isinstance(key, str):
            raise FilterError(f"{where}: keys must be strings, got {key!r}")
        if key in ("$and", "$or"):
            if isinstance(wanted, (str, bytes, Mapping)) or not isinstance(wanted, Sequence) or not wanted:
                raise FilterError(f"{where}: {key} needs a non-empty list of filters, got {wanted!r}")
            for position, child in enumerate(wanted):
                _check_clause(child, f"{key}[{position}]")
        elif key == "$not":
            _check_clause(wanted, "$not")
        elif key.startswith("$"):
            raise FilterError(f"{where}: unknown operator {key!r} at the top level; use one of {', '.join(LOGICAL)}")
        elif isinstance(wanted, Mapping):
            _check_operators(key, wanted)


def _check_operators(key: str, ops: Mapping[str, Any]) -> None:
    if not ops:
        raise FilterError(f"filter on {key!r}: empty operator dict")
    for op, value in ops.items():
        if op not in COMPARISONS:
            hint = "" if str(op).startswith("$") else " (to match a dict value, write {'$eq': {...}})"
            raise FilterError(f"filter on {key!r}: unknown operator {op!r}; use one of {', '.join(COMPARISONS)}{hint}")
        if op in ("$in", "$nin") and (isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence)):
            raise FilterError(f"filter on {key!r}: {op} needs a list of values, got {value!r}")


# -------------------------------------------------------------------------------------------------- matching
def matches_filter(metadata: Mapping[str, Any], flt: MetadataFilter) -> bool:
    """Whether ``metadata`` passes ``flt`` (``None`` passes everything)."""
    if flt is None:
        return True
    if callable(flt):
        return bool(flt(metadata))
    return _matches(metadata, flt)


def _matches(metadata: Mapping[str, Any], clause: Mapping[str, Any]) -> bool:
    for key, wanted in clause.items():
        if key == "$and":
            ok = all(_matches(metadata, child) for child in wanted)
        elif key == "$or":
            ok = any(_matches(metadata, child) for child in wanted)
        elif key == "$not":
            ok = not _matches(metadata, wanted)
        elif key.startswith("$"):
            raise FilterError(f"unknown operator {key!r} at the top level; use one of {', '.join(LOGICAL)}")
        else:
            value = _lookup(metadata, key)
            ops = wanted if isinstance(wanted, Mapping) else {"$eq": wanted}
            ok = all(_compare(key, op, value, operand) for op, operand in ops.items())
        if not ok:
            return False
    return True


def _lookup(metadata: Mapping[str, Any], key: str) -> Any:
    if key == FILE_NAME_KEY and key not in metadata and isinstance(metadata.get(SOURCE_KEY), str):
        return os.path.basename(metadata[SOURCE_KEY])
    return metadata.get(key)


def _equal(key: str, value: Any, wanted: Any) -> bool:
    if key in PATH_KEYS and isinstance(value, str) and isinstance(wanted, str):
        return path_matches(value, wanted)
    if isinstance(value, bool) != isinstance(wanted, bool):  # True is not 1 here (nor in Qdrant)
        return False
    if isinstance(value, (list, tuple)) and isinstance(wanted, (list, tuple)):
        return list(value) == list(wanted)
    return bool(value == wanted)


def _compare(key: str, op: str, value: Any, operand: Any) -> bool:
    if op == "$eq":
        return _equal(key, value, operand)
    if op == "$ne":
        return not _equal(key, value, operand)
    if op == "$in":
        return any(_equal(key, value, item) for item in operand)
    if op == "$nin":
        return not any(_equal(key, value, item) for item in operand)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if not _comparable(value, operand):
            return False
        if op == "$gt":
            return value > operand
        if op == "$gte":
            return value >= operand
        if op == "$lt":
            return value < operand
        return value <= operand
    raise FilterError(f"filter on {key!r}: unknown operator {op!r}; use one of {', '.join(COMPARISONS)}")


def _comparable(value: Any, operand: Any) -> bool:
    if isinstance(value, bool) or isinstance(operand, bool):
        return False
    numbers = (int, float)
    return (isinstance(value, numbers) and isinstance(operand, numbers)) or (
        isinstance(value, str) and isinstance(operand, str)
    )


def path_matches(stored: str, wanted: str) -> bool:
    """Whether a stored path is the file the user named: equal, equal once made absolute, or ending with it at a
    path boundary.

    Example:
        >>> path_matches("/data/reports/a.pdf", "a.pdf"), path_matches("/data/reports/a.pdf", "ports/a.pdf")
        (True, False)
    """
    if stored == wanted:
        return True
    if not wanted:
        return False
    if os.path.abspath(wanted) == stored:
        return True
    tail = os.path.normpath(wanted)
    if tail.startswith(("..", os.sep)) or tail == ".":
        return False
    return stored.endswith(os.sep + tail) or (os.altsep is not None and stored.endswith(os.altsep + tail))


def exact_source(wanted: Any) -> bool:
    """Whether a ``source`` value can only match itself (an absolute, normalised path): stores may then match it
    exactly (e.g. push it down to Qdrant) instead of applying the path rules on each payload."""
    return isinstance(wanted, str) and os.path.isabs(wanted) and os.path.normpath(wanted) == wanted
