"""Per-query latency: ``metaembed-rag serve`` (model loaded once, HTTP) against one ``metaembed-rag search`` process
per query (each loads torch, the model and the index again), on the example PDFs indexed with the starter model.

    PYTHONPATH=. python benchmarks/serve_latency.py     # writes benchmarks/results/serve_latency.{json,md}
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
QUESTIONS = [
    "Which bird has an orange-red breast?",
    "How much rain fell in Bergen in October?",
    "Which quarter had the strongest sales?",
    "When is the office closed for the boiler inspection?",
]


def main() -> None:
    import torch

    torch.set_num_threads(2)
    from metaembed_rag.collection import DocumentCollection
    from metaembed_rag.pipeline import index_files
    from metaembed_rag.serving import SearchService, make_http_server

    folder = Path(tempfile.mkdtemp(prefix="metaembed-serve-bench-"))
    index_path = folder / "index"
    collection = DocumentCollection.create(index_path, model="starter")
    index_files(collection, [ROOT / "examples"], show_progress=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli_ms = []
    for question in QUESTIONS[:3]:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "metaembed_rag.cli", "search", question, "--index", str(index_path), "--k", "5"],
            check=True,
            capture_output=True,
            env=env,
        )
        cli_ms.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    service = SearchService.open(index_path)
    startup_ms = (time.perf_counter() - start) * 1000
    server = make_http_server(service, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/search"
    http_ms = []
    for question in QUESTIONS * 5:
        body = json.dumps({"query": question, "k": 5}).encode()
        start = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=60) as response:
            json.loads(response.read())
        http_ms.append((time.perf_counter() - start) * 1000)
    server.shutdown()
    writer = SearchService.open(index_path, allow_writes=True, write_roots=[folder])
    add_ms, delete_ms = [], []
    for n in range(3):  # each write: open under the lock, encode, save the folder, swap the searcher
        start = time.perf_counter()
        writer.add(texts=[f"Benchmark note {n}: the boiler room key hangs by the door."], ids=[f"note-{n}"])
        add_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        writer.delete(ids=[f"note-{n}"])
        delete_ms.append((time.perf_counter() - start) * 1000)
    row = {
        "pages": len(service.engine.index),
        "cli_process_ms_median": round(statistics.median(cli_ms), 1),
        "cli_runs": len(cli_ms),
        "server_startup_ms": round(startup_ms, 1),
        "server_http_ms_median": round(statistics.median(http_ms), 1),
        "server_queries": len(http_ms),
        "speedup": round(statistics.median(cli_ms) / statistics.median(http_ms), 1),
        "server_add_text_ms_median": round(statistics.median(add_ms), 1),
        "server_delete_ms_median": round(statistics.median(delete_ms), 1),
        "server_writes": len(add_ms),
        "loadavg": round(os.getloadavg()[0], 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve_latency.json").write_text(json.dumps(row, indent=2) + "\n")
    lines = [
        "# Search latency: `metaembed-rag serve` vs one CLI process per query",
        "",
        f"{row['pages']} example pages, starter model, k=5, budget (8,16), 2 threads; load average "
        f"{row['loadavg']} while measuring (a shared machine: compare the ratio, not the absolute times).",
        "",
        "| | median ms per query | runs |",
        "|---|---|---|",
        f"| `metaembed-rag search` (new process each time) | {row['cli_process_ms_median']} | {row['cli_runs']} |",
        f"| `metaembed-rag serve`, POST /search (HTTP, model loaded once) | {row['server_http_ms_median']} | "
        f"{row['server_queries']} |",
        f"| `serve --allow-writes`: add one text (locked open, encode, atomic save) | "
        f"{row['server_add_text_ms_median']} | {row['server_writes']} |",
        f"| `serve --allow-writes`: delete one id (locked open, atomic save) | {row['server_delete_ms_median']} | "
        f"{row['server_writes']} |",
        "",
        f"The server answers {row['speedup']}x faster per query; it pays its start-up once "
        f"({row['server_startup_ms']} ms here to open the index: torch and the model were already loaded in this "
        "process by the indexing step, so a cold `serve` start costs about what one CLI process costs).",
    ]
    (RESULTS / "serve_latency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
