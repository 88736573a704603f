"""The Qwen2-VL / Qwen2.5-VL backbone family on a tiny random checkpoint built offline."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from metaembed_rag.errors import CheckpointError
from metaembed_rag.inputs import ModelInput
from metaembed_rag.modeling.families.qwen2_vl import Qwen2VLFamily, QwenImageTextProcessor

try:
    from tests.fixtures.tiny_qwen import build_tiny_qwen2_5_vl
except ImportError:  # tests/ itself on sys.path (pytest rootdir-less import mode)
    from fixtures.tiny_qwen import build_tiny_qwen2_5_vl

PROMPT = "Query: "


def _load(path, *, max_length: int = 256, dtype: torch.dtype = torch.float32) -> Qwen2VLFamily:
    return Qwen2VLFamily.load(
        str(path),
        revision=None,
        dtype=dtype,
        local_files_only=True,
        trust_remote_code=False,
        max_length=max_length,
    )


def _image(width: int, height: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory):
    return build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("qwen2_5_vl"))


@pytest.fixture(scope="session")
def family(tiny_path) -> Qwen2VLFamily:
    torch.manual_seed(0)
    return _load(tiny_path)


@pytest.fixture(scope="session")
def items() -> list[ModelInput]:
    return [
        ModelInput(text="what does the invoice total say about the revenue in 2023?"),
        ModelInput(image=_image(40, 56, 1)),
        ModelInput(image=_image(90, 30, 2)),
        ModelInput(text="a chart", image=_image(120, 80, 3)),
        ModelInput(text="short"),
    ]


@pytest.fixture(scope="session")
def meta(family) -> torch.Tensor:
    return torch.randn(12, family.hidden_size, generator=torch.Generator().manual_seed(1))


def test_fixture_is_small_and_round_trips(tiny_path):
    size = sum(f.stat().st_size for f in tiny_path.iterdir())
    assert size < 5_000_000
    processor = QwenImageTextProcessor.from_pretrained(str(tiny_path))
    assert processor.tokenizer.convert_tokens_to_ids("<|image_pad|>") == processor.image_token_id
    assert type(processor.image_processor).__name__.endswith("Pil")


def test_prepare_layout(family, items):
    batch = family.prepare(items, PROMPT, (4, 8))
    batch_size, length = batch["input_ids"].shape
    assert batch_size == len(items)
    for key in ("attention_mask", "mm_token_type_ids"):
        assert batch[key].shape == (batch_size, length)
    # left padding: every row ends with 12 attended placeholder positions
    assert bool((batch["attention_mask"][:, -12:] == 1).all())
    assert bool((batch["input_ids"][:, -12:] == family.placeholder_id).all())
    assert bool((batch["mm_token_type_ids"][:, -12:] == 0).all())
    assert bool(batch["attention_mask"][:, 0].any())  # the longest row starts at column 0
    # one image grid per image item, image tokens marked in mm_token_type_ids
    grids = batch["image_grid_thw"]
    assert grids.shape == (3, 3)
    per_row = (batch["mm_token_type_ids"] == 1).sum(dim=1).tolist()
    assert per_row[0] == per_row[4] == 0
    assert [n for n in per_row if n] == (grids.prod(dim=1) // family.merge_size**2).tolist()
    assert batch["pixel_values"].shape[0] == int(grids.prod(dim=1).sum())


def test_meta_hidden_states_shape(family, items, meta):
    with torch.no_grad():
        out = family.meta_hidden_states(family.prepare(items, PROMPT, (4, 8)), meta)
    assert out.shape == (len(items), 12, family.hidden_size)
    assert bool(torch.isfinite(out).all())


def test_batch_and_padding_invariance(family, items, meta):
    with torch.no_grad():
        batched = family.meta_hidden_states(family.prepare(items, PROMPT, (4, 8)), meta)
        reversed_ = family.meta_hidden_states(family.prepare(items[::-1], PROMPT, (4, 8)), meta).flip(0)
        alone = torch.cat([family.meta_hidden_states(family.prepare([it], PROMPT, (4, 8)), meta) for it in items])
    assert (batched - alone).abs().max().item() < 1e-4
    assert (batched - reversed_).abs().max().item() < 1e-4


def test_left_padded_positions_equal_unpadded(family, items):
    batch = family.prepare(items, PROMPT, (4, 8))
    padded = family.position_ids(batch)
    for row, item in enumerate(items):
        single = family.prepare([item], PROMPT, (4, 8))
        reference, _ = family._base_model().get_rope_index(
            single["input_ids"],
            mm_token_type_ids=single["mm_token_type_ids"],
            image_grid_thw=single.get("image_grid_thw"),
        )
        keep = batch["attention_mask"][row].bool()
        assert torch.equal(padded[:, row, keep], reference[:, 0])


def test_query_skips_candidate_meta_tokens(family, items, meta):
    with torch.no_grad():
        full = family.meta_hidden_states(family.prepare(items, PROMPT, (4, 8)), meta)
        query = family.meta_hidden_states(family.prepare(items, PROMPT, (4,)), meta[:4])
    assert (query - full[:, :4]).abs().max().item() < 1e-5


def test_meta_embeddings_change_the_outputs(family, items, meta):
    batch = family.prepare(items, PROMPT, (4, 8))
    shifted = meta.clone()
    shifted[0] += 1.0
    with torch.no_grad():
        base = family.meta_hidden_states(batch, meta)
        moved = family.meta_hidden_states(batch, shifted)
    assert (moved[:, 0] - base[:, 0]).abs().max().item() > 1e-2


def test_gradients_reach_meta_embeddings(family, items, meta):
    weights = meta.clone().requires_grad_(True)
    out = family.meta_hidden_states(family.prepare(items, PROMPT, (4, 8)), weights)
    target = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    (out * target).sum().backward()
    assert weights.grad is not None
    assert bool(torch.isfinite(weights.grad).all())
    assert bool((weights.grad.abs().sum(dim=1) > 0).all())


def test_truncation_keeps_image_tokens(tiny_path):
    family = _load(tiny_path, max_length=40)
    long_text = "what does the invoice total say about the revenue in 2023? " * 20
    batch = family.prepare(
        [ModelInput(text=long_text), ModelInput(text=long_text, image=_image(300, 300, 4))], PROMPT, (4, 8)
    )
    assert batch["input_ids"].shape[1] == 40
    image_tokens = int(batch["image_grid_thw"][0].prod()) // family.merge_size**2
    assert int(batch["mm_token_type_ids"][1].sum()) == image_tokens
    tokenizer = family.processor.tokenizer
    assert tokenizer.decode(batch["input_ids"][0]).startswith("<|im_start|>user\nQuery: what does")


def test_special_tokens_in_user_text_stay_text(family):
    batch = family.prepare([ModelInput(text="look at <|image_pad|> here")], PROMPT, (4,))
    assert int((batch["input_ids"] == family.image_token_id).sum()) == 0
    assert "image_grid_thw" not in batch
    with torch.no_grad():
        out = family.meta_hidden_states(batch, torch.zeros(4, family.hidden_size))
    assert out.shape == (1, 4, family.hidden_size)


def test_lora_targets_are_language_model_projections(family):
    targets = family.lora_target_modules()
    layers = family.backbone.config.text_config.num_hidden_layers
    assert len(targets) == 7 * layers
    assert all("language_model" in name and "visual" not in name for name in targets)
    from peft import LoraConfig, get_peft_model

    backbone = copy.deepcopy(family.backbone)
    wrapped = get_peft_model(backbone, LoraConfig(r=2, lora_alpha=2, target_modules=targets))
    adapted = {name.split(".lora_A")[0] for name, _ in wrapped.named_parameters() if ".lora_A." in name}
    assert len(adapted) == len(targets)
    assert not any("visual" in name for name in adapted)


def test_qwen2_vl_backbone(tmp_path_factory, items):
    path = build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("qwen2_vl"), model_type="qwen2_vl")
    family = _load(path)
    assert type(family.backbone).__name__ == "Qwen2VLModel"
    meta = torch.randn(12, family.hidden_size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        batched = family.meta_hidden_states(family.prepare(items, PROMPT, (4, 8)), meta)
        alone = torch.cat([family.meta_hidden_states(family.prepare([it], PROMPT, (4, 8)), meta) for it in items])
        query = family.meta_hidden_states(family.prepare(items, PROMPT, (4,)), meta[:4])
    assert (batched - alone).abs().max().item() < 1e-4
    assert (query - batched[:, :4]).abs().max().item() < 1e-5
    assert len(family.lora_target_modules()) == 7 * family.backbone.config.text_config.num_hidden_layers


def test_load_errors_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no model folder"):
        _load(tmp_path / "missing")
    with pytest.raises(CheckpointError):
        _load(tmp_path)
