"""Upsert throughput and query latency: Qdrant Edge (embedded) vs the in-process torch index, same data, same machine.

Writes ``benchmarks/results/qdrant.json`` and ``benchmarks/results/qdrant.md``.

    PYTHONPATH=. python benchmarks/qdrant.py                 # 10k documents, d=128, 2 threads
    PYTHONPATH=. python benchmarks/qdrant.py --docs 2000 --dim 64 --queries 10   # quick check

The corpus is synthetic (clustered, L2-normalised vectors, 64 per document, 16 per query) so the run needs no
model; search cost depends only on the shapes. The in-process side is ``MultiVectorIndex`` when it is available,
otherwise exact chunked :func:`metaembed_rag.scoring.maxsim` over a contiguous copy of each stored prefix (what an
in-process index does); the JSON says which.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from metaembed_rag.atomic import write_json_atomic
from metaembed_rag.budget import Budget
from metaembed_rag.index.qdrant import QdrantMultiVectorStore
from metaembed_rag.scoring import maxsim, topk

RESULTS = Path(__file__).parent / "results"


def corpus(n_docs: int, n_queries: int, dim: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(64, dim, generator=gen), dim=-1)
    docs = torch.empty(n_docs, 64, dim)
    for start in range(0, n_docs, 1000):
        n = min(1000, n_docs - start)
        assign = torch.randint(0, 64, (n, 64), generator=gen)
        docs[start : start + n] = torch.nn.functional.normalize(
            centres[assign] + 0.7 * torch.randn(n, 64, dim, generator=gen), dim=-1
        )
    assign = torch.randint(0, 64, (n_queries, 16), generator=gen)
    queries = torch.nn.functional.normalize(centres[assign] + 0.7 * torch.randn(n_queries, 16, dim, generator=gen), -1)
    ids = [f"doc-{i}" for i in range(n_docs)]
    metas = [{"source": f"file{i % 20}.pdf", "page": i % 50} for i in range(n_docs)]
    return ids, docs, queries, metas


class TorchIndex:
    """Exact in-process baseline: one contiguous float32 tensor per stored prefix, chunked MaxSim, top-k."""

    name = "torch maxsim over contiguous prefixes"

    def __init__(self, budgets):
        self.budgets = budgets
        self.prefix: dict[int, torch.Tensor] = {}
        self.ids: list[str] = []

    def add(self, ids, docs, metas):
        self.ids = list(ids)
        self.prefix = {r: docs[:, :r].contiguous() for r in self.budgets}

    def search(self, queries, *, budget, k, cascade=None):
        b = Budget.parse(budget)
        if cascade is None:
            _, index = topk(maxsim(queries, self.prefix[b.r_c], b), k)
            return [[self.ids[i] for i in row] for row in index.tolist()]
        coarse, n = Budget.parse(cascade[0]), cascade[1]
        _, short = topk(maxsim(queries, self.prefix[coarse.r_c], coarse), n)
        out = []
        for q, cand in zip(queries, short, strict=True):
            scores = maxsim(q[None], self.prefix[b.r_c][cand], b)
            _, best = topk(scores, k)
            out.append([self.ids[cand[i]] for i in best[0].tolist()])
        return out


def in_process_index(budgets, dim):
    try:  # the project's in-process store, once it exists
        from metaembed_rag.index import MultiVectorIndex
    except ImportError:
        return TorchIndex(budgets)

    class Wrapped:
        name = "MultiVectorIndex"

        def __init__(self):
            self.index = MultiVectorIndex(dim=dim, stored_vectors=max(budgets))

        def add(self, ids, docs, metas):
            self.index.add(ids, docs, metas)

        def search(self, queries, *, budget, k, cascade=None):
            rows = self.index.search(queries, budget=budget, k=k, cascade=cascade)
            return [[h.id for h in row] for row in rows]

    return Wrapped()


def latency(fn, queries, repeat_batch: bool):
    """Per-query latency (ms) for one query at a time, and throughput (queries/s) for the whole batch."""
    fn(queries[:1])  # warm-up
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(q[None])
        times.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    fn(queries)
    batch_s = time.perf_counter() - start
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 3),
        "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 3),
        "batch_qps": round(len(queries) / batch_s, 1),
    }


def overlap(a, b):
    return round(sum(len(set(x) & set(y)) / max(len(x), 1) for x, y in zip(a, b, strict=True)) / len(a), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    budgets = (1, 16, 64)
    ids, docs, queries, metas = corpus(args.docs, args.queries, args.dim)
    searches = {
        "(1,1)": {"budget": (1, 1)},
        "(8,16)": {"budget": (8, 16)},
        "(16,64)": {"budget": (16, 64)},
        "cascade (1,1)->100->(16,64)": {"budget": (16, 64), "cascade": ((1, 1), 100)},
    }
    result: dict = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "threads": args.threads},
        "docs": args.docs,
        "dim": args.dim,
        "queries": args.queries,
        "k": args.k,
        "stored_budgets": list(budgets),
        "data": "synthetic clustered L2-normalised vectors, 64 per document, 16 per query",
    }

    with tempfile.TemporaryDirectory() as folder:
        memory = in_process_index(budgets, args.dim)
        start = time.perf_counter()
        memory.add(ids, docs, metas)
        memory_add_s = time.perf_counter() - start

        edge = QdrantMultiVectorStore.embedded(
            folder, dim=args.dim, stored_budgets=budgets, batch_size=args.batch_size, search_threads=args.threads
        )
        start = time.perf_counter()
        edge.add(ids, docs, metas)
        edge_add_s = time.perf_counter() - start
        start = time.perf_counter()
        edge.optimize()
        optimize_s = time.perf_counter() - start
        files = [p.stat() for p in Path(folder).rglob("*") if p.is_file()]
        disk = sum(st.st_blocks * 512 for st in files)  # allocated; Qdrant preallocates sparse files
        apparent = sum(st.st_size for st in files)

        result["in_process"] = {"implementation": memory.name, "add_s": round(memory_add_s, 3)}
        result["edge"] = {
            "add_s": round(edge_add_s, 3),
            "upsert_docs_per_s": round(args.docs / edge_add_s, 1),
            "optimize_s": round(optimize_s, 3),
            "disk_bytes_allocated": disk,
            "disk_bytes_apparent": apparent,
            "vector_bytes_per_document": edge.bytes_per_document(),
        }
        rows = []
        for label, kwargs in searches.items():
            mem_stats = latency(lambda q, kw=kwargs: memory.search(q, k=args.k, **kw), queries, True)
            edge_stats = latency(lambda q, kw=kwargs: edge.search(q, k=args.k, **kw), queries, True)
            agreement = overlap(
                memory.search(queries, k=args.k, **kwargs),
                [[h.id for h in row] for row in edge.search(queries, k=args.k, **kwargs)],
            )
            rows.append({"search": label, "in_process": mem_stats, "edge": edge_stats, "topk_overlap": agreement})
        result["searches"] = rows
        edge.close()

    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "qdrant.json", result)
    lines = [
        f"# Qdrant Edge vs in-process index ({args.docs} documents, d={args.dim}, {args.threads} threads)",
        "",
        f"Data: {result['data']}. Stored budgets r_c = {list(budgets)}. In-process: {memory.name}.",
        "",
        f"- Edge upsert: {result['edge']['upsert_docs_per_s']} documents/s ({edge_add_s:.1f} s for {args.docs}, "
        f"batches of {args.batch_size}); optimize {optimize_s:.1f} s; on disk {disk / 2**20:.1f} MiB allocated "
        f"({apparent / 2**20:.1f} MiB apparent, preallocated sparse files).",
        f"- In-process add: {memory_add_s:.2f} s.",
        f"- Vector bytes per document: {result['edge']['vector_bytes_per_document']}.",
        "",
        "| search | in-process median ms | p95 ms | batch q/s | Edge median ms | p95 ms | batch q/s | top-k overlap |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, e = r["in_process"], r["edge"]
        lines.append(
            f"| {r['search']} | {m['median_ms']} | {m['p95_ms']} | {m['batch_qps']} | {e['median_ms']} | "
            f"{e['p95_ms']} | {e['batch_qps']} | {r['topk_overlap']} |"
        )
    lines += ["", f"Machine: {result['machine']['platform']}."]
    (args.out / "qdrant.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
