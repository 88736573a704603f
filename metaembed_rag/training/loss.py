"""Matryoshka Multi-Vector Retrieval (MMR): one InfoNCE loss per budget group, summed with weights.

The full query-token x candidate-token similarity tensor is computed once and sliced per group
``(r_q, r_c)``: a group's score is the MaxSim over the first ``r_q`` query and first ``r_c`` candidate
vectors, divided by ``r_q`` (so one temperature fits every group). Candidates are the in-batch positives
followed by any explicit hard negatives; query ``i``'s positive is candidate ``i``.

Example:
    >>> import torch, torch.nn.functional as F
    >>> q = F.normalize(torch.randn(4, 16, 8), dim=-1)
    >>> c = F.normalize(torch.randn(8, 64, 8), dim=-1)      # 4 positives, then 4 hard negatives
    >>> out = mmr_loss(q, c)
    >>> sorted(out.per_group)[:2]
    [(1, 1), (2, 4)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..budget import MATRYOSHKA_GROUPS, Budget, BudgetLike
from ..errors import BudgetError, InvalidInputError
from .config import DEFAULT_TEMPERATURE


@dataclass
class MMRLossOutput:
    """The weighted total and each group's (unweighted) InfoNCE loss."""

    loss: torch.Tensor
    per_group: dict[tuple[int, int], torch.Tensor]
    extra: dict[str, torch.Tensor] = field(default_factory=dict)


def parse_groups(groups: Sequence[BudgetLike] | None) -> list[Budget]:
    """Budgets from ``[(1, 1), "2,4", Budget(4, 8)]``; ``None`` gives the paper's five groups."""
    parsed = [Budget.parse(g) for g in (groups if groups is not None else MATRYOSHKA_GROUPS)]
    if not parsed:
        raise BudgetError("at least one budget group is needed for training")
    if len(set(parsed)) != len(parsed):
        raise BudgetError(f"budget groups repeat: {[tuple(g) for g in parsed]}")
    return parsed


def token_similarities(queries: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """All token dot products ``[n_q, n_c, R_q, R_c]`` between ``[n_q, R_q, d]`` and ``[n_c, R_c, d]``."""
    return torch.einsum("qid,cjd->qcij", queries.float(), candidates.float())


def mmr_loss(
    query_embeddings: torch.Tensor,
    candidate_embeddings: torch.Tensor,
    groups: Sequence[BudgetLike] | None = None,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    weights: Sequence[float] | Mapping[tuple[int, int], float] | None = None,
    exclude: torch.Tensor | None = None,
) -> MMRLossOutput:
    """MMR loss of ``B`` queries ``[B, R_q, d]`` against ``B + n_neg`` candidates ``[B + n_neg, R_c, d]``.

    Candidate ``i < B`` is the positive of query ``i``; the rest (hard negatives) are negatives of every
    query, like the other in-batch positives. ``weights`` default to 1 per group. ``exclude`` (``[B, n_c]``
    bool) removes candidates from a query's softmax: copies of its own positive elsewhere in the batch, which
    would otherwise count as negatives (its own positive, column ``i``, cannot be excluded).
    """
    if query_embeddings.ndim != 3 or candidate_embeddings.ndim != 3:
        raise InvalidInputError("MMR loss needs [n, vectors, dim] query and candidate embeddings")
    batch = query_embeddings.shape[0]
    if batch == 0:
        raise InvalidInputError("MMR loss got an empty batch")
    if candidate_embeddings.shape[0] < batch:
        raise InvalidInputError(
            f"MMR loss needs at least one candidate per query: {batch} queries, "
            f"{candidate_embeddings.shape[0]} candidates"
        )
    if temperature <= 0:
        raise InvalidInputError(f"temperature must be > 0, got {temperature}")
    budgets = parse_groups(groups)
    max_q, max_c = query_embeddings.shape[1], candidate_embeddings.shape[1]
    too_large = [(b.r_q, b.r_c) for b in budgets if b.r_q > max_q or b.r_c > max_c]
    if too_large:
        raise BudgetError(
            f"budget group(s) {', '.join(map(str, too_large))} exceed the model's tokens "
            f"({max_q} query, {max_c} candidate)"
        )
    group_weights = _group_weights(budgets, weights)
    if exclude is not None:
        n_c = candidate_embeddings.shape[0]
        if exclude.shape != (batch, n_c) or exclude.dtype != torch.bool:
            raise InvalidInputError(
                f"exclude must be a bool tensor of shape {(batch, n_c)}, got {tuple(exclude.shape)}"
            )
        if bool(exclude.diagonal().any()):
            raise InvalidInputError("exclude cannot remove a query's own positive (column i of row i)")
    sims = token_similarities(query_embeddings, candidate_embeddings)
    labels = torch.arange(batch, device=sims.device)
    per_group: dict[tuple[int, int], torch.Tensor] = {}
    total = sims.new_zeros(())
    for b, weight in zip(budgets, group_weights, strict=False):
        scores = sims[:, :, : b.r_q, : b.r_c].amax(dim=3).mean(dim=2)
        if exclude is not None:
            scores = scores.masked_fill(exclude.to(scores.device), float("-inf"))
        loss = F.cross_entropy(scores / temperature, labels)
        per_group[(b.r_q, b.r_c)] = loss
        total = total + weight * loss
    return MMRLossOutput(total, per_group)


def _group_weights(
    budgets: list[Budget], weights: Sequence[float] | Mapping[tuple[int, int], float] | None
) -> list[float]:
    if weights is None:
        return [1.0] * len(budgets)
    if isinstance(weights, Mapping):
        table = {tuple(Budget.parse(k)): float(v) for k, v in weights.items()}
        unknown = set(table) - {tuple(b) for b in budgets}
        if unknown:
            raise BudgetError(f"weights given for groups that are not trained: {sorted(unknown)}")
        return [table.get(tuple(b), 1.0) for b in budgets]
    values = [float(w) for w in weights]
    if len(values) != len(budgets):
        raise InvalidInputError(f"{len(values)} weights for {len(budgets)} budget groups")
    if any(w < 0 for w in values):
        raise InvalidInputError(f"group weights must be >= 0, got {values}")
    return values
