"""The framework-free core behind the adapters: retrieved pages, page images, and the lazy searcher."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from metaembed_rag.errors import BudgetError, ImageLoadError, InvalidInputError, UnsupportedInputError
from metaembed_rag.lazy_searcher import LazySearcher, shared_model, text_query
from metaembed_rag.results import RetrievedPage, image_to_base64, page_image, render_pdf_page


@pytest.fixture(scope="module")
def pdf_file(tmp_path_factory):
    import pymupdf

    path = tmp_path_factory.mktemp("pdf") / "two.pdf"
    doc = pymupdf.open()
    for text in ("first page about rivers", "second page about mountains"):
        doc.new_page(width=200, height=100).insert_text((10, 30), text)
    doc.save(str(path))
    return path


def test_render_and_page_image(pdf_file, tmp_path):
    image = render_pdf_page(pdf_file, 2, dpi=72)
    assert image.mode == "RGB" and image.size == (200, 100)
    assert page_image({"source": str(pdf_file), "page": 2}, dpi=72).tobytes() == image.tobytes()
    saved = tmp_path / "p.png"
    Image.new("RGB", (5, 7), "blue").save(saved)
    assert page_image({"image_path": str(saved)}).size == (5, 7)
    assert page_image({"source": "notes.txt", "page": 1}) is None
    with pytest.raises(ImageLoadError, match="page 3 does not exist"):
        render_pdf_page(pdf_file, 3)


def test_retrieved_page_metadata_modes(pdf_file):
    page = RetrievedPage(
        id="x", score=0.25, budget=(4, 8), text="hello", metadata={"source": str(pdf_file), "page": 1, "text": "hello"}
    )
    plain = page.as_metadata(image=None)
    assert plain == {"source": str(pdf_file), "page": 1, "id": "x", "score": 0.25, "budget": [4, 8]}
    encoded = page.as_metadata(image="base64")
    decoded = Image.open(io.BytesIO(base64.b64decode(encoded["image_base64"])))
    assert decoded.format == "PNG" and encoded["image_mime_type"] == "image/png"
    assert "image_path" not in page.as_metadata(image="path")
    with pytest.raises(InvalidInputError):
        page.as_metadata(image="gif")
    assert image_to_base64(Image.new("RGB", (1, 1)), "JPG")[:4] == "/9j/"  # JPEG magic


@pytest.mark.parametrize(
    ("query", "error"),
    [(None, InvalidInputError), (b"x", UnsupportedInputError), ("", InvalidInputError), (3, UnsupportedInputError)],
)
def test_text_query_validation(query, error):
    with pytest.raises(error):
        text_query(query)
    assert text_query("ok") == "ok"


def test_lazy_searcher_is_lazy_and_validates_its_arguments():
    engine = LazySearcher()
    assert not engine.loaded and "not loaded" in repr(engine)
    with pytest.raises(UnsupportedInputError):
        LazySearcher(index=[1, 2])
    with pytest.raises(UnsupportedInputError):
        LazySearcher(model=3.5)


def test_models_loaded_by_path_are_shared(minilm_model, tmp_path):
    folder = minilm_model.save_pretrained(tmp_path / "ckpt")
    first, second = LazySearcher(model=str(folder)), LazySearcher(model=str(folder))
    assert first.model is second.model is shared_model(str(folder))
    assert first.index is not second.index  # one model, many indexes


def test_budget_checks_against_model_and_index(minilm_model):
    engine = LazySearcher(model=minilm_model)
    assert tuple(engine.check_budget("8,16")) == (8, 16)
    with pytest.raises(BudgetError):
        engine.check_budget((17, 16))
    with pytest.raises(BudgetError):
        engine.check_budget((8, 65))
    assert engine.retrieve("anything at all") == []  # empty index: no results, no error


def test_add_pdfs_streams_pages_with_text(minilm_model, pdf_file, tmp_path):
    engine = LazySearcher(model=minilm_model)
    ids = engine.add_pdfs([pdf_file], image_dir=tmp_path / "img")
    assert len(ids) == 2 and len(engine.index) == 2
    top = engine.retrieve("second page about mountains", k=1)[0]
    assert top.page == 2 and top.text == "second page about mountains"
    assert Path(top.image_path()).is_file() and top.image().size[0] > 10
    assert engine.add_pdfs([pdf_file]) == ids  # same ids: re-indexing replaces, no duplicates
    assert len(engine.index) == 2
