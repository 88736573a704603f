"""MetaEmbedModel on a tiny random Qwen2.5-VL built offline: images, pairs, checkpoints."""

import pytest
import torch
from PIL import Image

from metaembed_rag import MetaEmbedModel
from metaembed_rag.errors import ImageLoadError


def picture(w: int, h: int, seed: int) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray((torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy())


def test_encodes_text_images_and_pairs(tiny_qwen_model, tmp_path):
    path = tmp_path / "page.png"
    picture(60, 40, 1).save(path)
    inputs = ["a text query", picture(40, 56, 2), path, (picture(90, 30, 3), "with a caption")]
    docs = tiny_qwen_model.encode_document(inputs)
    queries = tiny_qwen_model.encode_query(inputs)
    assert docs.shape == (4, 8, 64) and queries.shape == (4, 4, 64)
    assert torch.allclose(docs.norm(dim=-1), torch.ones(4, 8), atol=1e-5)
    assert torch.isfinite(tiny_qwen_model.similarity(queries, docs, budget=(2, 4))).all()


def test_batch_invariance_with_mixed_image_sizes(tiny_qwen_model):
    inputs = ["short", "a longer text " * 10, picture(40, 56, 4), picture(112, 84, 5), (picture(56, 56, 6), "cap")]
    for side in ("query", "document"):
        batched = tiny_qwen_model.encode(inputs, side, batch_size=len(inputs))
        for i, item in enumerate(inputs):
            assert (tiny_qwen_model.encode([item], side)[0] - batched[i]).abs().max().item() <= 1e-4


def test_bad_image_inputs(tiny_qwen_model):
    with pytest.raises(ImageLoadError):
        tiny_qwen_model.encode_document([b"\x00\x01"])
    with pytest.raises(ImageLoadError):
        tiny_qwen_model.encode_document([Image.new("RGB", (0, 5))])


def test_checkpoint_roundtrip_with_lora_and_projection(tiny_qwen_dir, tmp_path):
    model = MetaEmbedModel.from_backbone(str(tiny_qwen_dir), 4, 8, projection_dim=16, seed=1)
    model.add_lora(r=4, alpha=8)
    with torch.no_grad():
        for name, param in model.backbone.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)
    path = model.save_pretrained(tmp_path / "vlm")
    loaded = MetaEmbedModel.from_pretrained(path, merge_adapter=False)
    merged = MetaEmbedModel.from_pretrained(path)  # inference default: LoRA folded into the weights
    assert loaded.config.family == "qwen2_vl" and loaded.embedding_dim == 16 and merged.adapter_merged
    inputs = ["text", picture(56, 40, 7), (picture(40, 40, 8), "pair")]
    for side in ("query", "document"):
        expected = model.encode(inputs, side)
        assert torch.equal(expected, loaded.encode(inputs, side))
        assert torch.allclose(expected, merged.encode(inputs, side), atol=1e-5)
