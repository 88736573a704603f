"""Lever probe without training: retrieval on held-out training-style pairs right after initialisation.

Compares the base MiniLM (mean-pooled, the teacher) with a fresh MetaEmbed model whose meta tokens are random
or pooled from text (``meta_init``). Each query ranks the positives and hard negatives of the first N pairs of
``val.jsonl`` (held out of training); R@1 and MRR in %.

Usage:
    python benchmarks/starter/probe_init.py --val /work/data-starter/val.jsonl -n 64
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from train_starter import BACKBONE, LORA_TARGETS

sys.path.insert(0, str(Path(__file__).resolve().parent))

from metaembed_rag import MetaEmbedModel
from metaembed_rag.training.distill import BackboneTeacher
from metaembed_rag.training.meta_init import init_meta_from_text
from metaembed_rag.training.trainer import TrainingConfig, build_model


def read(path: Path, limit: int) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for _, line in zip(range(limit), handle, strict=False)]


def rank_metrics(scores: torch.Tensor) -> dict[str, float]:
    """Query i's positive is column i; R@1 and MRR in %."""
    ranks = (scores > scores.diagonal()[:, None]).sum(1).float()
    return {
        "R@1": round(100 * float((ranks < 1).float().mean()), 1),
        "MRR": round(100 * float((1 / (ranks + 1)).mean()), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--val", type=Path, default=Path("/work/data-starter/val.jsonl"))
    parser.add_argument("--train", type=Path, default=Path("/work/data-starter/train_main.jsonl"))
    parser.add_argument("-n", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/starter_init_probe.json"))
    parser.add_argument("--checkpoints", nargs="*", default=[], help="also score trained checkpoints (no init runs)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    val = read(args.val, args.n)
    queries = [p["query"] for p in val]
    docs = [p["positive"] for p in val] + [p["negative"] for p in val]
    config = TrainingConfig(backbone=BACKBONE, train_file="-", output_dir="-", lora_r=8, lora_alpha=16)
    config.lora_target_modules = LORA_TARGETS  # type: ignore[assignment]
    model = build_model(config)
    model.family.max_length = 208
    model.eval()
    from metaembed_rag.inputs import ModelInput

    teacher = BackboneTeacher(model, max_length=128)
    tq, td = teacher([ModelInput(text=t) for t in queries]), teacher([ModelInput(text=t) for t in docs])
    results = {"teacher mean-pool": rank_metrics(tq @ td.T)}
    for checkpoint in args.checkpoints:
        trained = MetaEmbedModel.from_pretrained(checkpoint)
        q, d = trained.encode_query(queries), trained.encode_document(docs)
        for group in ((1, 1), (16, 64)):
            results[f"{checkpoint} {group}"] = rank_metrics(trained.similarity(q, d, budget=group))
        print(json.dumps(results, indent=2), flush=True)
    for variant in () if args.checkpoints else ("random", "pooled"):
        if variant == "pooled":
            init_meta_from_text(model, [p["positive"] for p in read(args.train, 500)])
        started = time.time()
        q, d = model.encode_query(queries), model.encode_document(docs)
        for group in ((1, 1), (16, 64)):
            results[f"{variant} meta {group}"] = rank_metrics(model.similarity(q, d, budget=group))
        cosine = float((F.normalize(d[:, 0], dim=-1) * td).sum(-1).mean())
        results[f"{variant} meta: cos(first doc vector, teacher)"] = round(cosine, 3)
        results[f"{variant} encode seconds"] = round(time.time() - started, 1)
    print(json.dumps(results, indent=2))
    args.out.write_text(json.dumps({"pairs": args.n, "results": results}, indent=2))


if __name__ == "__main__":
    main()
