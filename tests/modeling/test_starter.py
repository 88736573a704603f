"""The shipped starter model loads offline (no hub) and ranks obvious matches first at every budget."""

from pathlib import Path

import torch

from metaembed_rag import MetaEmbedModel
from metaembed_rag.budget import MATRYOSHKA_GROUPS
from metaembed_rag.starter import STARTER_MODEL

QUERIES = [
    "how do I copy a string in C?",
    "sleep for a number of seconds",
    "How do I sort a list of dictionaries by a key?",
    "create a new directory",
]
DOCS = [
    "strcpy() copies the string pointed to by src, including the terminating null byte, to the buffer dest.",
    "sleep() causes the calling thread to sleep until the given number of real-time seconds have elapsed.",
    "Use sorted() with a key function: sorted(rows, key=lambda row: row['name']) returns a new sorted list.",
    "mkdir() attempts to create a directory named pathname with the given mode.",
]


def test_starter_checkpoint_is_small_and_complete():
    folder = Path(STARTER_MODEL)
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert (folder / "metaembed_config.json").is_file() and (folder / "adapter" / "adapter_model.safetensors").is_file()
    assert sum(p.stat().st_size for p in files) < 10 * 1024 * 1024
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pkl", ".pth")]


def test_starter_loads_offline_and_retrieves_at_every_budget():
    model = MetaEmbedModel.from_pretrained(STARTER_MODEL)
    assert (model.num_query_tokens, model.num_candidate_tokens, model.embedding_dim) == (16, 64, 384)
    assert [tuple(g) for g in model.config.groups] == list(MATRYOSHKA_GROUPS)
    queries, docs = model.encode_query(QUERIES), model.encode_document(DOCS)
    for budget in MATRYOSHKA_GROUPS:
        best = model.similarity(queries, docs, budget=budget).argmax(dim=1)
        assert torch.equal(best, torch.arange(len(QUERIES))), f"wrong top document at {budget}: {best.tolist()}"
