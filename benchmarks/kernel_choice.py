"""Which CPU scoring path is fastest where: the measurements behind ``strategy="auto"``'s thresholds.

For each case (documents × dim, storage dtype, queries, budget) it times, in the same run and back to back,
``maxsim_vector_major`` with ``strategy="compiled"`` (the numba kernel) and ``strategy="batched"`` (torch GEMM),
and for int8 storage the integer-GEMM selection of :func:`~metaembed_rag.exact_topk.exact_topk` (FBGEMM, then an
exact re-score), so that :data:`~metaembed_rag.compiled_maxsim.MAX_AUTO_ROWS`,
:data:`~metaembed_rag.compiled_maxsim.MAX_AUTO_QUERY_VALUES` and :data:`~metaembed_rag.exact_topk.INT8_GEMM_MIN_DIM`
follow from figures. Times are the best of ``--repeats`` after one warm call; scores of the two exhaustive paths
are compared (max |Δ|).

    python benchmarks/kernel_choice.py            # about 10 minutes on 2 cores
    python benchmarks/kernel_choice.py --quick    # 10k x 384 only

Writes ``benchmarks/results/scoring_kernel_choice.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from metaembed_rag import compiled_maxsim
from metaembed_rag.exact_topk import exact_topk, int8_gemm_available, max_vector_norm, pack_int8
from metaembed_rag.index import StorageFormat
from metaembed_rag.scoring import maxsim_vector_major

RESULTS = Path(__file__).resolve().parent / "results"
BUDGETS = [(1, 1), (2, 4), (4, 8), (8, 16), (16, 64)]


def best_ms(call, repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1e3 * min(times)


def time_case(queries, values, scales, budget: tuple[int, int], repeats: int) -> dict:
    """Times of the compiled and batched strategies (and int8 integer GEMM) for one case, and their score gap."""
    row, got = {}, {}
    for strategy in ("compiled", "batched"):

        def call(strategy=strategy):
            got[strategy] = maxsim_vector_major(queries, values, budget, scales=scales, strategy=strategy)

        row[f"{strategy}_ms"] = round(best_ms(call, repeats), 3)
    row["max_abs_diff"] = float((got["compiled"] - got["batched"]).abs().max())
    if values.dtype == torch.int8 and int8_gemm_available():
        r_c = budget[1]
        extra = {
            "packed": pack_int8(values, scales, r_c, 2048),
            "max_l1": max_vector_norm(values[:r_c], scales[:r_c], ord=1),
            "max_norm": max_vector_norm(values[:r_c], scales[:r_c]),
        }
        # int8_path picks the integer path where the kernel is off: switch it off for this call
        os.environ[compiled_maxsim.KERNEL_ENV] = "torch"
        try:
            topk = lambda: exact_topk(queries, values, budget, 10, scales=scales, **extra)  # noqa: E731
            row["int8_gemm_topk_ms"] = round(best_ms(topk, repeats), 3)
        finally:
            os.environ.pop(compiled_maxsim.KERNEL_ENV)
    return row


def measure(n: int, dim: int, stored: int, query_counts: list[int], repeats: int) -> list[dict]:
    generator = torch.Generator().manual_seed(n + dim)
    docs = F.normalize(torch.randn(n, stored, dim, generator=generator), dim=-1)
    rows = []
    for dtype in ("float32", "bfloat16", "int8"):
        values, scales = StorageFormat.parse(dtype).encode(docs)
        for n_q in query_counts:
            for r_q, r_c in BUDGETS:
                if r_c > stored:
                    continue
                queries = F.normalize(torch.randn(n_q, r_q, dim, generator=generator), dim=-1)
                row = {"n": n, "dim": dim, "dtype": dtype, "queries": n_q, "budget": [r_q, r_c]}
                row.update(time_case(queries, values, scales, (r_q, r_c), repeats))
                fastest = min((k for k in row if k.endswith("_ms")), key=row.get)
                row["fastest"] = fastest.removesuffix("_ms")
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# CPU scoring path choice",
        "",
        f"{meta['when']}, {meta['cpu']}, {meta['threads']} threads, load {meta['load']}. Best of {meta['repeats']} "
        "after a warm call, ms. compiled = the numba kernel, batched = torch GEMM per chunk, int8 GEMM = FBGEMM "
        "selection + exact re-score (top-10).",
        "",
        "| N × d | dtype | queries | budget | compiled | batched | int8 GEMM | batched / compiled | fastest |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gemm = r.get("int8_gemm_topk_ms", "")
        lines.append(
            f"| {r['n'] // 1000}k × {r['dim']} | {r['dtype']} | {r['queries']} | ({r['budget'][0]},{r['budget'][1]}) "
            f"| {r['compiled_ms']} | {r['batched_ms']} | {gemm} | {r['batched_ms'] / r['compiled_ms']:.2f} "
            f"| {r['fastest']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only 10k x 384")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.pop(compiled_maxsim.KERNEL_ENV, None)
    if not compiled_maxsim.available():
        raise SystemExit("the compiled kernel is unavailable (numba missing or METAEMBED_CPU_KERNEL=torch)")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = measure(10_000, 384, 64, [1, 32], args.repeats)
    if not args.quick:
        rows += measure(10_000, 3584, 16, [1, 32], args.repeats)
    meta = {
        "when": started,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "load": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
        "repeats": args.repeats,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scoring_kernel_choice.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    (RESULTS / "scoring_kernel_choice.md").write_text(markdown(rows, meta))


if __name__ == "__main__":
    main()
