"""The page policy: one rule for ids, model inputs and metadata, whichever way pages are indexed."""

from __future__ import annotations

import pytest
from fixtures.documents import make_pdf
from PIL import Image

from metaembed_rag.errors import InvalidInputError, UnsupportedInputError
from metaembed_rag.loaders import PageRecord
from metaembed_rag.page_policy import BLANK_REASON, PagePolicy, check_embedding_mode, page_source


def _record(**kw) -> PageRecord:
    base = {"source": "label.pdf", "page": 1, "page_count": 1, "kind": "pdf"}
    return PageRecord(**{**base, **kw})


@pytest.mark.parametrize(
    ("mode", "text", "image", "expected"),
    [
        ("text", "Hello", None, ("Hello", False)),
        ("text", "   ", Image.new("RGB", (4, 4)), None),
        ("image", "Hello", Image.new("RGB", (4, 4)), (None, True)),
        ("image", "Hello", None, None),
        ("image+text", "Hello", Image.new("RGB", (4, 4)), ("Hello", True)),
        ("image+text", "", Image.new("RGB", (4, 4)), (None, True)),
    ],
)
def test_each_mode_embeds_what_it_says(mode, text, image, expected):
    value = PagePolicy(mode).model_input(_record(text=text, image=image))
    got = None if value is None else (value.text, value.image is not None)
    assert got == expected


def test_unknown_mode_and_a_mode_the_model_cannot_read_are_refused(minilm_model):
    with pytest.raises(InvalidInputError, match="unknown embedding mode"):
        PagePolicy("pixels")  # type: ignore[arg-type]
    with pytest.raises(UnsupportedInputError, match="reads text only"):
        check_embedding_mode("image", minilm_model)
    assert PagePolicy.for_model(minilm_model).mode == "text"


def test_a_file_is_stored_under_its_absolute_path_and_a_label_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_pdf(tmp_path / "a.pdf", ["one"])
    assert page_source(_record(source="a.pdf")) == str(tmp_path / "a.pdf")
    assert page_source(_record(source="upload-from-bytes.pdf")) == "upload-from-bytes.pdf"


def test_skip_reasons_say_what_is_missing():
    policy = PagePolicy("text")
    assert policy.why_skipped(_record(problem="cannot read page: x")) == "cannot read page: x"
    assert policy.why_skipped(_record(extra={"blank": True})) == BLANK_REASON
    assert "turned off" in policy.why_skipped(_record(), ocr=False)
    assert PagePolicy("image").why_skipped(_record()) == "the page could not be rendered"


def test_cli_index_and_adapter_give_a_page_the_same_id_and_metadata(tmp_path, monkeypatch, tiny_text_checkpoint):
    """The drift this module removed: the CLI's collection and the adapters' engine now agree page for page."""
    from metaembed_rag.collection import DocumentCollection
    from metaembed_rag.lazy_searcher import LazySearcher
    from metaembed_rag.pipeline import index_files

    monkeypatch.chdir(tmp_path)
    make_pdf(tmp_path / "guide.pdf", ["Robins sing at dawn.", "Sparrows nest in hedges."])
    collection = DocumentCollection.create(tmp_path / ".metaembed" / "cli", model=tiny_text_checkpoint)
    index_files(collection, ["guide.pdf"], show_progress=False)
    engine = LazySearcher(model=tiny_text_checkpoint)
    engine.add_pdfs("guide.pdf")

    def pages(store):
        ids = sorted(store.find_ids())
        return ids, [{k: v for k, v in d.metadata.items() if not k.startswith("_window")} for d in store.get(ids)]

    cli_ids, cli_meta = pages(collection.index)
    adapter_ids, adapter_meta = pages(engine.index)
    assert cli_ids == adapter_ids == [f"{tmp_path / 'guide.pdf'}#page={n}" for n in (1, 2)]
    assert cli_meta == adapter_meta
    assert [m["text"] for m in cli_meta] == ["Robins sing at dawn.", "Sparrows nest in hedges."]


def test_a_vision_model_reads_the_page_image_by_default_in_every_caller(tiny_qwen_model):
    """Decided once: the CLI embedded the image, the adapters image + text; both now take the image."""
    from metaembed_rag.lazy_searcher import LazySearcher

    policy = PagePolicy.for_model(tiny_qwen_model)
    assert policy.mode == "image"
    engine = LazySearcher(model=tiny_qwen_model)
    record = _record(text="caption", image=Image.new("RGB", (28, 28), "white"))
    assert engine.add_pages([record]) == ["label.pdf#page=1"]
    assert engine.add_pages([record], embedding_mode="image+text") == ["label.pdf#page=1"]
    with pytest.raises(InvalidInputError, match="unknown embedding mode"):
        engine.add_pages([record], embedding_mode="pixels")
