"""Qwen2-VL and Qwen2.5-VL vision-language backbones (the MetaEmbed paper's main backbone).

Every item becomes one user turn of the Qwen chat format, followed by the meta placeholder positions::

    <|im_start|>user\\n[<|vision_start|><|image_pad|>×n<|vision_end|>]{prompt}{text}<|im_end|>\\n  M_q [M_c]

- The prompt is put in front of every item, image-only ones included (then the text part is the prompt
  alone), so that queries and candidates stay distinguishable whatever their modality.
- The token ids are assembled piece by piece rather than by tokenising the whole string: the user text is
  tokenised with ``split_special_tokens=True``, so a literal ``<|image_pad|>`` typed by a user stays plain
  text, and it is the only part ever truncated (to ``max_length`` minus template, image and meta tokens).
  Image tokens are never cut: the image processor's ``max_pixels`` bounds them.
- Rows are left-padded. Position ids (3-D M-RoPE) are computed by the backbone's own ``get_rope_index`` from
  the attention mask, so padding shifts no position and an item gets the same states alone or in a batch.
- The backbone is the base ``Qwen2(_5)VLModel`` (no language-model head): only hidden states are needed.

The processor is :class:`QwenImageTextProcessor`, a Qwen2-VL processor without the video processor, which
in ``transformers`` needs torchvision; images go through the PIL image processor.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer
from transformers.processing_utils import ProcessorMixin

from ...errors import CheckpointError, InvalidInputError
from ...inputs import ModelInput
from .base import BackboneFamily, Batch

logger = logging.getLogger(__name__)

_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl")
_LORA_LEAVES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_TEXT, _IMAGE = 0, 1  # values of ``mm_token_type_ids``


class QwenImageTextProcessor(ProcessorMixin):
    """Qwen2-VL / Qwen2.5-VL processor for text and images only: an image processor and a tokenizer.

    The stock ``Qwen2_5_VLProcessor`` also loads a video processor, which requires torchvision. This one
    expands ``<|image_pad|>`` the same way (one token per ``merge_size²`` patches) and returns
    ``mm_token_type_ids`` (0 text, 1 image) like the stock processor.
    """

    return_mm_token_type_ids = True

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.image_token_id = getattr(tokenizer, "image_token_id", None) or tokenizer.convert_tokens_to_ids(
            self.image_token
        )
        super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs) -> str:
        merge_length = self.image_processor.merge_size**2
        num_image_tokens = int(image_inputs["image_grid_thw"][image_idx].prod()) // merge_length
        return self.image_token * num_image_tokens

    @property
    def model_input_names(self) -> list[str]:
        return [*super().model_input_names, "mm_token_type_ids"]


def _model_class(model_type: str) -> type[nn.Module]:
    if model_type == "qwen2_5_vl":
        from transformers import Qwen2_5_VLModel

        return Qwen2_5_VLModel
    from transformers import Qwen2VLModel

    return Qwen2VLModel


class Qwen2VLFamily(BackboneFamily):
    """Qwen2-VL and Qwen2.5-VL: causal decoder with a vision tower and 3-D rotary positions (M-RoPE)."""

    name = "qwen2_vl"
    causal = True
    supports_images = True

    def __init__(self, backbone: nn.Module, processor: Any, *, max_length: int) -> None:
        super().__init__(backbone, processor, max_length=max_length)
        config = backbone.config
        tokenizer = processor.tokenizer
        self.image_token_id = int(config.image_token_id)
        self.vision_start_id = int(config.vision_start_token_id)
        self.vision_end_id = int(config.vision_end_token_id)
        checks = {
            "<|vision_start|>": self.vision_start_id,
            "<|vision_end|>": self.vision_end_id,
            processor.image_token: self.image_token_id,
        }
        for token, expected in checks.items():
            found = tokenizer.convert_tokens_to_ids(token)
            if found != expected:
                raise CheckpointError(
                    f"tokenizer and model disagree on {token}: tokenizer id {found}, model config id {expected}"
                )
        self.merge_size = int(processor.image_processor.merge_size)
        placeholder = tokenizer.pad_token_id
        if placeholder is None:
            placeholder = tokenizer.convert_tokens_to_ids("<|endoftext|>")
        if placeholder is None or placeholder == self.image_token_id:
            raise CheckpointError("the tokenizer has no pad/<|endoftext|> token to use as placeholder")
        self.placeholder_id = int(placeholder)
        self._prefix = self._special_ids("<|im_start|>user\n")
        self._suffix = self._special_ids("<|im_end|>\n")

    def text_overhead(self, prompt: str) -> int:
        prompt_ids = self.processor.tokenizer(prompt, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        return len(self._prefix) + len(self._suffix) + len(prompt_ids)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.processor.tokenizer(list(texts), add_special_tokens=False, split_special_tokens=True)
        return [len(ids) for ids in encoded["input_ids"]]

    def _special_ids(self, template: str) -> list[int]:
        return list(self.processor.tokenizer(template, add_special_tokens=False)["input_ids"])

    # --- loading -------------------------------------------------------------------------------------------
    @classmethod
    def matches(cls, model_type: str) -> bool:
        return model_type in _MODEL_TYPES

    @classmethod
    def load(cls, name_or_path, *, revision, dtype, local_files_only, trust_remote_code, max_length):
        kwargs = {
            "revision": revision,
            "local_files_only": local_files_only,
            "trust_remote_code": trust_remote_code,
        }
        local = Path(str(name_or_path)).expanduser()
        if (local.is_absolute() or str(name_or_path).startswith((".", "~"))) and not local.is_dir():
            raise CheckpointError(f"no model folder at {str(name_or_path)!r}")
        source = str(local) if local.is_dir() else str(name_or_path)
        try:
            config = AutoConfig.from_pretrained(source, **kwargs)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load the config of {name_or_path!r}: {exc}") from exc
        if config.model_type not in _MODEL_TYPES:
            raise CheckpointError(
                f"{name_or_path!r} is a {config.model_type!r} model, not Qwen2-VL/Qwen2.5-VL ({_MODEL_TYPES})"
            )
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            image_processor = AutoImageProcessor.from_pretrained(source, backend="pil", **kwargs)
            processor = QwenImageTextProcessor(image_processor=image_processor, tokenizer=tokenizer)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(f"cannot load the processor of {name_or_path!r}: {exc}") from exc
        try:
            model = _model_class(config.model_type).from_pretrained(
                source, config=config, dtype=dtype, attn_implementation="sdpa", **kwargs
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"cannot load the Qwen-VL backbone {name_or_path!r}: {exc}") from exc
        model.eval()
        text_config = getattr(config, "text_config", config)
        limit = getattr(text_config, "max_position_embeddings", None) or max_length
        return cls(model, processor, max_length=min(max_length, int(limit)))

    # --- batching ------------------------------------------------------------------------------------------
    def prepare(self, items: Sequence[ModelInput], prompt: str, meta_sizes: tuple[int, ...]) -> Batch:
        num_meta = sum(meta_sizes)
        images = [item.image for item in items if item.image is not None]
        vision: dict[str, torch.Tensor] = {}
        image_tokens: list[int] = []
        if images:
            try:
                processed = self.processor.image_processor(images=images, return_tensors="pt")
            except ValueError as exc:  # e.g. an aspect ratio above 200
                raise InvalidInputError(f"cannot preprocess an image for {self.name}: {exc}") from exc
            vision = {
                "pixel_values": processed["pixel_values"],
                "image_grid_thw": processed["image_grid_thw"].to(torch.long),
            }
            image_tokens = [int(grid.prod()) // self.merge_size**2 for grid in vision["image_grid_thw"]]

        texts = [prompt + (item.text or "") for item in items]
        encoded = self.processor.tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        rows: list[list[int]] = []
        next_image = iter(image_tokens)
        for item, text_ids in zip(items, encoded, strict=True):
            ids = list(self._prefix)
            if item.image is not None:
                ids += [self.vision_start_id, *[self.image_token_id] * next(next_image), self.vision_end_id]
            budget = max(0, self.max_length - num_meta - len(ids) - len(self._suffix))
            if len(text_ids) > budget:
                if item.image is not None:  # (text-only inputs are warned about by MetaEmbedModel.encode)
                    logger.warning(
                        "an image takes %d of the model's %d positions: its text of %d tokens is cut to %d "
                        "(lower the image processor's max_pixels or raise max_length to keep more)",
                        len(ids),
                        self.max_length,
                        len(text_ids),
                        budget,
                    )
                text_ids = text_ids[:budget]
            rows.append([*ids, *text_ids, *self._suffix])

        length = max(len(ids) for ids in rows) + num_meta
        batch_size = len(items)
        input_ids = torch.full((batch_size, length), self.placeholder_id, dtype=torch.long)
        attention_mask = torch.zeros((batch_size, length), dtype=torch.long)
        for row, ids in enumerate(rows):
            start = length - num_meta - len(ids)
            input_ids[row, start : length - num_meta] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, start:] = 1  # the item and its trailing meta positions
        mm_token_type_ids = torch.where(input_ids == self.image_token_id, _IMAGE, _TEXT)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "mm_token_type_ids": mm_token_type_ids,
            **vision,
        }

    # --- running -------------------------------------------------------------------------------------------
    def _base_model(self) -> nn.Module:
        """The ``Qwen2(_5)VLModel`` inside the backbone, also when peft has wrapped it."""
        model = self.backbone
        for _ in range(4):
            if hasattr(type(model), "get_rope_index"):
                return model
            inner = getattr(model, "base_model", None)
            if inner is None or inner is model:
                inner = getattr(model, "model", None)
            if inner is None:
                break
            model = inner
        raise CheckpointError(f"{type(self.backbone).__name__} is not a Qwen2-VL/Qwen2.5-VL model")

    def position_ids(self, batch: Batch) -> torch.Tensor:
        """3-D M-RoPE position ids ``[3, B, L]``; padding positions get 0 and shift nothing."""
        grid = batch.get("image_grid_thw")
        position_ids, _ = self._base_model().get_rope_index(
            batch["input_ids"],
            mm_token_type_ids=batch["mm_token_type_ids"],
            image_grid_thw=grid,
            attention_mask=batch["attention_mask"],
        )
        return position_ids

    def run(self, batch: Batch) -> torch.Tensor:
        parameter = next(self.backbone.parameters())
        device = parameter.device
        dtype = next((p.dtype for p in self.backbone.parameters() if p.dtype.is_floating_point), parameter.dtype)
        inputs = {
            key: batch[key].to(device)
            for key in ("input_ids", "attention_mask", "mm_token_type_ids", "image_grid_thw")
            if batch.get(key) is not None
        }
        position_ids = batch.get("position_ids")
        if position_ids is None:
            position_ids = self.position_ids(batch)  # on the batch's device, the CPU as prepared
        inputs["position_ids"] = position_ids.to(device)
        if batch.get("pixel_values") is not None:
            inputs["pixel_values"] = batch["pixel_values"].to(device=device, dtype=dtype)
        output = self.backbone(**inputs, use_cache=False, return_dict=True)
        return output.last_hidden_state

    # --- training ------------------------------------------------------------------------------------------
    def lora_target_modules(self) -> list[str]:
        """Full names of the language model's attention and MLP projections; the vision tower is left out.

        peft matches each name as a suffix of a module path, so the list also works when the backbone sits
        inside another module.
        """
        names = []
        for name, module in self.backbone.named_modules():
            parts = name.split(".")
            if isinstance(module, nn.Linear) and parts[-1] in _LORA_LEAVES and "visual" not in parts:
                names.append(name)
        return names
