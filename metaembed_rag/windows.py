"""Windows: how a text longer than the model reads is split so that every word of it is encoded.

A model reads at most ``text_capacity`` text tokens of a document (``max_length`` minus the meta tokens, the
special tokens and the document prompt; :meth:`MetaEmbedModel.text_capacity`). A longer page is split into
overlapping token windows that each fit, cut preferably after a line break or the end of a sentence, and each
window is stored as its own multi-vector unit linked to its page:

- window 0 keeps the page id and the page's full metadata (``text`` included); window ``k >= 1`` is stored
  under ``"<page id>#w<k>"`` with the same metadata minus ``text`` (so any metadata filter keeps or drops all
  windows of a page together);
- every window of a page split in two or more carries ``metadata["_window"] = {"page", "index", "count",
  "start", "end"}`` (character offsets into the page text); a page that fits carries none, so indexes built
  before windows existed read the same;
- a page's score is the best score of its windows (measured against MaxSim over the union of its windows'
  vectors on the FAQ dev set, see ``benchmarks/results/faq_dev.md``), and results list each page once.

Tokens come from the model's own tokenizer (offsets into the text), so text without spaces (Chinese,
Japanese) and right-to-left scripts split like any other. A page needing more than ``max_windows`` windows
is cut there with a warning naming how much was left out; only the part that is indexed is ever tokenised,
so a page of a million characters costs bounded memory.

Example:
    >>> offsets = lambda text: [(m.start(), m.end()) for m in re.finditer(r"\\S+", text)]
    >>> [w.text for w in split_windows("one two. three four. five six", offsets, capacity=4, overlap=1)]
    ['one two. three four.', 'four. five six']
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInputError

logger = logging.getLogger(__name__)

WINDOW_KEY = "_window"
"""Metadata key linking a stored window to its page (absent on pages stored whole)."""

WINDOW_TEXT_KEY = "window_text"
"""Key a search hit's metadata uses for the text of the page's best window (not stored)."""

WINDOW_ID_SEPARATOR = "#w"

DEFAULT_OVERLAP_FRACTION = 0.25
"""Default overlap between consecutive windows, as a fraction of the window size."""

DEFAULT_MAX_WINDOWS = 256
"""Default cap on windows per page (about 30 000 text tokens for the starter model)."""

_BOUNDARY_SEARCH = 0.4
"""A window may end up to this fraction of its size early to end on a line or sentence boundary."""

_SENTENCE_END = frozenset(".!?;:。！？；：…؟۔।")
_CHUNK_CHARS = 32_768

TokenOffsets = Callable[[str], Sequence[tuple[int, int]]]
"""Maps a text to the ``(start, end)`` character offsets of its tokens (no special tokens)."""


@dataclass(frozen=True)
class Window:
    """One window of a page: its position, its character span ``[start, end)`` and its text."""

    index: int
    start: int
    end: int
    tokens: int
    text: str


@dataclass(frozen=True)
class WindowPlan:
    """The windows of one text, and whether (and where) the text was cut at ``max_windows``."""

    windows: list[Window]
    capped: bool = False
    covered_chars: int = 0

    @property
    def count(self) -> int:
        return len(self.windows)


def window_id(page_id: str, index: int) -> str:
    """The stored id of window ``index`` of a page (window 0 keeps the page id).

    Example:
        >>> window_id("a.pdf#page=3", 0), window_id("a.pdf#page=3", 2)
        ('a.pdf#page=3', 'a.pdf#page=3#w2')
    """
    return page_id if index == 0 else f"{page_id}{WINDOW_ID_SEPARATOR}{index}"


def window_ids(page_id: str, count: int) -> list[str]:
    """Every stored id of a page split into ``count`` windows."""
    return [window_id(page_id, k) for k in range(max(1, count))]


def window_info(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``_window`` link of a stored row, or ``None`` for a page stored whole."""
    info = (metadata or {}).get(WINDOW_KEY)
    return info if isinstance(info, Mapping) else None


def page_of(doc_id: str, metadata: Mapping[str, Any] | None) -> str:
    """The page id a stored row belongs to."""
    info = window_info(metadata)
    return str(info["page"]) if info else doc_id


def window_count(metadata: Mapping[str, Any] | None) -> int:
    """How many windows the page of a stored row has (1 for a page stored whole)."""
    info = window_info(metadata)
    return int(info["count"]) if info else 1


