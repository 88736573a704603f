"""BERT-family text encoders (BERT, MiniLM, RoBERTa …) loaded through ``AutoModel``.

These encoders attend bidirectionally, so the MetaEmbed layout ``[text; M_q; M_c]`` is kept with a block
attention mask that mirrors the causal case: text attends to text only (its states stay the pretrained ones),
``M_q`` attends to text and ``M_q``, ``M_c`` to everything. A query may therefore skip ``M_c`` exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import AutoModel, AutoTokenizer

from ...errors import CheckpointError, UnsupportedInputError
from ...inputs import ModelInput
from .base import BackboneFamily, Batch

_TEXT, _PAD = 1, 0


class BertFamily(BackboneFamily):
    """Text-only bidirectional encoders with absolute position embeddings."""

    name = "bert"
    causal = False
    supports_images = False

    @classmethod
    def matches(cls, model_type: str) -> bool:
        return model_type in ("bert", "roberta", "xlm-roberta", "distilbert", "electra", "mpnet")

    @classmethod
    def load(cls, name_or_path, *, revision, dtype, local_files_only, trust_remote_code, max_length):
        kwargs = {
            "revision": revision,
            "local_files_only": local_files_only,
            "trust_remote_code": trust_remote_code,
        }
        try:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
            model = AutoModel.from_pretrained(
                name_or_path, dtype=dtype, add_pooling_layer=False, attn_implementation="sdpa", **kwargs
            )
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load text encoder {name_or_path!r}: {exc}") from exc
        limit = getattr(model.config, "max_position_embeddings", max_length) or max_length
        return cls(model, tokenizer, max_length=min(max_length, int(limit)))

    def prepare(self, items: Sequence[ModelInput], prompt: str, meta_sizes: tuple[int, ...]) -> Batch:
        for item in items:
            if item.image is not None:
                raise UnsupportedInputError(
                    "this model has a text-only backbone and cannot encode images; "
                    "use a vision-language checkpoint (e.g. Qwen2.5-VL) for image inputs"
                )
        num_meta = sum(meta_sizes)
        texts = [prompt + (item.text or "") for item in items]
        encoded = self.processor(
            texts, truncation=True, max_length=self.max_length - num_meta, add_special_tokens=True
        )["input_ids"]
        placeholder = self.processor.pad_token_id or 0
        meta_segments = [seg for group, size in enumerate(meta_sizes) for seg in [2 + group] * size]
        length = max(len(ids) for ids in encoded) + num_meta
        input_ids = torch.full((len(items), length), placeholder, dtype=torch.long)
        segments = torch.full((len(items), length), _PAD, dtype=torch.long)
        for row, ids in enumerate(encoded):
            start = length - num_meta - len(ids)
            input_ids[row, start : length - num_meta] = torch.tensor(ids, dtype=torch.long)
            segments[row, start : length - num_meta] = _TEXT
            segments[row, length - num_meta :] = torch.tensor(meta_segments, dtype=torch.long)
        position_ids = ((segments != _PAD).cumsum(dim=1) - 1).clamp(min=0)
        return {"input_ids": input_ids, "segments": segments, "position_ids": position_ids}

    def run(self, batch: Batch) -> torch.Tensor:
        device = next(self.backbone.parameters()).device
        dtype = next(self.backbone.parameters()).dtype
        segments = batch["segments"].to(device)
        keys = segments[:, None, :]
        queries = segments[:, :, None]
        allowed = (keys != _PAD) & (keys <= queries)
        allowed |= torch.eye(segments.shape[1], dtype=torch.bool, device=device)
        mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        output = self.backbone(
            input_ids=batch["input_ids"].to(device),
            attention_mask=mask[:, None, :, :],
            position_ids=batch["position_ids"].to(device),
            token_type_ids=torch.zeros_like(batch["input_ids"], device=device),
        )
        return output.last_hidden_state

    def lora_target_modules(self) -> list[str]:
        names = {name.rsplit(".", 1)[-1] for name, _ in self.backbone.named_modules()}
        wanted = ["query", "key", "value", "dense", "q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"]
        return [n for n in wanted if n in names]
