"""The learnable Meta Tokens: their own parameter, not rows of the vocabulary.

Example:
    >>> import torch
    >>> MetaTokens(16, 64, hidden_size=8).weight.shape
    torch.Size([80, 8])
"""

from __future__ import annotations

import torch
from torch import nn


class MetaTokens(nn.Module):
    """``num_query + num_candidate`` embeddings; the first ``num_query`` rows are ``M_q``, the rest ``M_c``."""

    def __init__(self, num_query: int, num_candidate: int, hidden_size: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.num_query = num_query
        self.num_candidate = num_candidate
        self.weight = nn.Parameter(torch.randn(num_query + num_candidate, hidden_size) * init_std)

    def for_side(self, side: str) -> torch.Tensor:
        """The embeddings appended for one side: ``M_q`` for queries, ``[M_q; M_c]`` for documents."""
        return self.weight[: self.num_query] if side == "query" else self.weight