def _is_boundary(text: str, left_end: int, right_start: int) -> int:
    """How good a cut between two tokens is: 3 at a line break, 2 after a sentence end, 1 between words
    (whitespace, or a character of a script written without spaces), 0 inside a word."""
    gap = text[left_end:right_start]
    if "\n" in gap:
        return 3
    before = text[left_end - 1] if left_end > 0 else ""
    if before in _SENTENCE_END:
        return 2
    if gap or _NO_SPACE.match(before) or _NO_SPACE.match(text[right_start : right_start + 1]):
        return 1
    return 0


def _token_offsets(text: str, offsets: TokenOffsets, limit: int) -> list[tuple[int, int]]:
    """Offsets of the first ``limit`` tokens (at least), tokenising the text in chunks cut at whitespace."""
    found: list[tuple[int, int]] = []
    position = 0
    while position < len(text) and len(found) <= limit:
        end = min(len(text), position + _CHUNK_CHARS)
        if end < len(text):
            cut = max(text.rfind(c, position, end) for c in ("\n", " ", "\t", "。"))
            end = cut + 1 if cut > position else end
        piece = text[position:end]
        found.extend((position + s, position + e) for s, e in offsets(piece) if e > s)
        position = end
    return found


def split_windows(
    text: str,
    offsets: TokenOffsets,
    capacity: int,
    *,
    overlap: int | None = None,
    max_windows: int = DEFAULT_MAX_WINDOWS,
    count: Callable[[str], int] | None = None,
) -> list[Window]:
    """Split ``text`` into windows of at most ``capacity`` tokens (see :func:`plan_windows`)."""
    return plan_windows(text, offsets, capacity, overlap=overlap, max_windows=max_windows, count=count).windows


def plan_windows(
    text: str,
    offsets: TokenOffsets,
    capacity: int,
    *,
    overlap: int | None = None,
    max_windows: int = DEFAULT_MAX_WINDOWS,
    count: Callable[[str], int] | None = None,
) -> WindowPlan:
    """Overlapping windows of at most ``capacity`` tokens covering ``text`` (up to ``max_windows`` of them).

    Args:
        offsets: the tokenizer, as a function from text to token character offsets.
        capacity: tokens per window (the model's :meth:`~metaembed_rag.MetaEmbedModel.text_capacity`).
        overlap: tokens shared by consecutive windows (default a quarter of ``capacity``).
        max_windows: windows kept at most; the rest of the text is left out (``WindowPlan.capped``).
        count: the exact token count of a text; when given, a window whose text re-tokenises to more than
            ``capacity`` tokens (a word cut in two) is shrunk until it fits.
    """
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise InvalidInputError(f"window capacity must be a positive integer, got {capacity!r}")
    if overlap is None:
        overlap = int(capacity * DEFAULT_OVERLAP_FRACTION)
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < capacity:
        raise InvalidInputError(f"window overlap must be an integer in [0, {capacity}), got {overlap!r}")
    if isinstance(max_windows, bool) or not isinstance(max_windows, int) or max_windows < 1:
        raise InvalidInputError(f"max_windows must be a positive integer, got {max_windows!r}")
    stride = capacity - overlap
    spans = _token_offsets(text, offsets, limit=capacity + stride * (max_windows - 1) + 1)
    if len(spans) <= capacity:
        return WindowPlan([Window(0, 0, len(text), len(spans), text)], False, len(text))
    windows: list[Window] = []
    start = 0
    n = len(spans)
    while start < n and len(windows) < max_windows:
        end = min(n, start + capacity)
        if end < n:  # prefer ending on a line break, then a sentence end
            best, best_kind = end, -1
            for cut in range(end, max(start + 1, end - int(capacity * _BOUNDARY_SEARCH)) - 1, -1):
                kind = _is_boundary(text, spans[cut - 1][1], spans[cut][0])
                if kind > best_kind:
                    best, best_kind = cut, kind
                    if kind == 3:
                        break
            end = best
        first = 0 if not windows else spans[start][0]
        while True:
            last = len(text) if end == n else spans[end - 1][1]
            tokens = end - start if count is None else count(text[first:last])
            if tokens <= capacity or end - start <= 1:
                break
            end = max(start + 1, end - (tokens - capacity))  # re-tokenised, the window grew: shrink it
        windows.append(Window(len(windows), first, last, tokens, text[first:last]))
        if end == n:
            break
        nxt = max(start + 1, end - overlap)
        best, best_kind = nxt, 0
        for cut in range(nxt, min(end, nxt + overlap // 2 + 1)):  # start the next window on a boundary
            kind = _is_boundary(text, spans[cut - 1][1], spans[cut][0])
            if kind > best_kind:
                best, best_kind = cut, kind
        start = best
    covered = windows[-1].end
    capped = covered < len(text.rstrip())
    return WindowPlan(windows, capped, covered)


def word_offsets(text: str) -> list[tuple[int, int]]:
    """A tokenizer-free fallback: one token per run of word characters or per other visible character.

    Example:
        >>> word_offsets("日本 ok!")
        [(0, 1), (1, 2), (3, 5), (5, 6)]
    """
    return [(m.start(), m.end()) for m in _WORD.finditer(text)]


_WINDOW_ID = re.compile(re.escape(WINDOW_ID_SEPARATOR) + r"[1-9][0-9]*$")
_NO_SPACE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\u0e00-\u0e7f]")
_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]|[^\W_]+|[^\w\s]", re.UNICODE)


