"""The adapters' engine on its own: nothing loads until used, one model per checkpoint, the CLI's index only
when asked for, and arguments checked before any model is loaded."""

from __future__ import annotations

import pytest
from fixtures.documents import TEXTS, build_cli_index, make_pdf

from metaembed_rag.errors import BudgetError, IndexNotFoundError, InvalidInputError, UnsupportedInputError
from metaembed_rag.lazy_searcher import LazySearcher, shared_model


def test_nothing_loads_until_first_use_and_one_model_serves_each_checkpoint(tiny_text_checkpoint):
    first, second = LazySearcher(model=tiny_text_checkpoint), LazySearcher(model=tiny_text_checkpoint)
    assert not first.loaded and "not loaded" in repr(first)
    assert first.trace_params()["ls_embedding_provider"] == "metaembed_rag" and not first.loaded
    first.add_texts(TEXTS[:2])
    assert first.loaded and first.model is second.model is shared_model(tiny_text_checkpoint)
    assert len(second.index) == 0  # each engine has its own fresh index


def test_texts_round_trip_with_their_metadata(tiny_text_checkpoint):
    engine = LazySearcher(model=tiny_text_checkpoint)
    ids = engine.add_texts(TEXTS, metadatas=[{"n": i} for i in range(len(TEXTS))], ids=list("abcd"))
    assert ids == list("abcd")
    pages = engine.retrieve(TEXTS[2], budget=(2, 4), k=4)
    assert sorted(p.id for p in pages) == list("abcd")
    assert {p.text: p.metadata["n"] for p in pages} == {t: i for i, t in enumerate(TEXTS)}
    with pytest.raises(InvalidInputError, match="empty"):
        engine.add_texts(["  "])


def test_bad_arguments_are_refused(tiny_text_checkpoint):
    engine = LazySearcher(model=tiny_text_checkpoint)
    engine.add_texts(TEXTS[:1])
    with pytest.raises(InvalidInputError):
        engine.retrieve("q", budget=(2, 4), k=0)
    with pytest.raises(BudgetError):
        engine.retrieve("q", budget=(64, 64))
    with pytest.raises(InvalidInputError):
        engine.retrieve("q", budget=(2, 4), filter={"source": {"$regex": "x"}})
    with pytest.raises(UnsupportedInputError, match="text-only"):
        engine.image_query(b"not even an image")
    with pytest.raises(UnsupportedInputError):
        LazySearcher(index=[1, 2])


def test_the_cli_index_is_used_only_when_asked_for(tmp_path, minilm_model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("METAEMBED_RAG_INDEX")  # the CLI's default: ./.metaembed/default
    pdf = make_pdf(tmp_path / "birds.pdf", ["Robins sing at dawn.", "Owls hunt at night."])
    build_cli_index(tmp_path, minilm_model, [pdf])
    assert len(LazySearcher(model=minilm_model).index) == 0  # a plain engine never opens ./.metaembed
    engine = LazySearcher.for_collection()
    assert not engine.loaded
    pages = engine.retrieve("Which bird hunts at night?", budget=(8, 16), k=5)
    assert sorted((p.metadata["source"], p.metadata["page"]) for p in pages) == [(str(pdf), 1), (str(pdf), 2)]
    with pytest.raises(IndexNotFoundError):
        LazySearcher.for_collection("no-such-index")
