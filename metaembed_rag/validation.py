"""Argument rules shared by every search entry point (decided once, here).

Example:
    >>> check_k(5)
    5
    >>> check_k(True)
    Traceback (most recent call last):
    ...
    metaembed_rag.errors.InvalidInputError: k must be a positive integer, got True
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidInputError


def check_k(k: Any, name: str = "k") -> int:
    """``k`` (how many results) as a positive ``int``; booleans, floats and ``k < 1`` are refused."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {k!r}")
    return k
