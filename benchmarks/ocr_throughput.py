"""Scanned-PDF throughput: Tesseract one page at a time vs pages in parallel (``METAEMBED_RAG_OCR_WORKERS``).

A PDF of image-only A4 pages is made here (README text typeset by pymupdf, rendered at 150 dpi, put back as a
page image, so there is no text layer). Two figures per setting, same PDF, settings alternating:

- loader alone: pages/s of :meth:`PdfDocument.pages` (render + OCR);
- product path: wall seconds of ``metaembed-rag index scan.pdf`` on the starter in a fresh process (imports,
  model load, OCR, encoding, save), where OCR of the next pages overlaps with encoding of the previous ones.

    python benchmarks/ocr_throughput.py [--pages 8]    # writes benchmarks/results/ocr_throughput.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pymupdf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metaembed_rag.loaders import ocr, open_document  # noqa: E402
from metaembed_rag.loaders.ocr import default_ocr_workers  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def scanned_pdf(path: Path, pages: int, dpi: int = 150) -> None:
    words = (ROOT / "README.md").read_text(encoding="utf-8").split()
    out = pymupdf.open()
    for i in range(pages):
        doc = pymupdf.open()
        page = doc.new_page(width=595, height=842)
        page.insert_textbox(pymupdf.Rect(50, 50, 545, 792), " ".join(words[i * 300 : (i + 1) * 300]), fontsize=10)
        png = page.get_pixmap(dpi=dpi).tobytes("png")
        doc.close()
        out.new_page(width=595, height=842).insert_image(pymupdf.Rect(0, 0, 595, 842), stream=png)
    out.save(path)
    out.close()


def loader_seconds(pdf: Path, workers: int) -> tuple[float, list[str]]:
    start = time.perf_counter()
    with open_document(pdf) as doc:
        texts = [r.text for r in doc.pages(render=False, ocr_workers=workers)]
    return time.perf_counter() - start, texts


def index_seconds(pdf: Path, workers: int, workdir: Path) -> float:
    env = {**os.environ, "METAEMBED_RAG_OCR_WORKERS": str(workers), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "metaembed_rag.cli", "index", str(pdf), "--index", f"w{workers}-{time.time_ns()}"],
        cwd=workdir,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if not ocr.ocr_available():
        raise SystemExit("tesseract is not installed: " + ocr.INSTALL_HINT)
    cores = default_ocr_workers()
    settings = [1, cores] if cores > 1 else [1]
    loader: dict[int, list[float]] = {w: [] for w in settings}
    index: dict[int, list[float]] = {w: [] for w in settings}
    texts: dict[int, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="metaembed-ocr-bench-") as tmp:
        pdf = Path(tmp) / "scan.pdf"
        scanned_pdf(pdf, args.pages)
        for _ in range(args.repeats):
            for workers in settings:
                seconds, texts[workers] = loader_seconds(pdf, workers)
                loader[workers].append(seconds)
                index[workers].append(index_seconds(pdf, workers, Path(tmp)))
    best = {w: min(v) for w, v in loader.items()}
    best_index = {w: min(v) for w, v in index.items()}
    data = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "pages": args.pages,
        "cores_available": cores,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "loader_seconds": loader,
        "index_seconds": index,
        "same_text": all(texts[w] == texts[1] for w in settings),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ocr_throughput.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        "# Scanned-PDF throughput: OCR one page at a time vs in parallel",
        "",
        f"{data['date']}, {cores} cores available, load average {data['load_average']} at the end (shared "
        f"machine). A {args.pages}-page image-only PDF (150 dpi scans of README text); best of {args.repeats} "
        "runs per setting, settings alternating. Tesseract runs single-threaded (`OMP_THREAD_LIMIT=1`) in both.",
        "",
        "| OCR workers | loader: s | loader: pages/s | `metaembed-rag index`: s | index: pages/s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for workers in settings:
        lines.append(
            f"| {workers} | {best[workers]:.1f} | {args.pages / best[workers]:.2f} | {best_index[workers]:.1f} | "
            f"{args.pages / best_index[workers]:.2f} |"
        )
    lines += [
        "",
        f"Same recognised text with every setting: {data['same_text']}. The index column includes the fresh "
        "process (imports, model load) and encoding; OCR of later pages overlaps with encoding of earlier ones.",
    ]
    (RESULTS / "ocr_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
