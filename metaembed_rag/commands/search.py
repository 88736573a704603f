"""``metaembed-rag search "QUERY"``: ranked pages (file, page, score, snippet) at any budget."""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
import time
from pathlib import Path

from ..budget import Budget
from ..collection import DocumentCollection, resolve_collection_path
from ..errors import BudgetError, InvalidInputError
from ..fusion import HybridOptions
from ..inputs import load_image
from ..page_policy import source_key
from ..validation import check_k
from ..windows import WINDOW_TEXT_KEY
from ._common import add_index_option, add_model_options, display_path, print_json, printable

logger = logging.getLogger(__name__)

SNIPPET_CHARS = 200


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search an index with a text (or --image) query",
        description="Print the best-matching pages. The budget (r_q,r_c) picks how many query and page vectors "
        "are compared: small is fast, large is precise; no re-indexing is needed to change it.",
    )
    parser.add_argument("query", nargs="?", default=None, help="the question or keywords")
    parser.add_argument("--image", metavar="PATH", default=None, help="search with an image query")
    add_index_option(parser)
    add_model_options(parser, for_search=True)
    parser.add_argument("--budget", default="8,16", help="retrieval budget r_q,r_c (default 8,16)")
    parser.add_argument("--k", type=int, default=5, help="number of pages to return (default 5)")
    parser.add_argument(
        "--cascade",
        default=None,
        metavar="RQ,RC:N",
        help="score all pages at a coarse budget, rescore the best N at --budget, e.g. 1,1:200",
    )
    parser.add_argument("--source", action="append", default=None, help="only pages of this file (repeatable)")
    parser.add_argument(
        "--hybrid",
        action="store_true",
        help="fuse the multi-vector ranking with BM25 on the page text (reciprocal-rank fusion)",
    )
    parser.add_argument("--rrf-k", type=int, default=60, help="RRF constant for --hybrid (default 60)")
    parser.add_argument(
        "--fusion", choices=("rrf", "weighted"), default="rrf", help="how --hybrid fuses the two rankings"
    )
    parser.add_argument("--raw-scores", action="store_true", help="sum of MaxSim instead of the score / r_q")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.set_defaults(func=run)


def parse_cascade(text: str | None) -> tuple[Budget, int] | None:
    """``"1,1:200"`` → ``(Budget(1, 1), 200)``.

    Example:
        >>> parse_cascade("1,1:200")
        (Budget(r_q=1, r_c=1), 200)
    """
    if text is None:
        return None
    budget, sep, count = text.partition(":")
    if not sep or not count.strip().isdigit() or int(count) < 1:
        raise InvalidInputError(f"--cascade must look like R_Q,R_C:N (e.g. 1,1:200), got {text!r}")
    return Budget.parse(budget), int(count)


def snippet(text: str, query: str | None, width: int = SNIPPET_CHARS) -> str:
    """The ``width``-character window of ``text`` sharing the most words with ``query`` (whitespace collapsed).

    Example:
        >>> snippet("alpha beta. gamma delta rain in May. epsilon", "rain May", width=20)
        '…delta rain in May.…'
    """
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    words = {w for w in re.findall(r"\w+", (query or "").lower()) if len(w) > 2}
    best, best_score = 0, -1
    for match in re.finditer(r"(?:^|(?<=[.!?;:]\s)|(?<=\s))\S", flat):
        start = match.start()
        window = flat[start : start + width].lower()
        score = sum(window.count(w) for w in words)
        if score > best_score:
            best, best_score = start, score
        if not words:
            break
    start = max(0, min(best, len(flat) - width))
    end = start + width
    if end < len(flat) and " " in flat[start:end]:
        end = flat.rindex(" ", start, end)  # stop at a word boundary
    piece = flat[start:end].strip()
    return ("…" if start > 0 else "") + piece + ("…" if end < len(flat) else "")


