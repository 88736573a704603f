"""Options and output helpers shared by the ``index``, ``search``, ``info`` and ``delete`` commands."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

from ..collection import COLLECTION_ENV, DEFAULT_COLLECTION


def add_index_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--index",
        metavar="NAME_OR_DIR",
        default=None,
        help=f"index folder, or a name under ./{DEFAULT_COLLECTION.parent} (default: ${COLLECTION_ENV} or "
        f"./{DEFAULT_COLLECTION})",
    )


def add_model_options(parser: argparse.ArgumentParser, *, for_search: bool = False) -> None:
    what = "the model the index was built with" if for_search else "the starter model when installed"
    parser.add_argument(
        "--model", metavar="ID_OR_PATH", default=None, help=f"MetaEmbed checkpoint folder or hub id (default: {what})"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    parser.add_argument("--dtype", default=None, help="float32, float16 or bfloat16 (default: per device)")


def display_path(path: str) -> str:
    """``path`` relative to the working folder when it lies below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


def printable(text: str) -> str:
    r"""``text`` safe for a terminal line: control characters, newlines and undecodable bytes as escapes.

    Example:
        >>> printable("a\nb\x1b[31m.pdf")
        'a\\nb\\x1b[31m.pdf'
    """
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or 0x7F <= code < 0xA0 or code in (0x2028, 0x2029):
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        elif 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


@contextlib.contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """Turn SIGTERM into ``KeyboardInterrupt`` (as Ctrl-C is), so the work done so far is saved on the way out."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
