"""Loader core: PDFs and images to page records, on the examples/ PDFs and real robustness fixtures."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import weakref
from pathlib import Path

import pymupdf
import pytest
from fixtures.scans import install_fake_tesseract, most_at_once, scanned_pdf
from PIL import Image

from metaembed_rag.errors import LoaderError, MetaEmbedError
from metaembed_rag.loaders import (
    LoadFailure,
    PdfDocument,
    discover_files,
    load_pages,
    ocr,
    ocr_available,
    open_document,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DATA = Path(__file__).resolve().parents[1] / "data"
needs_tesseract = pytest.mark.skipif(
    not ocr_available(), reason="Tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-eng)"
)


def _pdf_bytes(pages: int = 1, text: str = "page {n}", **save) -> bytes:
    doc = pymupdf.open()
    for n in range(1, pages + 1):
        doc.new_page(width=200, height=100).insert_text((10, 50), text.format(n=n))
    data = doc.tobytes(**save)
    doc.close()
    return data


def test_examples_load_with_text_images_and_metadata():
    records = list(load_pages(EXAMPLES, ocr=False))
    by_file = {}
    for record in records:
        by_file.setdefault(Path(record.source).name, []).append(record)
    assert sorted(by_file) == ["field-guide.pdf", "rainfall-chart.pdf", "sales-table.pdf", "scanned-memo.pdf"]
    guide = by_file["field-guide.pdf"]
    assert [r.page for r in guide] == [1, 2] and all(r.page_count == 2 for r in guide)
    assert guide[0].title == "A field guide to garden birds" and guide[0].author == "Ada Fieldfare"
    assert "robin" in guide[0].text and "sunflower" in guide[1].text  # ligature "ﬂ" expanded
    assert guide[0].text_source == "layer"
    assert guide[0].sha256 == hashlib.sha256((EXAMPLES / "field-guide.pdf").read_bytes()).hexdigest()
    # A4 (595.3 x 841.9 pt) at the default 144 dpi
    assert guide[0].image.size == guide[0].render_size == (1190, 1684) and guide[0].dpi == 144
    assert guide[0].image.mode == "RGB"
    assert "Q4" in by_file["sales-table.pdf"][0].text and "5,980" in by_file["sales-table.pdf"][0].text
    assert "May was the driest month" in by_file["rainfall-chart.pdf"][0].text
    scan = by_file["scanned-memo.pdf"][0]
    assert scan.text == "" and scan.text_source == "none" and scan.image is not None
    meta = guide[1].metadata()
    assert meta["page"] == 2 and meta["source"].endswith("field-guide.pdf") and meta["render_size"] == [1190, 1684]


def test_dpi_and_max_pixels_cap():
    with PdfDocument.open(EXAMPLES / "sales-table.pdf") as pdf:
        low = next(pdf.pages(dpi=72, text=False))
        capped = next(pdf.pages(dpi=144, text=False, max_pixels=200_000))
    assert low.render_size == (595, 842)
    width, height = capped.render_size
    assert width * height <= 200_000 and width > 300 and capped.dpi < 72


def test_render_false_gives_text_only():
    record = next(load_pages(EXAMPLES / "field-guide.pdf", render=False))
    assert record.image is None and record.render_size is None and "robin" in record.text


def test_bytes_glob_and_recursive_folder(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    shutil.copy(EXAMPLES / "rainfall-chart.pdf", tmp_path / "a" / "b" / "deep.pdf")
    shutil.copy(EXAMPLES / "sales-table.pdf", tmp_path / "top.PDF")
    (tmp_path / "a" / "notes.txt").write_text("not a document")
    files, failures = discover_files([tmp_path])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a/b/deep.pdf", "top.PDF"] and failures == []
    globbed = list(load_pages(str(tmp_path / "**" / "*.pdf"), render=False))
    assert [Path(r.source).name for r in globbed] == ["deep.pdf"]
    from_bytes = list(load_pages(_pdf_bytes(3), dpi=36))
    assert [r.text for r in from_bytes] == ["page 1", "page 2", "page 3"] and from_bytes[0].source == "<bytes>"


def test_symlink_loop_and_non_regular_files_are_reported(tmp_path):
    (tmp_path / "sub").mkdir()
    shutil.copy(EXAMPLES / "rainfall-chart.pdf", tmp_path / "sub" / "chart.pdf")
    os.symlink(tmp_path, tmp_path / "sub" / "loop")
    os.symlink(tmp_path / "missing.pdf", tmp_path / "dangling.pdf")
    os.mkfifo(tmp_path / "pipe.pdf")
    files, failures = discover_files(tmp_path)
    assert [f.name for f in files] == ["chart.pdf"]
    reasons = {Path(f.source).name: f.reason for f in failures}
    assert "dangling.pdf" in reasons and "cannot read" in reasons["dangling.pdf"]
    assert reasons["pipe.pdf"] == "not a regular file"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"PK\x03\x04 this is a zip file, not a pdf" * 4, "not a PDF"),
        (b"%PDF-1.3\nThis is not a valid PDF file\n%%EOF\n", "malformed PDF"),
    ],
)
def test_bad_files_raise_loader_error(tmp_path, content, reason):
    path = tmp_path / "bad.pdf"
    path.write_bytes(content)
    with pytest.raises(LoaderError, match=reason) as info:
        open_document(path)
    assert isinstance(info.value, MetaEmbedError) and "bad.pdf" in str(info.value)


def test_real_fixtures_invalid_and_pageless():
    with pytest.raises(LoaderError, match="malformed PDF"):
        open_document(DATA / "invalid.pdf")  # ocrmypdf fixture: a header and nothing else
    with pytest.raises(LoaderError, match="no pages"):
        open_document(DATA / "cyclic-toc.pdf")  # pikepdf fixture: cyclic outline, broken page tree
    with open_document(DATA / "content-stream-errors.pdf") as doc:  # qpdf fixture: broken content streams
        records = list(doc.pages(dpi=36))
    assert len(records) == 4 and all(r.image is not None for r in records)


def test_truncated_pdf_loads_what_is_left_or_fails_clearly(tmp_path):
    data = (EXAMPLES / "field-guide.pdf").read_bytes()
    for keep in (len(data) // 3, len(data) - 200, 600, 300):
        path = tmp_path / f"cut-{keep}.pdf"
        path.write_bytes(data[:keep])
        try:
            with open_document(path) as doc:
                records = list(doc.pages(dpi=36))
        except LoaderError as exc:
            assert path.name in str(exc)
        else:
            assert records and all(r.image is not None or r.problem for r in records)
            assert all(r.extra.get("repaired") for r in records)
    with open_document(tmp_path / "cut-300.pdf") as doc:  # the page objects survive, their contents do not
        assert [r.problem for r in doc.pages()] == ["the page has no content (damaged PDF, repaired by MuPDF)"] * 2


def test_encrypted_pdfs(tmp_path):
    fixture = DATA / "r6-user-password.pdf"  # pypdf fixture, AES-256, user password "asdfzxcv"
    with pytest.raises(LoaderError, match="encrypted PDF; pass its password"):
        open_document(fixture)
    with pytest.raises(LoaderError, match="password given is wrong"):
        open_document(fixture, password="nope")
    with open_document(fixture, password="asdfzxcv") as doc:
        assert "pdf encryption test" in next(doc.pages(render=False)).text
    with open_document(DATA / "r2-owner-password.pdf") as doc:  # owner password only: opens freely
        assert "pdf encryption test" in next(doc.pages(dpi=36)).text
    made = tmp_path / "made.pdf"
    made.write_bytes(_pdf_bytes(2, "secret {n}", encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="u", owner_pw="o"))
    failures: list[LoadFailure] = []
    assert list(load_pages(made, failures=failures)) == []
    assert "encrypted" in failures[0].reason
    assert [r.text for r in load_pages(made, password="u", render=False)] == ["secret 1", "secret 2"]


def test_decompression_bomb_page_is_not_rendered():
    # ocrmypdf fixture: one 8400 pt page holding a 35000 x 35000 1-bit image (11 kB on disk)
    with open_document(DATA / "hugemono.pdf") as doc:
        record = next(doc.pages())
    assert record.image is None and "35000x35000" in record.problem and "decompression-bomb" in record.problem


def test_thousands_of_pages_stream_without_holding_images():
    data = _pdf_bytes(3000)
    with PdfDocument.open(data, name="big.pdf") as pdf:
        assert pdf.page_count == 3000
        texts = [r.text for r in pdf.pages(render=False, ocr=False)]
    assert texts[0] == "page 1" and texts[-1] == "page 3000"
    alive = []
    for record in load_pages(_pdf_bytes(1000), dpi=18, ocr=False):
        alive.append(weakref.ref(record.image))
        assert sum(ref() is not None for ref in alive) <= 2  # the one in hand (+ at most one in flight)
    assert len(alive) == 1000


def test_one_bad_file_does_not_stop_a_folder(tmp_path):
    shutil.copy(EXAMPLES / "sales-table.pdf", tmp_path / "a-good.pdf")
    (tmp_path / "b-empty.pdf").write_bytes(b"")
    (tmp_path / "c-fake.pdf").write_text("hello")
    shutil.copy(DATA / "r6-user-password.pdf", tmp_path / "d-locked.pdf")
    shutil.copy(EXAMPLES / "rainfall-chart.pdf", tmp_path / "e-good.pdf")
    failures: list[LoadFailure] = []
    records = list(load_pages(tmp_path, render=False, failures=failures))
    assert [Path(r.source).name for r in records] == ["a-good.pdf", "e-good.pdf"]
    assert {Path(f.source).name: f.reason.split(" (")[0].split(";")[0] for f in failures} == {
        "b-empty.pdf": "empty file",
        "c-fake.pdf": "not a PDF",
        "d-locked.pdf": "encrypted PDF",
    }
    with pytest.raises(LoaderError, match=r"b-empty\.pdf"):
        list(load_pages(tmp_path, on_error="raise"))


def test_image_files_and_multipage_tiff(tmp_path):
    Image.new("RGB", (120, 80), "red").save(tmp_path / "red.png")
    Image.new("L", (64, 64), 128).save(tmp_path / "grey.jpg")
    frames = [Image.new("RGB", (50 + 10 * i, 40), (40 * i, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "scan.tiff", save_all=True, append_images=frames[1:])
    records = list(load_pages(tmp_path, ocr=False))
    summary = [(Path(r.source).name, r.page, r.page_count, r.render_size, r.kind) for r in records]
    assert summary == [
        ("grey.jpg", 1, 1, (64, 64), "image"),
        ("red.png", 1, 1, (120, 80), "image"),
        ("scan.tiff", 1, 3, (50, 40), "image"),
        ("scan.tiff", 2, 3, (60, 40), "image"),
        ("scan.tiff", 3, 3, (70, 40), "image"),
    ]
    assert records[1].image.getpixel((0, 0)) == (255, 0, 0) and records[0].image.mode == "RGB"
    png = io.BytesIO()
    Image.new("RGB", (30, 30)).save(png, format="PNG")
    assert next(load_pages(png.getvalue(), ocr=False)).render_size == (30, 30)


def test_image_bomb_and_downscale(tmp_path):
    Image.new("1", (3000, 3000), 1).save(tmp_path / "big.png")  # 9 Mpx, a few kB on disk
    with open_document(tmp_path / "big.png", max_image_pixels=4_000_000) as doc:
        record = next(doc.pages(ocr=False))
    assert record.image is None and "decompression-bomb" in record.problem
    with open_document(tmp_path / "big.png") as doc:
        record = next(doc.pages(ocr=False, max_pixels=1_000_000))
    assert record.render_size == (999, 999) or record.render_size == (1000, 1000)


def test_without_tesseract_text_source_is_none_and_warns_once(monkeypatch, caplog):
    monkeypatch.setenv("TESSERACT_CMD", "tesseract-not-installed-here")
    monkeypatch.setattr(ocr, "_warned", False)
    ocr.tesseract_binary.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="metaembed_rag.loaders.ocr"):
            records = list(load_pages([EXAMPLES / "scanned-memo.pdf"] * 2, dpi=36))
    finally:
        ocr.tesseract_binary.cache_clear()
    assert [(r.text_source, r.text) for r in records] == [("none", ""), ("none", "")]
    warnings = [r for r in caplog.records if "OCR is unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "tesseract-ocr" in warnings[0].getMessage()


@needs_tesseract
def test_ocr_fallback_reads_the_scanned_page():
    record = next(load_pages(EXAMPLES / "scanned-memo.pdf", render=False))
    assert record.text_source == "ocr"
    assert "boiler inspection" in record.text and "2040" in record.text


@needs_tesseract
@pytest.mark.slow
def test_ocr_on_a_real_scan():
    record = next(load_pages(DATA / "c03-29.pdf", render=False))  # ocrmypdf fixture: a scanned book page
    assert record.text_source == "ocr" and "going-over" in record.text


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_and_folder_are_reported(tmp_path):
    shutil.copy(EXAMPLES / "rainfall-chart.pdf", tmp_path / "ok.pdf")
    locked = tmp_path / "locked.pdf"
    shutil.copy(EXAMPLES / "sales-table.pdf", locked)
    locked.chmod(0)
    (tmp_path / "closed").mkdir()
    (tmp_path / "closed").chmod(0)
    try:
        failures: list[LoadFailure] = []
        records = list(load_pages(tmp_path, render=False, failures=failures))
    finally:
        locked.chmod(0o644)
        (tmp_path / "closed").chmod(0o755)
    assert [Path(r.source).name for r in records] == ["ok.pdf"]
    reasons = {Path(f.source).name: f.reason for f in failures}
    assert "Permission denied" in reasons["locked.pdf"] and "Permission denied" in reasons["closed"]


@pytest.fixture
def fake_tesseract(tmp_path, monkeypatch):
    log = install_fake_tesseract(tmp_path, monkeypatch)
    yield log
    ocr.tesseract_binary.cache_clear()


def test_scanned_pages_are_recognised_in_parallel_and_yielded_in_order(tmp_path, fake_tesseract):
    scanned_pdf(tmp_path / "scan.pdf", 6)
    with open_document(tmp_path / "scan.pdf") as doc:
        one_by_one = [(r.page, r.text, r.text_source) for r in doc.pages(render=False, ocr_workers=1)]
    assert most_at_once(fake_tesseract) == 1
    fake_tesseract.unlink()
    with open_document(tmp_path / "scan.pdf") as doc:
        parallel = [(r.page, r.text, r.text_source) for r in doc.pages(render=False, ocr_workers=3)]
    assert parallel == one_by_one
    assert [p for p, _, _ in parallel] == [1, 2, 3, 4, 5, 6]
    assert all(source == "ocr" and text.startswith("page ") for _, text, source in parallel)
    assert len({text for _, text, _ in parallel}) == 6  # every page got its own image, not a neighbour's
    assert most_at_once(fake_tesseract) == 3


def test_stopping_early_waits_for_running_ocr_and_starts_no_more(tmp_path, fake_tesseract):
    scanned_pdf(tmp_path / "scan.pdf", 12)
    with open_document(tmp_path / "scan.pdf") as doc:
        pages = doc.pages(render=False, ocr_workers=2)
        first = next(pages)
        pages.close()
    assert first.page == 1 and first.text_source == "ocr"
    runs = fake_tesseract.read_text().split()
    assert runs.count("start") == runs.count("end") < 12  # none left running, the rest never started


def test_a_failing_ocr_run_marks_its_page_only(tmp_path, fake_tesseract):
    script = Path(os.environ["TESSERACT_CMD"])
    script.write_text(
        script.read_text().replace(
            "time.sleep(0.4)",
            "time.sleep(0.1)\nif hashlib.sha1(open(sys.argv[1], 'rb').read()).digest()[0] % 2: sys.exit('bad page')",
        )
    )
    scanned_pdf(tmp_path / "scan.pdf", 4)
    with open_document(tmp_path / "scan.pdf") as doc:
        records = list(doc.pages(render=False, ocr_workers=2))
    assert [r.page for r in records] == [1, 2, 3, 4]
    failed = ["bad page" in (r.problem or "") for r in records]
    assert 0 < sum(failed) < len(records)  # this fixture's pages: some fail, some do not
    for record, bad in zip(records, failed, strict=True):
        assert (record.text_source == "ocr") != bad


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_bad_ocr_worker_count_is_refused(workers):
    with open_document(EXAMPLES / "scanned-memo.pdf") as doc, pytest.raises(LoaderError, match="ocr_workers"):
        next(doc.pages(ocr_workers=workers))


def test_ocr_worker_count_from_the_environment(monkeypatch):
    monkeypatch.setenv("METAEMBED_RAG_OCR_WORKERS", "3")
    assert ocr.default_ocr_workers() == 3
    monkeypatch.setenv("METAEMBED_RAG_OCR_WORKERS", "many")
    with pytest.raises(LoaderError, match="METAEMBED_RAG_OCR_WORKERS"):
        ocr.default_ocr_workers()
