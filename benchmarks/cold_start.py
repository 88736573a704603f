"""Cold start of the ``metaembed-rag`` command: ``--version``, ``--help``, and a search's phases.

Each command runs in a fresh process (median of 3). ``--before PATH`` also times a checkout of the package
before this change (e.g. ``/work/main``) in the same run, for the ratio. The phases of a search (imports,
model load) are timed in a fresh process the way ``metaembed-rag search -v`` reports them.

    python benchmarks/cold_start.py [--before /path/to/old/checkout]   # writes benchmarks/results/cold_start.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PHASES = """
import time, json
t0 = time.perf_counter()
import metaembed_rag.modeling.model as m
t1 = time.perf_counter()
from metaembed_rag import STARTER_MODEL
model = m.MetaEmbedModel.from_pretrained(STARTER_MODEL)
t2 = time.perf_counter()
model.encode_query(["how do I search at a budget"])
t3 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "model_load_s": t2 - t1, "first_query_encode_s": t3 - t2}))
"""

FIRST_SEARCH = """
import os, time, json, torch
from metaembed_rag.budget import Budget
from metaembed_rag.index import MultiVectorIndex
docs = torch.nn.functional.normalize(torch.randn(10_000, 16, 384), dim=-1)
index = MultiVectorIndex(384, 16)
index.add([str(i) for i in range(10_000)], docs)
query = docs[:1]
load = 0.0
if os.environ.get("WITH_MODEL_LOAD"):  # as `metaembed-rag search`: the kernel loads while the model does, or not
    if os.environ.get("WITH_MODEL_LOAD") == "warm-up":
        index.warm_up(Budget(8, 16))
    t = time.perf_counter()
    from metaembed_rag import STARTER_MODEL, MetaEmbedModel
    MetaEmbedModel.from_pretrained(STARTER_MODEL)
    load = time.perf_counter() - t
times = []
for _ in range(3):
    t = time.perf_counter()
    index.search(query, budget=(8, 16), k=10)
    times.append(time.perf_counter() - t)
print(json.dumps({"first_s": times[0], "warm_s": min(times[1:]), "model_load_s": load}))
"""
"""A fresh process's first search over 10k documents (8,16): it imports numba and loads (or compiles) the kernel."""


def first_search(cache: Path, with_model_load: str = "") -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": str(cache), "WITH_MODEL_LOAD": with_model_load}
    done = subprocess.run([sys.executable, "-c", FIRST_SEARCH], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(checkout: Path, argv: list[str], reps: int = 3) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout), "HF_HUB_OFFLINE": "1"}
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run([sys.executable, *argv], env=env, capture_output=True, check=True, cwd=checkout)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, help="a checkout of the package before the change")
    args = parser.parse_args()
    checkouts = {"now": ROOT} | ({"before": args.before} if args.before else {})
    commands = {"--version": ["-m", "metaembed_rag.cli", "--version"], "--help": ["-m", "metaembed_rag.cli", "--help"],
                "search --help": ["-m", "metaembed_rag.cli", "search", "--help"]}  # fmt: skip
    rows = {name: {label: run(path, argv) for label, path in checkouts.items()} for name, argv in commands.items()}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", PHASES], env=env, capture_output=True, text=True, check=True)
    phases = json.loads(done.stdout.strip().splitlines()[-1])
    with tempfile.TemporaryDirectory() as cache:  # an empty numba cache: the compile, then a process that loads it
        kernel = {"empty_cache": first_search(Path(cache)), "cached": first_search(Path(cache))}
        kernel["after_model_load"] = first_search(Path(cache), "no warm-up")
        kernel["after_model_load_warmed_up"] = first_search(Path(cache), "warm-up")
    data = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average": os.getloadavg(),
            "commands_s": rows, "search_phases_s": phases, "first_search_s": kernel}  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cold_start.json").write_text(json.dumps(data, indent=2) + "\n")
    labels = list(checkouts)
    lines = [
        "# Cold start of the command line",
        "",
        f"{data['date']}, load average {[round(x, 2) for x in data['load_average']]} (shared 2-core machine); "
        "fresh process per run, median of 3 (seconds).",
        "",
        "| command | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for name, row in rows.items():
        lines.append(f"| `metaembed-rag {name}` | " + " | ".join(f"{row[label]:.2f}" for label in labels) + " |")
    lines += [
        "",
        "A search's phases in a fresh process (what `metaembed-rag search -v` logs): imports "
        f"(torch, transformers, the model code) {phases['imports_s']:.2f} s, starter model load "
        f"{phases['model_load_s']:.2f} s, first query encoding {phases['first_query_encode_s']:.2f} s. The "
        "options are checked before any of it (a cascade smaller than `--k` is refused at once).",
        "",
        "First search over 10,000 documents at (8,16) in a fresh process (it imports numba and loads the compiled "
        f"MaxSim kernel): {kernel['cached']['first_s']:.2f} s with numba's cache filled, then "
        f"{kernel['cached']['warm_s'] * 1e3:.1f} ms per search; {kernel['empty_cache']['first_s']:.2f} s the very "
        "first time on a machine (the kernel compiles into the cache; empty `NUMBA_CACHE_DIR`). After loading "
        f"the starter model, as `metaembed-rag search` does: {kernel['after_model_load']['first_s']:.2f} s "
        f"(model load {kernel['after_model_load']['model_load_s']:.2f} s); with the kernel loaded in the "
        "background during the model load (`MultiVectorIndex.warm_up`, what the command does): "
        f"{kernel['after_model_load_warmed_up']['first_s']:.2f} s (model load "
        f"{kernel['after_model_load_warmed_up']['model_load_s']:.2f} s).",
    ]
    (RESULTS / "cold_start.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