def check_arguments(args: argparse.Namespace) -> tuple[Budget, tuple[Budget, int] | None]:
    """Everything about the options that can be wrong, checked before anything heavy is imported or loaded.

    Example:
        >>> ns = argparse.Namespace(query="q", image=None, budget="8,16", k=5, cascade="1,1:3")
        >>> check_arguments(ns)
        Traceback (most recent call last):
        ...
        metaembed_rag.errors.InvalidInputError: --cascade keeps 3 pages but --k asks for 5; use N >= 5
    """
    if (args.query is None) == (args.image is None):
        raise InvalidInputError('give a text query or --image PATH (one of them), e.g. metaembed-rag search "..."')
    if args.query is not None and not args.query.strip():
        raise InvalidInputError("the query is empty")
    check_k(args.k, "--k")
    budget = Budget.parse(args.budget)
    cascade = parse_cascade(args.cascade)
    if cascade is not None:
        coarse, count = cascade
        if count < args.k:
            raise InvalidInputError(f"--cascade keeps {count} pages but --k asks for {args.k}; use N >= {args.k}")
        if coarse.r_q > budget.r_q or coarse.r_c > budget.r_c:
            raise BudgetError(f"--cascade budget {coarse.r_q},{coarse.r_c} must not exceed --budget {args.budget}")
    return budget, cascade


def run(args: argparse.Namespace) -> int:
    budget, cascade = check_arguments(args)
    query = args.query if args.image is None else load_image(Path(args.image))
    path = resolve_collection_path(args.index)
    started = time.perf_counter()
    importlib.import_module("metaembed_rag.modeling.model")  # torch + transformers: timed apart from the load
    imported = time.perf_counter()
    collection = DocumentCollection.open(path, model=args.model, device=args.device, dtype=args.dtype, mmap=True)
    opened = time.perf_counter()
    from ..index import MultiVectorIndex

    if isinstance(collection.index, MultiVectorIndex):  # the scoring kernel loads while the model does
        collection.index.warm_up(budget)
    _ = collection.model  # first: a model that is not the index's own is the error to report
    loaded = time.perf_counter()
    stored = collection.index.stored_vectors
    for what, b in (("--budget", budget), ("--cascade", cascade[0] if cascade else None)):
        if b is not None and b.r_c > stored:
            raise BudgetError(f"{what} asks for r_c={b.r_c} but this index stores {stored} vectors per page")
    flt = {"source": {"$in": [source_key(s) for s in args.source]}} if args.source else None
    hits = collection.search(
        query,
        budget=budget,
        k=args.k,
        cascade=cascade,
        filter=flt,
        normalize=not args.raw_scores,
        hybrid=HybridOptions(method=args.fusion, k=args.rrf_k) if args.hybrid else None,
    )
    logger.info(
        "imports %.2f s, index open %.2f s, model load %.2f s, query (encode + score) %.3f s",
        imported - started, opened - imported, loaded - opened, time.perf_counter() - loaded,
    )  # fmt: skip
    rows = []
    for rank, hit in enumerate(hits, 1):
        meta = hit.metadata
        rows.append(
            {
                "rank": rank,
                "score": round(float(hit.score), 4),
                "source": meta.get("source"),
                "page": meta.get("page"),
                "page_count": meta.get("page_count"),
                "title": meta.get("title"),
                "snippet": snippet(meta.get(WINDOW_TEXT_KEY) or meta.get("text", ""), args.query),
                "id": hit.id,
            }
        )
    if args.json:
        print_json(
            {
                "query": args.query,
                "image": args.image,
                "budget": args.budget,
                "cascade": args.cascade,
                "hybrid": args.hybrid,
                "hits": rows,
            }
        )
        return 0
    if not rows:
        sys.stdout.write("no results (the index is empty or nothing matched the filter)\n")
        return 0
    for row in rows:
        sys.stdout.write(
            f"{row['rank']}. {printable(display_path(row['source']))}  page {row['page']}/{row['page_count']}  "
            f"score {row['score']:.4f}\n"
        )
        if row["snippet"]:
            sys.stdout.write(f"   {printable(row['snippet'])}\n")
    return 0