# ------------------------------------------------------------------------------------- windows in a store
def lookup_metadata(store: Any, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Metadata of those of ``ids`` that ``store`` holds (a store's own ``lookup_metadata`` when it has one)."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        return {}
    own = getattr(store, "lookup_metadata", None)
    if own is not None:
        return own(ids)
    from .errors import DocumentNotFoundError

    try:
        return {doc.id: doc.metadata for doc in store.get(ids)}
    except DocumentNotFoundError:
        found = {}
        for doc_id in ids:
            try:
                found[doc_id] = store.get([doc_id])[0].metadata
            except DocumentNotFoundError:
                continue
        return found


def stored_window_ids(store: Any, ids: Sequence[str]) -> dict[str, list[str]]:
    """For each of ``ids`` the store holds (a page id, or the id of one of its windows): every stored id of its
    page, window 0 first. Unknown ids are left out."""
    found = lookup_metadata(store, ids)
    pages = {doc_id: page_of(doc_id, meta) for doc_id, meta in found.items()}
    missing_pages = [p for p in set(pages.values()) if p not in found]
    found.update(lookup_metadata(store, missing_pages))
    out: dict[str, list[str]] = {}
    for doc_id, page in pages.items():
        meta = found.get(page, found[doc_id])
        out[doc_id] = window_ids(page, window_count(meta))
    return out


def stored_page_ids(store: Any) -> list[str]:
    """The page ids of a store that lists its ids (window 0 of every page), in storage order."""
    ids = getattr(store, "ids", None)
    if ids is None:
        raise InvalidInputError(f"{type(store).__name__} cannot list its documents (needed to rebuild its BM25 side)")
    maybe = [doc_id for doc_id in ids if _WINDOW_ID.search(doc_id)]  # only these can be windows k >= 1
    metas = lookup_metadata(store, maybe)
    return [doc_id for doc_id in ids if (window_info(metas.get(doc_id)) or {"index": 0})["index"] == 0]


def page_hits(store: Any, hits: Sequence[Any], k: int) -> list[Any]:
    """Collapse ranked window hits into ranked page hits (each page once, scored by its best window).

    A page hit carries the page's metadata (window 0's, with the full ``text``), the best window's link under
    ``_window`` (without its text) and that window's text under ``window_text``.
    """
    from .index.base import SearchHit

    best: dict[str, Any] = {}
    for hit in hits:
        page = page_of(hit.id, hit.metadata)
        if page not in best:
            best[page] = hit
            if len(best) == k:
                break
    need = [p for p, hit in best.items() if hit.id != p]
    pages_meta = lookup_metadata(store, need) if need else {}
    out = []
    for page, hit in best.items():
        info = window_info(hit.metadata)
        if info is None:
            out.append(SearchHit(page, hit.score, hit.metadata))
            continue
        metadata = dict(pages_meta.get(page, hit.metadata)) if hit.id != page else dict(hit.metadata)
        link = {key: value for key, value in info.items() if key != "text"}
        metadata[WINDOW_KEY] = link
        metadata[WINDOW_TEXT_KEY] = info.get("text", "")
        out.append(SearchHit(page, hit.score, metadata))
    return out


def group_by_source(hits: Sequence[Any], key: str = "source") -> list[tuple[Any, list[Any]]]:
    """Page hits grouped per source document (``metadata[key]``), groups ordered by their best page.

    Example:
        >>> from metaembed_rag.index.base import SearchHit
        >>> hits = [SearchHit("a#1", 0.9, {"source": "a"}), SearchHit("b#1", 0.8, {"source": "b"}),
        ...         SearchHit("a#2", 0.7, {"source": "a"})]
        >>> [(source, [h.id for h in group]) for source, group in group_by_source(hits)]
        [('a', ['a#1', 'a#2']), ('b', ['b#1'])]
    """
    groups: dict[Any, list[Any]] = {}
    for hit in hits:
        groups.setdefault((hit.metadata or {}).get(key), []).append(hit)
    return list(groups.items())
