"""Assemble the starter v2 dev table and goal checks from ``window_eval.py`` JSON results.

Usage:
    python benchmarks/starter/v2_table.py --eval a.json b.json ... --v2 CKPT --twin CKPT --mmr-at-twin-step CKPT \
        --old CKPT --training runs/mmr/training_log.jsonl --out benchmarks/results/starter_v2
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

GROUPS = ["1,1", "2,4", "4,8", "8,16", "16,64"]
# printed by /work/shared/bench/faq_eval.py on faq-dev (the set's own script; whole pages or 100-word windows)
BASELINES = {
    "BM25": 69.6,
    "base MiniLM, mean-pooled page (512 tokens)": 72.8,
    "base MiniLM, 100-word windows, best window": 80.4,
    "RRF(BM25, MiniLM windows)": 82.4,
}


def load(paths: list[Path]) -> dict[str, dict]:
    out = {}
    for path in paths:
        for row in json.loads(path.read_text()):
            out[row["checkpoint"]] = row
    return out


def row_cells(row: dict, key: str) -> str:
    return " | ".join(f"{row[g][key]:.1f}" for g in GROUPS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval", type=Path, nargs="+", required=True)
    parser.add_argument("--v2", required=True)
    parser.add_argument("--twin", required=True)
    parser.add_argument("--mmr-at-twin-step", default=None)
    parser.add_argument("--old", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = load(args.eval)
    named = {"starter v2 (MMR)": rows[args.v2]}
    if args.mmr_at_twin_step:
        named["v2 recipe at the twin's step (MMR)"] = rows[args.mmr_at_twin_step]
    named["no-MMR twin"] = rows[args.twin]
    named["v1 starter (shipped), windows"] = rows[args.old]
    lines = [
        "| system | " + " | ".join(f"({g})" for g in GROUPS) + " |",
        "|---|" + "---:|" * len(GROUPS),
    ]
    for name, row in named.items():
        lines.append(f"| {name}, NDCG@10 | {row_cells(row, 'ndcg10')} |")
        lines.append(f"| {name}, R@10 | {row_cells(row, 'recall10')} |")
    for name, value in BASELINES.items():
        lines.append(f"| {name} (NDCG@10, single vector) | " + " | ".join([f"{value:.1f}"] * len(GROUPS)) + " |")
    v2 = named["starter v2 (MMR)"]
    full = v2["16,64"]["ndcg10"]
    series = [v2[g]["ndcg10"] for g in GROUPS]
    monotone = all(b >= a - 0.5 for a, b in itertools.pairwise(series))
    mmr = named.get("v2 recipe at the twin's step (MMR)", v2)
    mmr_gap = mmr["1,1"]["ndcg10"] - named["no-MMR twin"]["1,1"]["ndcg10"]
    equal = "at equal steps" if args.mmr_at_twin_step else "v2 vs. a twin with fewer steps"
    checks = {
        "(16,64) >= 80.4 (bar)": full >= 80.4,
        "(16,64) >= 74.6 (floor)": full >= 74.6,
        "non-decreasing over the groups (0.5 slack)": monotone,
        "(1,1) >= 72.8": v2["1,1"]["ndcg10"] >= 72.8,
        f"MMR >= no-MMR + 3 at (1,1), {equal} (gap {mmr_gap:+.1f})": mmr_gap >= 3,
        "beats the v1 starter at (16,64)": full > named["v1 starter (shipped), windows"]["16,64"]["ndcg10"],
    }
    lines += ["", "| goal | met |", "|---|---|"] + [f"| {k} | {'yes' if v else '**no**'} |" for k, v in checks.items()]
    table = "\n".join(lines) + "\n"
    args.out.with_suffix(".table.md").write_text(table)
    args.out.with_suffix(".json").write_text(
        json.dumps({"rows": named, "baselines": BASELINES, "checks": checks}, indent=2)
    )
    print(table)


if __name__ == "__main__":
    main()
