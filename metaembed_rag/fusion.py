"""Fusing rankings for hybrid search: reciprocal-rank fusion (default) or a weighted sum of normalised scores.

RRF scores an item ``sum_s w_s / (k + rank_s)`` over the rankings ``s`` it appears in (rank from 1); it needs no
score calibration, which is why it is the default. ``"weighted"`` min-max normalises each ranking's scores over
the items it returned and sums ``w_s * normalised``; an item missing from a ranking gets 0 there.

Example:
    >>> fuse([[("a", 0.9), ("b", 0.5)], [("b", 7.0), ("c", 3.0)]], k=60)[0][0]
    'b'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InvalidInputError

DEFAULT_RRF_K = 60
FUSION_METHODS = ("rrf", "weighted")


@dataclass(frozen=True)
class HybridOptions:
    """How a hybrid search fuses the multi-vector and the BM25 rankings.

    Args:
        method: ``"rrf"`` (reciprocal-rank fusion) or ``"weighted"`` (normalised scores).
        k: the RRF constant.
        dense_weight, lexical_weight: the weight of each ranking.
        candidates: how many pages each ranking contributes (at least the number of results asked for).
    """

    method: str = "rrf"
    k: int = DEFAULT_RRF_K
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    candidates: int = 100

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise InvalidInputError(f"unknown fusion {self.method!r}; choose one of {', '.join(FUSION_METHODS)}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 0:
            raise InvalidInputError(f"the RRF k must be a non-negative integer, got {self.k!r}")
        for name in ("dense_weight", "lexical_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InvalidInputError(f"{name} must be a non-negative number, got {value!r}")
        if isinstance(self.candidates, bool) or not isinstance(self.candidates, int) or self.candidates < 1:
            raise InvalidInputError(f"candidates must be a positive integer, got {self.candidates!r}")

    @classmethod
    def parse(cls, value: HybridOptions | dict | bool | None) -> HybridOptions | None:
        """``True`` → the defaults; a dict → options; ``False``/``None`` → no hybrid search."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            try:
                return cls(**value)
            except TypeError as exc:
                raise InvalidInputError(f"unknown hybrid option: {exc}") from exc
        raise InvalidInputError(f"hybrid must be True, False, a dict or HybridOptions, got {type(value).__name__}")


def fuse(
    rankings: Sequence[Sequence[tuple[str, float]]],
    *,
    method: str = "rrf",
    k: int = DEFAULT_RRF_K,
    weights: Sequence[float] | None = None,
) -> list[tuple[str, float]]:
    """Fuse ranked ``(id, score)`` lists (best first) into one, best first; ties keep first-seen order."""
    if method not in FUSION_METHODS:
        raise InvalidInputError(f"unknown fusion {method!r}; choose one of {', '.join(FUSION_METHODS)}")
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise InvalidInputError(f"got {len(rankings)} rankings but {len(weights)} weights")
    total: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if method == "rrf":
            for rank, (doc_id, _) in enumerate(ranking, 1):
                total[doc_id] = total.get(doc_id, 0.0) + weight / (k + rank)
            continue
        if not ranking:
            continue
        values = [score for _, score in ranking]
        low, high = min(values), max(values)
        span = high - low
        for doc_id, score in ranking:
            norm = (score - low) / span if span > 0 else 1.0
            total[doc_id] = total.get(doc_id, 0.0) + weight * norm
    order = {doc_id: i for i, doc_id in enumerate(total)}
    return sorted(total.items(), key=lambda item: (-item[1], order[item[0]]))
