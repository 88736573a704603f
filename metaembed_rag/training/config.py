"""The training run's options, as a dataclass loadable from JSON (no torch import: the CLI builds flags from it).

Example:
    >>> TrainingConfig(backbone="b", train_file="t.jsonl", output_dir="o").lora_r
    32
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..atomic import read_json
from ..budget import MATRYOSHKA_GROUPS
from ..errors import InvalidInputError

DEFAULT_TEMPERATURE = 0.03
"""InfoNCE temperature tau of the paper."""


@dataclass
class TrainingConfig:
    """Everything a training run needs; loadable from JSON (``TrainingConfig.from_dict``)."""

    backbone: str
    train_file: str
    output_dir: str
    eval_file: str | None = None
    num_query_tokens: int = 16
    num_candidate_tokens: int = 64
    projection_dim: int | None = None
    query_prompt: str = "Query: "
    document_prompt: str = ""
    groups: list[list[int]] = field(default_factory=lambda: [list(g) for g in MATRYOSHKA_GROUPS])
    group_weights: list[float] | None = None
    temperature: float = DEFAULT_TEMPERATURE
    lora_r: int = 32
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_target_modules: list[str] | None = None
    learning_rate: float = 1e-4
    meta_learning_rate: float | None = None
    weight_decay: float = 0.0
    warmup_steps: int = 50
    batch_size: int = 32
    gradient_accumulation_steps: int = 1
    max_steps: int | None = None
    epochs: float = 1.0
    max_minutes: float | None = None
    max_query_length: int | None = None
    max_document_length: int | None = None
    max_length: int | None = None
    bf16: bool | None = None
    gradient_checkpointing: bool | None = None
    eval_every: int = 0
    save_every: int = 0
    save_total_limit: int = 2
    log_every: int = 10
    seed: int = 0
    on_bad_line: str = "stop"
    device: str | None = None
    num_threads: int | None = None
    name: str | None = None
    # levers (see benchmarks/results/starter_levers.md)
    distill_align_weight: float = 0.0
    distill_kl_weight: float = 0.0
    teacher_temperature: float | None = None
    text_cache: bool | None = None
    meta_init: str = "random"
    max_passage_chars: int = 100_000

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"unknown training options {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | Path) -> TrainingConfig:
        try:
            return cls.from_dict(read_json(Path(path)))
        except (OSError, ValueError) as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise InvalidInputError(f"cannot read training config {path}: {exc}") from exc

    def validate(self) -> None:
        positive = ("batch_size", "gradient_accumulation_steps", "num_query_tokens", "num_candidate_tokens", "lora_r")
        for name in positive:
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise InvalidInputError("batch_size must be >= 2 for in-batch negatives")
        if self.on_bad_line not in ("stop", "skip"):
            raise InvalidInputError(f"on_bad_line must be 'stop' or 'skip', got {self.on_bad_line!r}")
        if self.meta_init not in ("random", "pooled"):
            raise InvalidInputError(f"meta_init must be 'random' or 'pooled', got {self.meta_init!r}")
        if self.distill_align_weight < 0 or self.distill_kl_weight < 0:
            raise InvalidInputError("distillation weights must be >= 0")
        if self.max_length is not None and self.max_length <= self.num_query_tokens + self.num_candidate_tokens:
            raise InvalidInputError(
                f"max_length {self.max_length} leaves no room for text next to "
                f"{self.num_query_tokens + self.num_candidate_tokens} meta tokens"
            )
        if self.max_passage_chars < 1:
            raise InvalidInputError(f"max_passage_chars must be >= 1, got {self.max_passage_chars}")
        from .loss import parse_groups  # torch: only when a run is validated

        for g in parse_groups(self.groups):
            g.validate(max_query=self.num_query_tokens, max_candidate=self.num_candidate_tokens)

    def model_signature(self) -> dict[str, Any]:
        """What must match between a run and a checkpoint it resumes from."""
        return {
            "backbone": self.backbone,
            "num_query_tokens": self.num_query_tokens,
            "num_candidate_tokens": self.num_candidate_tokens,
            "projection_dim": self.projection_dim,
            "lora_r": self.lora_r,
            "lora_alpha": self.lora_alpha,
            "lora_target_modules": self.lora_target_modules,
        }

    def recipe_signature(self) -> dict[str, Any]:
        """The loss recipe a resumed run must share with its checkpoint (else the run would silently change)."""
        return {
            "groups": [list(g) for g in self.groups],
            "group_weights": self.group_weights,
            "temperature": self.temperature,
            "distill_align_weight": self.distill_align_weight,
            "distill_kl_weight": self.distill_kl_weight,
            "teacher_temperature": self.teacher_temperature,
            "max_query_length": self.max_query_length,
            "max_document_length": self.max_document_length,
            "max_length": saved_max_length(self),
        }


def saved_max_length(config: TrainingConfig) -> int:
    """The ``max_length`` a trained checkpoint declares (text + meta tokens): ``config.max_length``, else what the
    documents were trained at (``max_document_length`` + meta tokens), else 512. Readers that window long pages
    size their windows from it, so it should match the training length."""
    if config.max_length is not None:
        return config.max_length
    if config.max_document_length is not None:
        return config.max_document_length + config.num_query_tokens + config.num_candidate_tokens
    return 512
