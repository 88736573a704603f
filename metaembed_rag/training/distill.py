"""Distillation from a single-vector teacher (by default the student's own backbone, adapter off, mean-pooled).

Two terms, added to the MMR InfoNCE:

- **align**: ``1 - cos`` between the student's *first* query/candidate vector and the teacher's vector of the
  same text, so the (1,1) budget starts from what the teacher already knows. Needs the teacher's dimension to
  equal the student's embedding dimension (:class:`IncompatibleModelError` otherwise).
- **kl**: per budget group, ``KL(teacher || student)`` between the in-batch score distributions of each query
  over all candidates (positives and hard negatives), at the student's temperature. Works for any teacher
  dimension.

Example:
    >>> import torch, torch.nn.functional as F
    >>> q, c = F.normalize(torch.randn(4, 16, 8), dim=-1), F.normalize(torch.randn(8, 64, 8), dim=-1)
    >>> tq, tc = F.normalize(torch.randn(4, 8), dim=-1), F.normalize(torch.randn(8, 8), dim=-1)
    >>> out = distill_loss(q, c, tq, tc, groups=[(1, 1), (16, 64)], align_weight=1.0, kl_weight=1.0)
    >>> sorted(out)
    ['align', 'kl']
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..budget import BudgetLike
from ..errors import IncompatibleModelError, InvalidInputError
from ..inputs import ModelInput
from ..modeling.model import MetaEmbedModel
from .config import DEFAULT_TEMPERATURE
from .loss import parse_groups, token_similarities


class BackboneTeacher:
    """The student's pretrained backbone with its LoRA adapter disabled, mean-pooled over the text tokens
    (the usual sentence-transformers pooling), L2-normalised. Costs one no-grad text-only forward."""

    def __init__(self, model: MetaEmbedModel, *, max_length: int | None = None, batch_size: int = 64) -> None:
        if model.family.name != "bert":
            raise InvalidInputError(f"the backbone teacher needs a BERT-family text encoder, not {model.family.name!r}")
        self.model = model
        self.max_length = max_length
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        return self.model.family.hidden_size

    @torch.no_grad()
    def __call__(self, items: Sequence[ModelInput]) -> torch.Tensor:
        family = self.model.family
        backbone = family.backbone
        tokenizer = family.processor
        limit = self.max_length or (family.max_length - self.model.num_query_tokens - self.model.num_candidate_tokens)
        texts = [item.text or "" for item in items]
        device = next(backbone.parameters()).device
        disable = getattr(backbone, "disable_adapter", None)
        was_training = backbone.training
        backbone.eval()
        out = []
        try:
            for start in range(0, len(texts), self.batch_size):
                batch = tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=limit,
                    return_tensors="pt",
                ).to(device)
                with disable() if callable(disable) else _null():
                    hidden = backbone(**batch).last_hidden_state.float()
                mask = batch["attention_mask"][..., None].float()
                out.append(F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0), dim=-1))
        finally:
            backbone.train(was_training)
        return torch.cat(out)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def distill_loss(
    query_embeddings: torch.Tensor,
    candidate_embeddings: torch.Tensor,
    teacher_queries: torch.Tensor,
    teacher_candidates: torch.Tensor,
    *,
    groups: Sequence[BudgetLike] | None = None,
    align_weight: float = 0.0,
    kl_weight: float = 0.0,
    temperature: float = DEFAULT_TEMPERATURE,
    teacher_temperature: float | None = None,
    exclude: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The weighted ``align`` and ``kl`` terms (only those with a weight > 0), each a scalar tensor.

    ``exclude`` (``[n_q, n_c]`` bool) marks candidates left out of query ``i``'s distribution (duplicates of
    its positive); the student's and the teacher's scores are masked alike.
    """
    n_q, n_c = query_embeddings.shape[0], candidate_embeddings.shape[0]
    if teacher_queries.shape[0] != n_q or teacher_candidates.shape[0] != n_c:
        raise InvalidInputError(
            f"teacher vectors ({teacher_queries.shape[0]} queries, {teacher_candidates.shape[0]} candidates) do not "
            f"match the batch ({n_q} queries, {n_c} candidates)"
        )
    if align_weight < 0 or kl_weight < 0:
        raise InvalidInputError("distillation weights must be >= 0")
    out: dict[str, torch.Tensor] = {}
    tq, tc = teacher_queries.float(), teacher_candidates.float()
    if align_weight > 0:
        dim = query_embeddings.shape[-1]
        if tq.shape[-1] != dim or tc.shape[-1] != dim:
            raise IncompatibleModelError(
                f"the teacher's vectors have dimension {tq.shape[-1]}, the student's {dim}: the align term needs "
                "equal dimensions (use only the KL term, or a teacher of the student's dimension)"
            )
        align_q = 1 - F.cosine_similarity(query_embeddings[:, 0].float(), tq, dim=-1).mean()
        align_c = 1 - F.cosine_similarity(candidate_embeddings[:, 0].float(), tc, dim=-1).mean()
        out["align"] = align_weight * (align_q + align_c) / 2
    if kl_weight > 0:
        tau_t = teacher_temperature or temperature
        teacher_scores = tq @ tc.T / tau_t
        if exclude is not None:
            teacher_scores = teacher_scores.masked_fill(exclude, float("-inf"))
        target = F.softmax(teacher_scores, dim=-1)
        sims = token_similarities(query_embeddings, candidate_embeddings)
        budgets = parse_groups(groups)
        total = sims.new_zeros(())
        for b in budgets:
            scores = sims[:, :, : b.r_q, : b.r_c].amax(dim=3).mean(dim=2) / temperature
            if exclude is not None:
                scores = scores.masked_fill(exclude, float("-inf"))
            log_student = F.log_softmax(scores, dim=-1)
            kl = (target * (torch.log(target.clamp(min=1e-12)) - log_student.clamp(min=-1e4))).sum(-1).mean()
            total = total + kl
        out["kl"] = kl_weight * total / len(budgets)
    return out
