"""Loading benchmark: pages/s for render + text at 72/144/200 dpi on real multi-column PDFs, and the peak
memory of streaming a 500+ page PDF.

The PDFs come from Debian documentation packages, fetched by this script with ``apt-get download`` and unpacked
with ``dpkg-deb -x`` into a cache folder (nothing is committed):

- ``debian-refcard``: the Debian reference card in ~40 languages, dense 3-column A4 pages (multi-column set);
- ``texlive-publishers-doc``: two-column journal sample papers (multi-column set; a 213 MB download that
  ``--no-texlive`` skips);
- ``r-doc-pdf``: the R reference manual ``refman.pdf`` (2415 pages) for the peak-memory run.

Pages/s per core is pages divided by the CPU time of the (single-threaded) loading process; wall-clock rates are
reported too because the machine may be shared. Results go to ``benchmarks/results/loading.{json,md}``.

Usage:
    python benchmarks/loading.py [--cache DIR] [--no-texlive] [--memory-pages N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from metaembed_rag.atomic import write_json_atomic  # noqa: E402
from metaembed_rag.loaders import PdfDocument  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DPIS = (72, 144, 200)
TEXLIVE_DOC = "./usr/share/doc/texlive-doc/latex/"
TEXLIVE_SAMPLES = tuple(
    TEXLIVE_DOC + name
    for name in (
        "acmart/samples/sample-sigconf.pdf",
        "acmart/samples/sample-sigplan.pdf",
        "acmart/samples/sample-acmtog.pdf",
        "elsarticle/elstest-5p.pdf",
        "jacow/JACoW_LaTeX_A4.pdf",
        "ieeetran/testflow_doc.pdf",
        "asmeconf/asmeconf-template.pdf",
    )
)
"""Two-column sample papers from texlive-publishers-doc."""


def fetch(package: str, cache: Path, members: tuple[str, ...] = ()) -> Path:
    """Download and unpack a Debian package (or only ``members`` of it) into ``cache/package``, once."""
    target = cache / package
    if (target / ".done").exists():
        return target
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        sys.exit(f"apt-get and dpkg-deb are needed to fetch {package}; run on Debian/Ubuntu")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", package], cwd=tmp, check=True, capture_output=True)
        (deb,) = Path(tmp).glob("*.deb")
        if members:
            archive = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True)
            subprocess.run(["tar", "-x", "-C", str(target), *members], input=archive.stdout, check=True)
        else:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
    (target / ".done").write_text("ok")
    return target


def multi_column_corpus(cache: Path, texlive: bool) -> list[Path]:
    refcard = fetch("debian-refcard", cache)
    files = []
    for packed in sorted(refcard.rglob("refcard-*-a4.pdf.gz")):
        plain = packed.with_suffix("")
        if not plain.exists():
            plain.write_bytes(gzip.decompress(packed.read_bytes()))
        files.append(plain)
    if texlive:
        publishers = fetch("texlive-publishers-doc", cache, TEXLIVE_SAMPLES)
        files.extend(publishers / member for member in TEXLIVE_SAMPLES)
    return files


def rate(files: list[Path], dpi: int | None) -> dict:
    """Load every page of ``files``: render at ``dpi`` (``None``: text only) and extract the text layer."""
    pages = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for path in files:
        with PdfDocument.open(path) as pdf:
            for record in pdf.pages(dpi=dpi or 72, render=dpi is not None, ocr=False):
                pages += 1
                del record
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "dpi": dpi,
        "pages": pages,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "pages_per_s_wall": round(pages / wall, 1),
        "pages_per_cpu_s": round(pages / cpu, 1),
    }


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it does not inherit the parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(path: str, dpi: int, limit: int) -> None:
    """Run in a fresh process: stream a big PDF at ``dpi`` and print peak RSS (MiB) as JSON."""
    base = peak_rss_mib()
    pages, start = 0, time.perf_counter()
    with PdfDocument.open(path) as pdf:
        total = pdf.page_count
        numbers = list(range(1, min(total, limit) + 1)) if limit else None
        for record in pdf.pages(dpi=dpi, ocr=False, page_numbers=numbers):
            pages += 1
            del record
    peak = peak_rss_mib()
    print(
        json.dumps(
            {
                "file": Path(path).name,
                "file_mib": round(Path(path).stat().st_size / 2**20, 1),
                "file_pages": total,
                "pages_loaded": pages,
                "dpi": dpi,
                "seconds": round(time.perf_counter() - start, 1),
                "rss_before_loading_mib": round(base, 1),
                "peak_rss_mib": round(peak, 1),
            }
        )
    )


def pipeline_child(model: str, pdf: str) -> None:
    """Run in a fresh process: index ``pdf`` in image mode (render 144 dpi, batches of 16) and print peak RSS."""
    import torch

    from metaembed_rag.collection import DocumentCollection
    from metaembed_rag.pipeline import index_files

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        collection = DocumentCollection.create(Path(tmp) / "index", model=model, dpi=144)
        base = peak_rss_mib()
        start = time.perf_counter()
        report = index_files(collection, [pdf], batch_size=16, show_progress=False, ocr=False)
        print(
            json.dumps(
                {
                    "pages_indexed": report.pages_indexed,
                    "seconds": round(time.perf_counter() - start, 1),
                    "rss_before_indexing_mib": round(base, 1),
                    "peak_rss_mib": round(peak_rss_mib(), 1),
                }
            )
        )


def pipeline_memory(refman: Path, cache: Path, sizes: tuple[int, ...] = (48, 600)) -> list[dict]:
    """Peak memory of the whole indexing job (image mode) on the first N pages of refman.pdf, for each N.

    The model is the tiny random Qwen2.5-VL of the test suite (what matters here is the image streaming, not
    the embedding quality); equal peaks for 48 and 600 pages show that only a batch of page images is held.
    """
    import pymupdf

    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures.tiny_qwen import build_tiny_qwen2_5_vl

    from metaembed_rag.modeling.model import MetaEmbedModel

    backbone = build_tiny_qwen2_5_vl(cache / "tiny-qwen2.5-vl")
    model = cache / "tiny-qwen-metaembed"
    MetaEmbedModel.from_backbone(str(backbone), 4, 8, seed=0).save_pretrained(model)
    rows = []
    for pages in sizes:
        pdf = cache / f"refman-first-{pages}.pdf"
        with pymupdf.open(refman) as source, pymupdf.open() as part:
            part.insert_pdf(source, from_page=0, to_page=pages - 1)
            part.save(pdf)
        child = subprocess.run(
            [sys.executable, __file__, "--pipeline-child", str(model), str(pdf)],
            check=True,
            capture_output=True,
            text=True,
        )
        row = {"pages": pages, **json.loads(child.stdout.strip().splitlines()[-1])}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def robustness_cases(folder: Path) -> list[tuple[str, Path, str | None]]:
    """Bad inputs: (label, path, password). Fixtures from tests/data, the rest generated here."""
    import pymupdf

    data = ROOT / "tests" / "data"
    good = (ROOT / "examples" / "field-guide.pdf").read_bytes()
    (folder / "zero-byte.pdf").write_bytes(b"")
    (folder / "not-a-pdf.pdf").write_text("plain text with a .pdf name\n")
    (folder / "truncated-half.pdf").write_bytes(good[: len(good) // 2])
    (folder / "truncated-300-bytes.pdf").write_bytes(good[:300])
    doc = pymupdf.open()
    for n in range(3000):
        doc.new_page(width=300, height=200).insert_text((20, 100), f"page {n + 1} of a very long file")
    doc.save(folder / "3000-pages.pdf")
    doc.close()
    doc = pymupdf.open(stream=good, filetype="pdf")
    doc.save(folder / "aes256-encrypted.pdf", encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="pw", owner_pw="o")
    doc.close()
    (folder / "dangling-link.pdf").symlink_to(folder / "nowhere.pdf")
    os.mkfifo(folder / "fifo.pdf")
    (folder / "loop" / "sub").mkdir(parents=True)
    (folder / "loop" / "sub" / "guide.pdf").write_bytes(good)
    (folder / "loop" / "sub" / "back-to-top").symlink_to(folder / "loop")
    fixtures = data / "r6-user-password.pdf"
    return [
        ("zero-byte file", folder / "zero-byte.pdf", None),
        ("non-PDF named .pdf", folder / "not-a-pdf.pdf", None),
        ("truncated PDF (half)", folder / "truncated-half.pdf", None),
        ("truncated PDF (300 bytes)", folder / "truncated-300-bytes.pdf", None),
        ("3000-page PDF", folder / "3000-pages.pdf", None),
        ("AES-256 encrypted, no password", folder / "aes256-encrypted.pdf", None),
        ("AES-256 encrypted, password given", folder / "aes256-encrypted.pdf", "pw"),
        ("pypdf r6-user-password.pdf, no password", fixtures, None),
        ("pypdf r6-user-password.pdf, wrong password", fixtures, "wrong"),
        ("pypdf r6-user-password.pdf, password", fixtures, "asdfzxcv"),
        ("pypdf r2-owner-password.pdf (owner password only)", data / "r2-owner-password.pdf", None),
        ("ocrmypdf invalid.pdf (header only)", data / "invalid.pdf", None),
        ("ocrmypdf hugemono.pdf (35000x35000 image)", data / "hugemono.pdf", None),
        ("pikepdf cyclic-toc.pdf", data / "cyclic-toc.pdf", None),
        ("pikepdf content-stream-errors.pdf", data / "content-stream-errors.pdf", None),
        ("dangling symlink", folder / "dangling-link.pdf", None),
        ("FIFO named .pdf", folder / "fifo.pdf", None),
        ("folder with a symlink loop", folder / "loop", None),
    ]


def robustness() -> list[dict]:
    """Load each bad input (render at 144 dpi + text, OCR off): pages loaded or the failure reason."""
    from metaembed_rag.loaders import LoadFailure, load_pages

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path, password in robustness_cases(Path(tmp)):
            failures: list[LoadFailure] = []
            start = time.perf_counter()
            pages = problems = repaired = 0
            for record in load_pages(path, password=password, ocr=False, failures=failures):
                pages += 1
                problems += record.problem is not None
                repaired += bool(record.extra.get("repaired"))
            outcome = f"loaded {pages} page(s)" if pages else "failed"
            if repaired:
                outcome += ", repaired by MuPDF"
            if problems:
                first = next(r for r in load_pages(path, password=password, ocr=False) if r.problem)
                outcome += f"; {problems} with a problem: {first.problem}"
            rows.append(
                {
                    "case": label,
                    "outcome": outcome,
                    "failures": [f.reason for f in failures],
                    "seconds": round(time.perf_counter() - start, 2),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "metaembed-bench-debs")
    parser.add_argument(
        "--no-texlive", dest="texlive", action="store_false", help="skip the texlive-publishers-doc papers (213 MB)"
    )
    parser.add_argument("--memory-pages", type=int, default=0, help="pages of refman.pdf to stream (0: all)")
    parser.add_argument(
        "--no-pipeline", dest="pipeline", action="store_false", help="skip the whole-job memory run (~3 min)"
    )
    parser.add_argument("--memory-child", nargs=3, metavar=("PDF", "DPI", "LIMIT"), help=argparse.SUPPRESS)
    parser.add_argument("--pipeline-child", nargs=2, metavar=("MODEL", "PDF"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]), int(args.memory_child[2]))
        return 0
    if args.pipeline_child:
        pipeline_child(*args.pipeline_child)
        return 0

    files = multi_column_corpus(args.cache, args.texlive)
    print(f"multi-column corpus: {len(files)} files", flush=True)
    rate(files, 72)  # warm-up: file cache, fonts
    rates = []
    for dpi in (None, *DPIS):
        result = rate(files, dpi)
        rates.append(result)
        print(json.dumps(result), flush=True)

    refman = next(fetch("r-doc-pdf", args.cache).rglob("refman.pdf"))
    child = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(refman.resolve()), "144", str(args.memory_pages)],
        check=True,
        capture_output=True,
        text=True,
    )
    memory = json.loads(child.stdout.strip().splitlines()[-1])
    print(json.dumps(memory), flush=True)

    pipeline = pipeline_memory(refman, args.cache) if args.pipeline else []
    robust = robustness()

    import pymupdf

    result = {
        "benchmark": "loading",
        "version": 1,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pymupdf": pymupdf.VersionBind,
            "mupdf": pymupdf.VersionFitz,
        },
        "corpus": [f.name for f in files],
        "rates": rates,
        "memory": memory,
        "pipeline_memory": pipeline,
        "robustness": robust,
        "target_pages_per_cpu_s_at_144": 50,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json_atomic(RESULTS / "loading.json", result)
    (RESULTS / "loading.md").write_text(markdown(result), encoding="utf-8")
    print(f"wrote {RESULTS / 'loading.md'}")
    return 0


def markdown(result: dict) -> str:
    lines = [
        "# Loading benchmark (`benchmarks/loading.py`)",
        "",
        f"Machine: {result['machine']['cpus']} CPUs (shared), Python {result['machine']['python']}, "
        f"pymupdf {result['machine']['pymupdf']} (MuPDF {result['machine']['mupdf']}). Single process, one thread.",
        "",
        f"Multi-column corpus: {len(result['corpus'])} files ("
        + ", ".join(result["corpus"][:4])
        + (", …" if len(result["corpus"]) > 4 else "")
        + ").",
        "",
        "| render | pages | pages/s per core (CPU time) | pages/s wall |",
        "|---|---:|---:|---:|",
    ]
    for row in result["rates"]:
        what = f"{row['dpi']} dpi + text" if row["dpi"] else "text only (no render)"
        lines.append(f"| {what} | {row['pages']} | {row['pages_per_cpu_s']} | {row['pages_per_s_wall']} |")
    mem = result["memory"]
    lines += [
        "",
        f"Target: >= {result['target_pages_per_cpu_s_at_144']} pages/s per core at 144 dpi.",
        "",
        f"Peak memory streaming `{mem['file']}` ({mem['file_pages']} pages, {mem['file_mib']} MiB), "
        f"{mem['pages_loaded']} pages rendered at {mem['dpi']} dpi + text in {mem['seconds']} s: "
        f"peak RSS {mem['peak_rss_mib']} MiB (before loading: {mem['rss_before_loading_mib']} MiB).",
        "",
        "## Whole indexing job, image mode (`index_files`, 144 dpi, batches of 16, tiny Qwen2.5-VL, 2 threads)",
        "",
        "| pages of refman.pdf | pages indexed | s | peak RSS MiB | RSS before indexing MiB |",
        "|---:|---:|---:|---:|---:|",
        *[
            f"| {r['pages']} | {r['pages_indexed']} | {r['seconds']} | {r['peak_rss_mib']} | "
            f"{r['rss_before_indexing_mib']} |"
            for r in result["pipeline_memory"]
        ],
        "",
        "## Bad input (`load_pages`, 144 dpi + text, OCR off)",
        "",
        "| case | outcome | reported failure | s |",
        "|---|---|---|---:|",
    ]
    for row in result["robustness"]:
        failures = "; ".join(row["failures"]) or "—"
        lines.append(f"| {row['case']} | {row['outcome']} | {failures} | {row['seconds']} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
