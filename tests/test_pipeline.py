"""index_files on its own: what a run reports, what a second run skips, and how a changed file is replaced."""

from __future__ import annotations

import pytest
from fixtures.documents import make_pdf

from metaembed_rag.collection import DocumentCollection
from metaembed_rag.pipeline import index_files


@pytest.fixture
def collection(tmp_path, tiny_text_checkpoint):
    return DocumentCollection.create(tmp_path / "store", model=tiny_text_checkpoint)


def test_a_run_reports_files_and_pages_and_saves(tmp_path, collection):
    make_pdf(tmp_path / "a.pdf", ["alpha one", "alpha two"])
    make_pdf(tmp_path / "b.pdf", ["beta", ""])  # the second page has no text
    report = index_files(collection, [tmp_path / "a.pdf", tmp_path / "b.pdf"], show_progress=False)
    assert (report.files_seen, report.files_indexed, report.pages_indexed) == (2, 2, 3)
    assert [(f.page, f.reason) for f in report.pages_skipped] == [(2, "blank page (no text, no image)")]
    assert report.index_pages == 3 and report.index_bytes > 0
    assert len(DocumentCollection.open(collection.path)) == 3  # saved


def test_an_unchanged_file_is_skipped_and_a_changed_one_replaced(tmp_path, collection):
    pdf = make_pdf(tmp_path / "a.pdf", ["first", "second", "third"])
    index_files(collection, [pdf], show_progress=False)
    again = index_files(collection, [pdf], show_progress=False)
    assert (again.files_unchanged, again.files_indexed, again.pages_indexed) == (1, 0, 0)
    make_pdf(pdf, ["first, edited"])
    changed = index_files(collection, [pdf], show_progress=False)
    assert (changed.files_indexed, changed.pages_indexed, changed.pages_removed) == (1, 1, 2)
    reopened = DocumentCollection.open(collection.path)
    assert len(reopened) == 1
    assert reopened.search("edited", budget=(2, 4), k=1)[0].metadata["text"] == "first, edited"


def test_reindex_encodes_an_unchanged_file_again(tmp_path, collection):
    pdf = make_pdf(tmp_path / "a.pdf", ["only page"])
    index_files(collection, [pdf], show_progress=False)
    report = index_files(collection, [pdf], reindex=True, show_progress=False)
    assert (report.files_indexed, report.pages_indexed) == (1, 1)
    assert len(collection) == 1


def test_a_missing_path_is_reported_as_failed_and_nothing_is_written(tmp_path, collection):
    make_pdf(tmp_path / "a.pdf", ["present"])
    report = index_files(collection, [tmp_path / "nowhere.pdf"], show_progress=False)
    assert [(f.source, f.reason) for f in report.files_failed] == [
        (str(tmp_path / "nowhere.pdf"), "no such file or folder")
    ]
    assert report.files_indexed == 0 and not collection.path.exists()
    both = index_files(collection, [tmp_path / "nowhere.pdf", tmp_path / "a.pdf"], show_progress=False)
    assert (len(both.files_failed), both.files_indexed, both.pages_indexed) == (1, 1, 1)


def test_a_resumed_scan_recognises_only_the_pages_it_lacks(tmp_path, collection, monkeypatch):
    from fixtures.scans import install_fake_tesseract, scanned_pdf

    from metaembed_rag.loaders import ocr

    pdf = scanned_pdf(tmp_path / "scan.pdf", 5)
    log = install_fake_tesseract(tmp_path, monkeypatch, seconds=0.05)
    # first run: pages 2 and 4 fail to embed, so the file is left incomplete with 3 pages stored
    original = collection.add_pages

    def flaky(records, inputs, **kw):
        if any(r.page in (2, 4) for r in records):
            raise RuntimeError("embedding backend hiccup")
        return original(records, inputs, **kw)

    monkeypatch.setattr(collection, "add_pages", flaky)
    first = index_files(collection, [pdf], show_progress=False)
    assert first.pages_indexed == 3 and len(first.pages_failed) == 2
    assert log.read_text().split().count("start") == 5
    log.unlink()
    monkeypatch.setattr(collection, "add_pages", original)
    second = index_files(collection, [pdf], show_progress=False)
    assert second.pages_indexed == 2
    assert log.read_text().split().count("start") == 2  # pages 1, 3, 5 were not read again
    assert collection.files[str(pdf)].ids == [f"{pdf}#page={n}" for n in range(1, 6)]
    ocr.tesseract_binary.cache_clear()
