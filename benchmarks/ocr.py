"""OCR seconds per scanned page: Tesseract with its default OpenMP threads vs single-threaded.

Scanned pages are made here: README text typeset by pymupdf, rendered at 150 dpi (an image, no text layer).
Each page is recognised through :func:`metaembed_rag.loaders.ocr.ocr_image`, once with Tesseract's default
threads (``OMP_THREAD_LIMIT`` unset: the package before this change) and once with ``OMP_THREAD_LIMIT=1`` (the
default now), alternating page by page on the same (shared, loaded) machine.

    python benchmarks/ocr.py        # writes benchmarks/results/ocr.{json,md}
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import pymupdf
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metaembed_rag.loaders import ocr  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def scanned_pages(n: int, dpi: int = 150) -> list[Image.Image]:
    words = (ROOT / "README.md").read_text(encoding="utf-8").split()
    pages = []
    for i in range(n):
        doc = pymupdf.open()
        page = doc.new_page(width=595, height=842)
        text = " ".join(words[i * 350 : (i + 1) * 350])
        page.insert_textbox(pymupdf.Rect(50, 50, 545, 792), text, fontsize=10)
        pix = page.get_pixmap(dpi=dpi)
        pages.append(Image.frombytes("RGB", (pix.width, pix.height), pix.samples))
        doc.close()
    return pages


def main() -> None:
    if not ocr.ocr_available():
        raise SystemExit("tesseract is not installed: " + ocr.INSTALL_HINT)
    pages = scanned_pages(2)
    saved = os.environ.pop("OMP_THREAD_LIMIT", None)
    times: dict[str, list[float]] = {"default threads (before)": [], "OMP_THREAD_LIMIT=1 (now)": []}
    texts: dict[str, list[str]] = {k: [] for k in times}
    try:
        for image in pages:
            for mode in times:
                if mode.startswith("default"):
                    os.environ["OMP_THREAD_LIMIT"] = str(os.cpu_count())  # what Tesseract uses unset
                else:
                    os.environ.pop("OMP_THREAD_LIMIT", None)  # the package's default applies: 1
                start = time.perf_counter()
                texts[mode].append(ocr.ocr_image(image, timeout=900) or "")
                times[mode].append(time.perf_counter() - start)
    finally:
        os.environ.pop("OMP_THREAD_LIMIT", None)
        if saved is not None:
            os.environ["OMP_THREAD_LIMIT"] = saved
    modes = list(times)
    same = sum(a == b for a, b in zip(texts[modes[0]], texts[modes[1]], strict=True))
    data = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "pages": len(pages),
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "seconds_per_page_median": {m: statistics.median(t) for m, t in times.items()},
        "identical_text_pages": same,
        "chars_per_page": statistics.mean(len(t) for t in texts[modes[1]]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ocr.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        "# OCR of scanned pages: Tesseract threads",
        "",
        f"{data['date']}, {data['cores']} cores, load average {data['load_average']} (shared machine: other jobs "
        f"ran meanwhile, as an encoder does during indexing). {data['pages']} A4 pages at 150 dpi, "
        f"{data['chars_per_page']:.0f} characters each; the two settings alternate page by page.",
        "",
        "| Tesseract | seconds per page (median) | pages/s |",
        "|---|---|---|",
    ]
    for mode, seconds in data["seconds_per_page_median"].items():
        lines.append(f"| {mode} | {seconds:.2f} | {1 / seconds:.3f} |")
    lines += ["", f"Same recognised text in {same} of {len(pages)} pages."]
    (RESULTS / "ocr.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
