"""The contract between :class:`~metaembed_rag.MetaEmbedModel` and one backbone family.

A family knows how to load its backbone and processor, how to turn :class:`ModelInput` s into a padded batch
with the meta placeholder positions appended at the end of every sequence, and how to run the backbone so
that the placeholder positions carry the learnable meta token embeddings.

All families use **left padding**: the meta positions are then the last ``num_meta`` positions of every row,
which makes gathering them trivial and keeps the outputs independent of the batch composition.

Adding a backbone family is one new file with a subclass registered through
:func:`metaembed_rag.modeling.families.register_family`.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ...inputs import ModelInput

Batch = dict[str, Any]


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence ``transformers``' load reports and weight-loading bars while a backbone loads."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


class BackboneFamily(ABC):
    """A loaded backbone (a ``transformers`` model) with its processor, seen through the MetaEmbed layout.

    Attributes:
        name: family name stored in checkpoints (``"bert"``, ``"qwen2_vl"``).
        causal: whether the backbone attends causally; then meta query outputs never depend on the
            meta candidate tokens, and queries skip them.
        supports_images: whether images can be encoded.
    """

    name: ClassVar[str]
    causal: ClassVar[bool]
    supports_images: ClassVar[bool]

    def __init__(self, backbone: nn.Module, processor: Any, *, max_length: int) -> None:
        self.backbone = backbone
        self.processor = processor
        self.max_length = max_length

    # --- loading -------------------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def matches(cls, model_type: str) -> bool:
        """Whether this family handles a ``transformers`` config of ``model_type``."""

    @classmethod
    @abstractmethod
    def load(
        cls,
        name_or_path: str,
        *,
        revision: str | None,
        dtype: torch.dtype,
        local_files_only: bool,
        trust_remote_code: bool,
        max_length: int,
    ) -> BackboneFamily:
        """Load backbone and processor from a hub id or a local folder."""

    def save_processor(self, path: str | Path) -> None:
        """Write the processor/tokenizer files into ``path``."""
        self.processor.save_pretrained(str(path))

    # --- shape ---------------------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        config = self.backbone.config
        text_config = getattr(config, "text_config", None)
        return int(getattr(text_config, "hidden_size", None) or config.hidden_size)

    @property
    def input_embeddings(self) -> nn.Module:
        """The token embedding layer whose output the meta tokens overwrite."""
        return self.backbone.get_input_embeddings()

    # --- text capacity ---------------------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        """The text tokenizer (the processor itself for text-only families)."""
        return getattr(self.processor, "tokenizer", self.processor)

    def text_overhead(self, prompt: str) -> int:
        """Positions a text-only item takes besides its own text and the meta tokens (specials, template, prompt)."""
        return len(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character offsets ``(start, end)`` of the tokens of ``text`` (no special tokens)."""
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [(int(s), int(e)) for s, e in encoded["offset_mapping"]]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text (no special tokens), as :meth:`prepare` counts them."""
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    # --- batching ------------------------------------------------------------------------------------------
    @abstractmethod
    def prepare(self, items: Sequence[ModelInput], prompt: str, meta_sizes: tuple[int, ...]) -> Batch:
        """Tokenise (and preprocess images of) ``items``, left-padded, with ``sum(meta_sizes)`` trailing
        placeholder positions per row: ``(n_q,)`` for queries, ``(n_q, n_c)`` for documents. Returns tensors on
        the CPU."""

    def cost(self, item: ModelInput) -> int:
        """A rough size of one input, used to group inputs of similar length into batches."""
        cost = len(item.text or "")
        if item.image is not None:
            cost += item.image.size[0] * item.image.size[1] // 256
        return cost

    @abstractmethod
    def run(self, batch: Batch) -> torch.Tensor:
        """Run the backbone on a prepared batch; return the last hidden states ``[B, L, H]``."""

    def meta_hidden_states(self, batch: Batch, meta_embeddings: torch.Tensor) -> torch.Tensor:
        """Last-layer states ``[B, M, H]`` of the trailing ``M = len(meta_embeddings)`` positions."""
        num_meta = meta_embeddings.shape[0]
        with self._inject(meta_embeddings):
            hidden = self.run(batch)
        return hidden[:, -num_meta:, :]

    @contextlib.contextmanager
    def _inject(self, meta_embeddings: torch.Tensor) -> Iterator[None]:
        """Overwrite the last ``M`` positions of the token embeddings with ``meta_embeddings``."""
        num_meta = meta_embeddings.shape[0]

        def hook(_module: nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor:
            if output.ndim != 3 or output.shape[1] < num_meta:
                return output
            meta = meta_embeddings.to(dtype=output.dtype, device=output.device)
            meta = meta.unsqueeze(0).expand(output.shape[0], -1, -1)
            return torch.cat([output[:, :-num_meta], meta], dim=1)

        handle = self.input_embeddings.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    # --- training ------------------------------------------------------------------------------------------
    def enable_gradient_checkpointing(self) -> bool:
        """Turn on gradient checkpointing if the backbone supports it; return whether it did."""
        model = self.backbone
        if not getattr(model, "supports_gradient_checkpointing", False):
            return False
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        return True

    def lora_target_modules(self) -> list[str]:
        """Names of the attention and MLP projections LoRA adapts by default."""
        return ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
