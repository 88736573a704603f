"""DocumentCollection on its own: create, add, save, reopen, search, delete, info — through its Python API."""

from __future__ import annotations

import pytest
from fixtures.documents import make_pdf

from metaembed_rag.collection import DocumentCollection
from metaembed_rag.errors import (
    DocumentNotFoundError,
    IncompatibleModelError,
    IndexFormatError,
    IndexNotFoundError,
)
from metaembed_rag.loaders import load_pages

PAGES = ["Robins sing at dawn in the garden.", "The boiler needs an inspection every year.", "Tea grows in Assam."]


@pytest.fixture
def pdf(tmp_path):
    return make_pdf(tmp_path / "notes.pdf", PAGES)


def _add(collection: DocumentCollection, pdf) -> list[str]:
    records = list(load_pages(pdf, render=False, ocr=False))
    return collection.add_pages(records, [collection.model_input(r) for r in records])


def test_a_saved_collection_reopens_with_the_same_pages_and_answers(tmp_path, pdf, tiny_text_checkpoint):
    folder = tmp_path / "store"
    collection = DocumentCollection.create(folder, model=tiny_text_checkpoint)
    assert collection.embedding_mode == "text" and len(collection) == 0
    ids = _add(collection, pdf)
    assert ids == [f"{pdf}#page={n}" for n in (1, 2, 3)] and collection.has_unsaved_changes
    collection.save()
    assert not collection.has_unsaved_changes and collection.generation == 1
    reopened = DocumentCollection.open(folder)
    assert len(reopened) == 3
    hits = reopened.search("boiler inspection", budget=(2, 4), k=3)
    assert sorted(h.id for h in hits) == sorted(ids)
    assert {h.metadata["page"] for h in hits} == {1, 2, 3} and all(h.metadata["source"] == str(pdf) for h in hits)
    info = reopened.info()
    assert info["pages"] == 3 and info["embedding_mode"] == "text"


def test_deleting_a_source_removes_its_pages_and_persists(tmp_path, pdf, tiny_text_checkpoint):
    folder = tmp_path / "store"
    collection = DocumentCollection.create(folder, model=tiny_text_checkpoint)
    _add(collection, pdf)
    collection.save()
    with collection.writing():
        assert collection.delete_source(pdf) == 3
        collection.save()
    assert len(DocumentCollection.open(folder)) == 0


def test_opening_what_is_not_a_collection_raises_typed_errors(tmp_path):
    with pytest.raises(IndexNotFoundError, match=r"no index at .*metaembed-rag index"):
        DocumentCollection.open(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "collection.json").write_text('{"format": "something else"}')
    with pytest.raises(IndexFormatError):
        DocumentCollection.open(tmp_path / "other")


def test_another_model_is_refused_on_open(tmp_path, pdf, tiny_text_checkpoint, minilm_model):
    folder = tmp_path / "store"
    collection = DocumentCollection.create(folder, model=tiny_text_checkpoint)
    _add(collection, pdf)
    collection.save()
    with pytest.raises(IncompatibleModelError):
        DocumentCollection.open(folder, model=minilm_model).search("tea", budget=(2, 4), k=1)


def test_deleting_a_file_that_is_not_there_raises_and_keeps_everything(tmp_path, pdf, tiny_text_checkpoint):
    collection = DocumentCollection.create(tmp_path / "store", model=tiny_text_checkpoint)
    _add(collection, pdf)
    with pytest.raises(DocumentNotFoundError, match="not in the index"):
        collection.delete_source(tmp_path / "other.pdf")
    assert len(collection) == 3
