"""Build the starter model's training pairs from Debian docs (the Python FAQ is kept out: it is the test set).

Pairs: man page summary (NAME line) -> body; Python doc heading -> section text (FAQ excluded); inverse-cloze
(one sentence -> the rest of its passage). Each pair gets one hard negative mined with BM25 (ranks 2-8 of the
query's results, never its own passage).

Usage:
    python benchmarks/starter/build_data.py --cache /tmp/debdocs --out /tmp/starter_data/train.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import docs_corpus

MAX_CHARS = 1200
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _passage(text: str) -> str:
    return text[:MAX_CHARS]


def build_pairs(root: Path, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    raw: list[tuple[str, str, str]] = []  # (query, positive, source id)
    for page in docs_corpus.man_pages(root):
        query = page.summary if rng.random() < 0.6 else f"{page.names}: {page.summary}"
        raw.append((query, _passage(page.body), f"man:{page.name}"))
    sections = docs_corpus.python_sections(root, faq=False)
    heading_counts: dict[str, int] = {}
    for s in sections:
        heading_counts[s.heading.lower()] = heading_counts.get(s.heading.lower(), 0) + 1
    for index, s in enumerate(sections):
        generic = heading_counts[s.heading.lower()] > 1 or len(s.heading.split()) < 3
        query = f"{s.title}: {s.heading}" if generic and s.title != s.heading else s.heading
        raw.append((query, _passage(s.text), f"py:{index}"))
    passages = [(p, src) for _, p, src in raw]
    for text, src in passages:  # inverse cloze: a sentence finds the rest of its passage
        sentences = _SENTENCE.split(text)
        if len(sentences) < 3:
            continue
        pick = rng.randrange(len(sentences))
        sentence = sentences[pick]
        if not 30 <= len(sentence) <= 300:
            continue
        rest = " ".join(sentences[:pick] + sentences[pick + 1 :])
        raw.append((sentence, rest, src))
    return _with_hard_negatives(raw, rng)


def _with_hard_negatives(raw: list[tuple[str, str, str]], rng: random.Random) -> list[dict]:
    import bm25s

    corpus = sorted({(p, src) for _, p, src in raw})
    texts = [p for p, _ in corpus]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    results, _ = retriever.retrieve(
        bm25s.tokenize([q for q, _, _ in raw], stopwords="en", show_progress=False), k=8, show_progress=False
    )
    pairs = []
    for (query, positive, src), hits in zip(raw, results, strict=False):
        candidates = [int(h) for h in hits[1:] if corpus[int(h)][1] != src and texts[int(h)] != positive]
        record = {"query": query, "positive": positive}
        if candidates:
            record["negative"] = texts[rng.choice(candidates[:5])]
        pairs.append(record)
    rng.shuffle(pairs)
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/debdocs"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/starter_data/train.jsonl"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root = docs_corpus.fetch(args.cache)
    pairs = build_pairs(root, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(json.dumps(pair, ensure_ascii=False) + "\n")
    with_neg = sum("negative" in p for p in pairs)
    print(f"wrote {len(pairs)} pairs ({with_neg} with a hard negative) to {args.out}")


if __name__ == "__main__":
    main()
