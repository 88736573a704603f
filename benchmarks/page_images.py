"""Per-query cost of page images in LlamaIndex results: the default ``image="auto"`` against ``image=None``.

Indexes ``examples/`` (5 PDF pages, rendered on the fly, none saved) with the starter model and times
``MetaEmbedRetriever.retrieve`` (k=5) over the same questions with each image mode, interleaved so both see the
same machine load. Run it once per code version (``--label``); results accumulate in
``benchmarks/results/page_images.{json,md}``.

    PYTHONPATH=. python benchmarks/page_images.py --label branch
    PYTHONPATH=/path/to/other/checkout python benchmarks/page_images.py --label main
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
QUESTIONS = [
    "Which bird has an orange-red breast?",
    "How much rain fell in Bergen in October?",
    "Which quarter had the strongest sales?",
    "When is the office closed for the boiler inspection?",
    "What should I put in bird feeders when the ground is frozen?",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--label", required=True)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(2)
    import metaembed_rag
    from metaembed_rag.llama_index import MetaEmbedRetriever

    os.chdir(tempfile.mkdtemp())  # no ./.metaembed here, whatever the code version does with one
    retriever = MetaEmbedRetriever.from_pdfs([str(ROOT / "examples")], k=5)
    modes = {"auto": MetaEmbedRetriever(engine=retriever.engine, k=5), "none": None}
    modes["none"] = MetaEmbedRetriever(engine=retriever.engine, k=5, image=None)
    for r in modes.values():
        r.retrieve(QUESTIONS[0])  # warm-up
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.repeats):
        for question in QUESTIONS:
            for mode, r in modes.items():
                start = time.perf_counter()
                r.retrieve(question)
                times[mode].append((time.perf_counter() - start) * 1000)
    row = {
        "label": args.label,
        "package": str(Path(metaembed_rag.__file__).parent),
        "pages": len(retriever.engine.index),
        "median_ms": {m: round(statistics.median(v), 1) for m, v in times.items()},
        "loadavg": os.getloadavg()[0],
        "queries": len(times["auto"]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "page_images.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    rows = [r for r in rows if r["label"] != args.label] + [row]
    path.write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "# Page images in LlamaIndex results (median ms per query, k=5)",
        "",
        "`benchmarks/page_images.py`: the 5 example pages, starter model, 2 threads; both modes interleaved.",
        "",
        '| code | image="auto" (default) | image=None | images cost | load average |',
        "|---|---|---|---|---|",
    ]
    for r in rows:
        auto, none = r["median_ms"]["auto"], r["median_ms"]["none"]
        lines.append(f"| {r['label']} | {auto} | {none} | {auto - none:+.1f} | {r['loadavg']:.1f} |")
    (RESULTS / "page_images.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
