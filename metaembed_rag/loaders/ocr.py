"""OCR fallback for pages without a text layer (scans), through Tesseract.

Runs the ``tesseract`` program (Debian: ``apt-get install tesseract-ocr tesseract-ocr-eng``) on each page, with
``OMP_THREAD_LIMIT=1`` unless the environment sets it: Tesseract's own OpenMP threads fight the encoder's for
the cores (measured: 8.2 s per page next to the encoder, 1.8 s single-threaded, same text); the PDF loader runs
up to :func:`default_ocr_workers` of them at once instead, one page each. When the program is
missing, :func:`ocr_image` returns ``None`` and a single warning is logged per process.

Example:
    >>> from PIL import Image
    >>> text = ocr_image(Image.new("RGB", (64, 32), "white"))   # '' or None without Tesseract
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import tempfile

from PIL import Image

from ..errors import LoaderError

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "install Tesseract for OCR of scanned pages: `apt-get install tesseract-ocr tesseract-ocr-eng` "
    "(macOS: `brew install tesseract`) and `pip install 'metaembed-rag[ocr]'`"
)
_warned = False


@functools.lru_cache(maxsize=1)
def tesseract_binary() -> str | None:
    """Path of the ``tesseract`` program (``TESSERACT_CMD`` overrides), or ``None``."""
    return shutil.which(os.environ.get("TESSERACT_CMD", "tesseract"))


def ocr_available() -> bool:
    """Whether OCR can run here (the Tesseract binary is installed)."""
    return tesseract_binary() is not None


def warn_ocr_unavailable_once() -> None:
    """Log, once per process, that scanned pages get no text because Tesseract is missing."""
    global _warned
    if not _warned:
        _warned = True
        logger.warning("a page has no text layer and OCR is unavailable; %s", INSTALL_HINT)


def ocr_image(image: Image.Image, language: str = "eng", timeout: float = 120.0) -> str | None:
    """Recognise the text of ``image``; ``None`` when Tesseract is not installed.

    Raises :class:`~metaembed_rag.errors.LoaderError` when Tesseract is installed but fails on this image.
    """
    binary = tesseract_binary()
    if binary is None:
        warn_ocr_unavailable_once()
        return None
    return _ocr_with_cli(binary, image, language, timeout)


def default_ocr_workers() -> int:
    """How many Tesseract processes run at once by default: ``$METAEMBED_RAG_OCR_WORKERS``, else the cores
    this process may use (each Tesseract runs single-threaded, see :func:`tesseract_environment`).

    Example:
        >>> default_ocr_workers() >= 1
        True
    """
    configured = os.environ.get("METAEMBED_RAG_OCR_WORKERS")
    if configured:
        try:
            value = int(configured)
        except ValueError:
            value = 0
        if value < 1:
            raise LoaderError(f"METAEMBED_RAG_OCR_WORKERS must be a positive integer, got {configured!r}")
        return value
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def tesseract_environment() -> dict[str, str]:
    """The environment Tesseract runs in: this one, with ``OMP_THREAD_LIMIT=1`` unless already set.

    Example:
        >>> tesseract_environment()["OMP_THREAD_LIMIT"] in (os.environ.get("OMP_THREAD_LIMIT"), "1")
        True
    """
    return {**os.environ, "OMP_THREAD_LIMIT": os.environ.get("OMP_THREAD_LIMIT", "1")}


def _ocr_with_cli(binary: str, image: Image.Image, language: str, timeout: float) -> str:
    with tempfile.TemporaryDirectory(prefix="metaembed-ocr-") as tmp:
        path = os.path.join(tmp, "page.png")
        image.save(path)
        try:
            done = subprocess.run(
                [binary, path, "stdout", "-l", language],
                capture_output=True,
                timeout=timeout,
                check=False,
                env=tesseract_environment(),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LoaderError(f"Tesseract OCR failed: {exc}") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise LoaderError(f"Tesseract OCR failed: {message[-1] if message else f'exit code {done.returncode}'}")
    return done.stdout.decode("utf-8", "replace").strip()
