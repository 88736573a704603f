"""Every Python block of README.md runs as printed, in README order and one shared namespace (as a reader
pasting them into one session would), in a folder holding the files the README names: ``report.pdf``,
``reports/``, ``page.png``, ``figure.png`` and a vision checkpoint at ``path/to/checkpoint``. A block preceded by
``<!-- readme-test: skip: REASON -->`` is skipped with that reason (a Qdrant server, minutes of training)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"(?:<!-- readme-test: skip: (?P<reason>.*?) -->\n)?```python\n(?P<code>.*?)```", re.S)


def _blocks() -> list[tuple[int, str, str | None]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start("code")) + 1, m.group("code"), m.group("reason")) for m in _FENCE.finditer(text)
    ]


BLOCKS = _blocks()
_NAMESPACE: dict = {}


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 10 and sum(reason is None for _, _, reason in BLOCKS) >= 8


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_qwen_dir):
    from metaembed_rag import MetaEmbedModel
    from metaembed_rag.results import render_pdf_page

    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", folder / "reports", ignore=shutil.ignore_patterns("*.py"))
    shutil.copy(ROOT / "examples" / "sales-table.pdf", folder / "report.pdf")
    render_pdf_page(ROOT / "examples" / "sales-table.pdf", 1, dpi=36).save(folder / "page.png")
    render_pdf_page(ROOT / "examples" / "rainfall-chart.pdf", 1, dpi=36).save(folder / "figure.png")
    vision = MetaEmbedModel.from_backbone(str(tiny_qwen_dir), 16, 64, device="cpu", seed=0)
    vision.save_pretrained(folder / "path" / "to" / "checkpoint")
    return folder


@pytest.mark.parametrize(("line", "code", "reason"), BLOCKS, ids=[f"line{line}" for line, _, _ in BLOCKS])
def test_readme_block_runs_as_printed(line, code, reason, workdir, monkeypatch):
    if reason:
        pytest.skip(reason)
    monkeypatch.chdir(workdir)
    monkeypatch.delenv("METAEMBED_RAG_INDEX", raising=False)
    exec(compile(code, f"README.md:{line}", "exec"), _NAMESPACE)
