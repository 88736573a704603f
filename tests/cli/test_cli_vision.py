"""The main job with a vision-language checkpoint (tiny random Qwen2.5-VL): pages are embedded as images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from metaembed_rag.cli import main
from metaembed_rag.collection import DocumentCollection
from metaembed_rag.loaders import load_pages
from metaembed_rag.scoring import maxsim

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def vision_checkpoint(tmp_path_factory, tiny_qwen_model) -> str:
    folder = tmp_path_factory.mktemp("vision") / "tiny-qwen-metaembed"
    tiny_qwen_model.save_pretrained(folder)
    return str(folder)


@pytest.fixture()
def workdir(tmp_path, monkeypatch) -> Path:
    shutil.copytree(EXAMPLES, tmp_path / "examples", ignore=shutil.ignore_patterns("*.py"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("METAEMBED_RAG_INDEX", raising=False)  # these tests use the default ./.metaembed/default
    return tmp_path


def run_json(capsys, *argv: str) -> dict:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_pages_are_embedded_as_images(workdir, vision_checkpoint, capsys):
    common = ["--model", vision_checkpoint, "--dpi", "36", "--no-ocr", "--no-progress"]
    report = run_json(capsys, "index", "examples/", *common)
    # image mode needs no text: the scanned page is indexed too
    assert report["pages_indexed"] == 5 and report["pages_skipped"] == []
    assert run_json(capsys, "info")["embedding_mode"] == "image"

    page_image = next(load_pages(workdir / "examples" / "rainfall-chart.pdf", dpi=36, ocr=False)).image
    page_image.save(workdir / "query.png")
    hits = run_json(capsys, "search", "--image", "query.png", "--budget", "4,8", "--k", "5")["hits"]
    assert len(hits) == 5
    model = DocumentCollection.open(".metaembed/default").model
    documents = [
        r.image for r in load_pages(workdir / "examples", dpi=36, ocr=False)
    ]  # in file order: field-guide p1, p2, rainfall, sales, memo
    names = ["field-guide.pdf#page=1", "field-guide.pdf#page=2", "rainfall-chart.pdf#page=1"]
    names += ["sales-table.pdf#page=1", "scanned-memo.pdf#page=1"]
    expected = maxsim(model.encode_query([page_image]), model.encode_document(documents), (4, 8), normalize=True)[0]
    got = {h["id"].rsplit("/", 1)[1]: h["score"] for h in hits}
    assert torch.allclose(torch.tensor([got[n] for n in names]), expected, atol=2e-3)

    text_hits = run_json(capsys, "search", "rainfall in May", "--budget", "2,4", "--k", "3")["hits"]
    assert len(text_hits) == 3
    capsys.readouterr()
    assert main(["search", "rain", "--budget", "8,16"]) == 2  # the tiny model has 4 query vectors
    assert "budget" in capsys.readouterr().err.lower()


def test_image_plus_text_mode_is_recorded_and_used(workdir, vision_checkpoint, capsys):
    report = run_json(
        capsys,
        "index",
        "examples/sales-table.pdf",
        "--index",
        "pairs",
        "--embed",
        "image+text",
        "--model",
        vision_checkpoint,
        "--dpi",
        "36",
        "--no-progress",
    )
    assert report["pages_indexed"] == 1
    collection = DocumentCollection.open(".metaembed/pairs")
    assert collection.embedding_mode == "image+text"
    assert collection.config["model"]["identity"]["fingerprint"] == collection.model.fingerprint
    record = next(load_pages(workdir / "examples" / "sales-table.pdf", dpi=36, ocr=False))
    stored = collection.index.get(collection.index.ids)[0].embeddings
    fresh = collection.model.encode_document([(record.image, record.text)])[0]
    assert torch.allclose(stored, fresh, atol=1e-4)


def test_image_mode_needs_a_vision_model(workdir, minilm_model, tmp_path, capsys):
    folder = tmp_path / "minilm"
    minilm_model.save_pretrained(folder)
    assert main(["index", "examples/", "--model", str(folder), "--embed", "image", "--no-progress"]) == 2
    assert "needs a vision-language model" in capsys.readouterr().err
