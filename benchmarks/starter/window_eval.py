"""Windowed page evaluation of a MetaEmbed checkpoint on a page-retrieval folder like ``faq-dev``.

Each page's text is cut into overlapping token windows of the model's text capacity (``max_length`` minus the
meta tokens minus the two special tokens; stride 3/4 of a window), every window is encoded as its own
document, and a page scores the best window's MaxSim at each budget. Queries rank the pages of their own
document; NDCG@10 (binary relevance) and Recall@10 in %, like ``faq_eval.py``.

Usage:
    python benchmarks/starter/window_eval.py /work/shared/bench/faq-dev CKPT [CKPT ...] --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from metaembed_rag import MATRYOSHKA_GROUPS, MetaEmbedModel


def ndcg10(ranked: list[int], relevant: set[int]) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, p in enumerate(ranked[:10]) if p in relevant)
    return dcg / sum(1 / math.log2(i + 2) for i in range(min(len(relevant), 10)))


def windows(tokenizer, text: str, size: int, stride: int) -> list[str]:
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if not offsets:
        return ["(blank page)"]
    out = []
    for start in range(0, len(offsets), stride):
        chunk = offsets[start : start + size]
        out.append(text[chunk[0][0] : chunk[-1][1]])
        if start + size >= len(offsets):
            break
    return out


def evaluate(folder: Path, checkpoint: str, threads: int = 2) -> dict:
    import pymupdf

    torch.set_num_threads(threads)
    queries = json.loads((folder / "qrels.json").read_text())["queries"]
    pages = {n: [p.get_text() for p in pymupdf.open(folder / n)] for n in sorted({q["doc"] for q in queries})}
    model = MetaEmbedModel.from_pretrained(checkpoint)
    capacity = model.config.max_length - model.num_query_tokens - model.num_candidate_tokens - 2
    tokenizer = model.family.processor
    started = time.time()
    page_windows = {
        n: [windows(tokenizer, p, capacity, max(1, capacity * 3 // 4)) for p in ps] for n, ps in pages.items()
    }
    flat = [w for ps in page_windows.values() for ws in ps for w in ws]
    doc_vectors = model.encode_document(flat)
    query_vectors = model.encode_query([q["query"] for q in queries])
    seconds = time.time() - started
    index, offset = {}, 0
    for name, ps in page_windows.items():
        index[name] = []
        for ws in ps:
            index[name].append((offset, offset + len(ws)))
            offset += len(ws)
    result = {
        "checkpoint": checkpoint,
        "window_tokens": capacity,
        "windows": len(flat),
        "encode_seconds": round(seconds, 1),
    }
    for group in MATRYOSHKA_GROUPS:
        ndcgs, recalls = [], []
        for qi, q in enumerate(queries):
            spans = index[q["doc"]]
            lo, hi = spans[0][0], spans[-1][1]
            s = model.similarity(query_vectors[qi : qi + 1], doc_vectors[lo:hi], budget=tuple(group))[0].numpy()
            page_scores = np.array([s[a - lo : b - lo].max() for a, b in spans])
            ranked = list(np.argsort(-page_scores, kind="stable") + 1)
            ndcgs.append(ndcg10(ranked, set(q["pages"])))
            recalls.append(float(bool(set(ranked[:10]) & set(q["pages"]))))
        result[f"{group[0]},{group[1]}"] = {
            "ndcg10": round(100 * float(np.mean(ndcgs)), 1),
            "recall10": round(100 * float(np.mean(recalls)), 1),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    results = []
    for checkpoint in args.checkpoints:
        r = evaluate(args.folder, checkpoint, args.threads)
        results.append(r)
        cells = "  ".join(f"{g[0]},{g[1]}: {r[f'{g[0]},{g[1]}']['ndcg10']:.1f}" for g in MATRYOSHKA_GROUPS)
        print(
            f"{checkpoint}  [{r['windows']} windows of {r['window_tokens']} tok, {r['encode_seconds']}s]  {cells}",
            flush=True,
        )
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
