"""``metaembed-rag train [CONFIG.json] [--option value ...]``: MMR training with LoRA.

Every field of :class:`~metaembed_rag.training.TrainingConfig` is a flag (``--train-file``, ``--max-steps`` …);
flags override the JSON config. ``--groups "1,1;2,4;16,64"`` picks the budget groups.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, fields

from ..errors import InvalidInputError


def register(subparsers) -> None:
    from ..training.config import TrainingConfig

    parser = subparsers.add_parser(
        "train",
        help="train a MetaEmbed model with MMR (LoRA)",
        description="Train with Matryoshka Multi-Vector Retrieval. Data: JSONL of {query, positive, negative}.",
    )
    parser.add_argument("config", nargs="?", help="JSON file with TrainingConfig fields (flags override it)")
    parser.add_argument("--resume", help="a checkpoint folder, or 'latest' (from --output-dir)")
    for f in fields(TrainingConfig):
        default = None if f.default is MISSING else f.default
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            default=None,
            metavar="VALUE",
            help=f"(default: {default!r})" if f.default is not MISSING else "(required)",
        )
    parser.set_defaults(func=run)


def _parse_value(name: str, text: str):
    if name == "groups" and not text.lstrip().startswith("["):
        return [[int(x) for x in part.split(",")] for part in text.split(";") if part.strip()]
    if name == "lora_target_modules" and not text.lstrip().startswith(("[", '"')):
        return [t.strip() for t in text.split(",") if t.strip()]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def run(args: argparse.Namespace) -> int:
    from ..training.config import TrainingConfig
    from ..training.trainer import Trainer

    data = {}
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"cannot read training config {args.config}: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidInputError(f"{args.config} must hold a JSON object")
    for f in fields(TrainingConfig):
        value = getattr(args, f.name)
        if value is not None:
            try:
                data[f.name] = _parse_value(f.name, value)
            except ValueError as exc:
                raise InvalidInputError(f"--{f.name.replace('_', '-')}: cannot parse {value!r}") from exc
    missing = [n for n in ("backbone", "train_file", "output_dir") if n not in data]
    if missing:
        flags = ", ".join("--" + n.replace("_", "-") for n in missing)
        raise InvalidInputError(f"missing {flags} (give them as flags or in the config file)")
    for name in ("backbone", "train_file", "output_dir", "eval_file", "device", "on_bad_line", "name"):
        if name in data and data[name] is not None:
            data[name] = str(data[name])
    result = Trainer(TrainingConfig.from_dict(data)).train(resume_from=args.resume)
    last = result.history[-1] if result.history else {}
    print(f"trained {result.steps} steps in {result.seconds:.0f} s; final loss {last.get('loss', float('nan')):.4f}")
    print(f"model saved to {result.output_dir / 'model'}")
    return 0
