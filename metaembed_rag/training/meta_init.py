"""Initialise meta tokens from pooled text instead of random noise.

Each meta token becomes the mean word embedding of its own random sample of tokens drawn from real text
(special tokens excluded), so it starts as an "average word" that attends broadly over the passage, and the
tokens differ from one another by the sampling. Random-noise meta tokens start far from every embedding the
backbone was trained on.

Example:
    >>> init_meta_from_text(model, ["some passages", "of the training data"])   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import InvalidInputError
from ..modeling.model import MetaEmbedModel


def init_meta_from_text(
    model: MetaEmbedModel, texts: Sequence[str], *, tokens_per_meta: int = 32, seed: int = 0
) -> int:
    """Overwrite ``model.meta_tokens`` in place; return the number of text tokens sampled from."""
    if tokens_per_meta < 1:
        raise InvalidInputError(f"tokens_per_meta must be >= 1, got {tokens_per_meta}")
    tokenizer = getattr(model.family.processor, "tokenizer", model.family.processor)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids = [i for text in texts if text for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    ids = [i for i in ids if i not in special]
    if not ids:
        raise InvalidInputError("meta token initialisation needs some non-empty text")
    table = model.family.input_embeddings.weight
    generator = torch.Generator().manual_seed(seed)
    pool = torch.tensor(ids, dtype=torch.long)
    rows = model.meta_tokens.weight.shape[0]
    picks = pool[torch.randint(len(pool), (rows, tokens_per_meta), generator=generator)]
    with torch.no_grad():
        pooled = table.detach()[picks.to(table.device)].float().mean(dim=1)
        model.meta_tokens.weight.copy_(pooled.to(model.meta_tokens.weight))
    model.invalidate_fingerprint()
    return len(ids)
