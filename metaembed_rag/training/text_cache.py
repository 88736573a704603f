"""A cheaper training forward for BERT-family backbones: text states without gradient below the LoRA layers.

Under the block mask of :mod:`metaembed_rag.modeling.families.bert`, text positions attend to text only, so
their states never depend on the meta tokens. Below the first layer that holds a trainable parameter (the
lowest LoRA layer), text states therefore carry no gradient at all: this forward computes them under
``torch.no_grad`` and lets only the meta positions (``M_q``/``M_c`` rows, as attention queries over the text
keys/values plus the allowed meta keys) build an autograd graph there. From the first trainable layer up,
text rows carry gradient as usual. The output equals ``family.meta_hidden_states`` (tested to float tolerance);
only the cost differs.

Example:
    >>> states = meta_states_split(model, batch)  # [B, M, H], like the normal forward  # doctest: +SKIP
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidInputError
from ..modeling.model import MetaEmbedModel, PreparedBatch

_PAD, _TEXT = 0, 1


def supports_text_cache(model: MetaEmbedModel) -> bool:
    """Whether :func:`meta_states_split` applies: a BERT-family backbone with the usual module layout."""
    if model.family.name != "bert":
        return False
    bert = _base_model(model.family.backbone)
    layers = getattr(getattr(bert, "encoder", None), "layer", None)
    return layers is not None and hasattr(bert, "embeddings") and hasattr(layers[0].attention, "self")


def first_trainable_layer(model: MetaEmbedModel) -> int:
    """Index of the lowest encoder layer holding a trainable parameter (the layer count when none does)."""
    layers = _base_model(model.family.backbone).encoder.layer
    for index, layer in enumerate(layers):
        if any(p.requires_grad for p in layer.parameters()):
            return index
    return len(layers)


def _base_model(backbone: nn.Module) -> nn.Module:
    getter = getattr(backbone, "get_base_model", None)
    return getter() if callable(getter) else backbone


def _heads(x: torch.Tensor, n: int) -> torch.Tensor:
    b, length, hidden = x.shape
    return x.view(b, length, n, hidden // n).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, n, length, d = x.shape
    return x.transpose(1, 2).reshape(b, length, n * d)


def _attend(attn: nn.Module, q_in: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor):
    n = attn.num_attention_heads
    query = _heads(attn.query(q_in), n)
    p = attn.dropout.p if attn.training else 0.0
    return _merge(F.scaled_dot_product_attention(query, keys, values, attn_mask=mask, dropout_p=p))


def _finish(layer: nn.Module, context: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    attention_out = layer.attention.output(context, residual)
    return layer.output(layer.intermediate(attention_out), attention_out)


def meta_states_split(model: MetaEmbedModel, batch: PreparedBatch) -> torch.Tensor:
    """Last-layer states ``[B, M, H]`` of the meta positions, text states detached below the LoRA layers."""
    if not supports_text_cache(model):
        raise InvalidInputError(f"the text-state cache needs a BERT-family backbone, not {model.family.name!r}")
    family = model.family
    bert = _base_model(family.backbone)
    meta = model.meta_tokens.for_side(batch.side)
    num_meta = meta.shape[0]
    device = next(bert.parameters()).device
    features = batch.features
    input_ids = features["input_ids"].to(device)
    segments = features["segments"].to(device)
    length = input_ids.shape[1]
    text_len = length - num_meta
    grad_from = first_trainable_layer(model)

    with family._inject(meta):
        hidden = bert.embeddings(
            input_ids=input_ids,
            position_ids=features["position_ids"].to(device),
            token_type_ids=torch.zeros_like(input_ids),
        )
    text, meta_h = hidden[:, :text_len], hidden[:, text_len:]
    if grad_from > 0:
        text = text.detach()
    # masks: text rows see non-pad text keys; meta rows see non-pad text keys and meta keys of segment <= theirs
    key_ok = segments[:, None, :] != _PAD
    text_allowed = key_ok[:, :, :text_len] | torch.eye(text_len, dtype=torch.bool, device=device)[None]
    meta_seg = segments[:, text_len:, None]
    meta_allowed = key_ok & (segments[:, None, :] <= meta_seg)
    text_mask = text_allowed[:, None]
    meta_mask = meta_allowed[:, None]
    for index, layer in enumerate(bert.encoder.layer):
        attn = layer.attention.self
        n = attn.num_attention_heads
        with torch.set_grad_enabled(torch.is_grad_enabled() and index >= grad_from):
            text_keys, text_values = _heads(attn.key(text), n), _heads(attn.value(text), n)
            new_text = _finish(layer, _attend(attn, text, text_keys, text_values, text_mask), text)
        keys = torch.cat([text_keys, _heads(attn.key(meta_h), n)], dim=2)
        values = torch.cat([text_values, _heads(attn.value(meta_h), n)], dim=2)
        meta_h = _finish(layer, _attend(attn, meta_h, keys, values, meta_mask), meta_h)
        text = new_text
    return meta_h


def forward_split(model: MetaEmbedModel, batch: PreparedBatch) -> torch.Tensor:
    """Like ``model(batch)`` (normalised embeddings ``[B, R, d]``) through :func:`meta_states_split`."""
    hidden = meta_states_split(model, batch)
    if batch.side == "document":
        hidden = hidden[:, model.num_query_tokens :]
    if model.projection is not None:
        hidden = model.projection(hidden.to(model.projection.weight.dtype))
    return F.normalize(hidden.float(), dim=-1)
