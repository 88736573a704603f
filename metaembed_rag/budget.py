"""Retrieval budgets: how many query and candidate vectors take part in MaxSim.

A :class:`Budget` ``(r_q, r_c)`` selects the first ``r_q`` query vectors and the first ``r_c`` candidate
vectors. Matryoshka Multi-Vector Retrieval trains the prefixes in :data:`MATRYOSHKA_GROUPS`, so each of them is
usable at query time without re-encoding.

Example:
    >>> Budget.parse("8,16")
    Budget(r_q=8, r_c=16)
    >>> Budget.parse((1, 1)).validate(max_query=16, max_candidate=64)
    Budget(r_q=1, r_c=1)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from .errors import BudgetError

MATRYOSHKA_GROUPS: tuple[tuple[int, int], ...] = ((1, 1), (2, 4), (4, 8), (8, 16), (16, 64))
"""The budget groups trained by MMR in the MetaEmbed paper, coarsest first."""

_BUDGET_TEXT = re.compile(r"^\s*\(?\s*(\d+)\s*[,x×]\s*(\d+)\s*\)?\s*$")


@dataclass(frozen=True, order=True)
class Budget:
    """An immutable retrieval budget ``(r_q, r_c)``; both counts are at least 1.

    Example:
        >>> b = Budget(8, 16)
        >>> tuple(b)
        (8, 16)
    """

    r_q: int
    r_c: int

    def __post_init__(self) -> None:
        for name, value in (("r_q", self.r_q), ("r_c", self.r_c)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise BudgetError(f"budget {name} must be an integer, got {value!r}")
            if value < 1:
                raise BudgetError(f"budget {name} must be >= 1, got {value} in ({self.r_q}, {self.r_c})")

    def __iter__(self):
        yield self.r_q
        yield self.r_c

    def __str__(self) -> str:
        return f"{self.r_q},{self.r_c}"

    @classmethod
    def parse(cls, value: BudgetLike) -> Budget:
        """Accept a :class:`Budget`, a pair of ints, or a string such as ``"8,16"`` / ``"(8, 16)"``.

        Example:
            >>> Budget.parse("16,64") == Budget(16, 64)
            True
        """
        if isinstance(value, Budget):
            return value
        if isinstance(value, str):
            match = _BUDGET_TEXT.match(value)
            if not match:
                raise BudgetError(f"malformed budget string {value!r}; expected 'r_q,r_c' such as '8,16'")
            return cls(int(match.group(1)), int(match.group(2)))
        if isinstance(value, (tuple, list)) and len(value) == 2:
            r_q, r_c = value
            if hasattr(r_q, "__index__") and not isinstance(r_q, bool):
                r_q = int(r_q)
            if hasattr(r_c, "__index__") and not isinstance(r_c, bool):
                r_c = int(r_c)
            return cls(r_q, r_c)
        raise BudgetError(
            f"cannot interpret {value!r} as a budget; use Budget(r_q, r_c), a pair (r_q, r_c) or 'r_q,r_c'"
        )

    def validate(self, *, max_query: int | None = None, max_candidate: int | None = None) -> Budget:
        """Return ``self`` if it fits the limits, else raise :class:`BudgetError` naming them."""
        if max_query is not None and self.r_q > max_query:
            raise BudgetError(
                f"budget {tuple(self)} asks for r_q={self.r_q} query vectors but only {max_query} are available"
            )
        if max_candidate is not None and self.r_c > max_candidate:
            raise BudgetError(
                f"budget {tuple(self)} asks for r_c={self.r_c} candidate vectors but only {max_candidate} "
                "are stored/produced; rebuild with more candidate vectors or use a smaller budget"
            )
        return self


BudgetLike = Union[Budget, tuple[int, int], list[int], str]

FULL_BUDGET = Budget(*MATRYOSHKA_GROUPS[-1])


def resolve_budget(
    value: BudgetLike | None, *, max_query: int, max_candidate: int, default: BudgetLike | None = None
) -> Budget:
    """Parse ``value`` (or ``default``, or the largest budget the limits allow) and validate it.

    Example:
        >>> resolve_budget(None, max_query=16, max_candidate=32)
        Budget(r_q=16, r_c=32)
    """
    if value is None:
        value = default if default is not None else (max_query, max_candidate)
    return Budget.parse(value).validate(max_query=max_query, max_candidate=max_candidate)
