"""``metaembed-rag eval DATA [--model PATH]``: NDCG@k, Recall@k and MRR at every budget, as a table."""

from __future__ import annotations

import argparse

from ..atomic import write_json_atomic
from ..errors import InvalidInputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate retrieval quality at every budget",
        description="Encode once, score at every budget. DATA: a BEIR folder (corpus.jsonl, queries.jsonl, "
        "qrels/<split>.tsv) or a JSONL of {query, positive[, negative]}.",
    )
    parser.add_argument("data", help="BEIR-style folder or pairs .jsonl")
    parser.add_argument("--model", default=None, help="MetaEmbed checkpoint (default: the shipped starter model)")
    parser.add_argument("--budgets", default="all", help="'all' (the model's groups) or e.g. '1,1;8,16;16,64'")
    parser.add_argument("--k", default="1,5,10", help="cut-offs, e.g. '1,5,10'")
    parser.add_argument("--split", default="test", help="qrels split of a BEIR folder")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", dest="json_out", default=None, help="also write the results to this JSON file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate, format_table, load_dataset
    from ..modeling.model import MetaEmbedModel

    try:
        k_values = [int(k) for k in args.k.split(",") if k.strip()]
    except ValueError:
        raise InvalidInputError(f"--k must be comma-separated integers, got {args.k!r}") from None
    budgets = None if args.budgets == "all" else [b for b in args.budgets.split(";") if b.strip()]
    if args.model is None:
        from ..starter import STARTER_MODEL

        args.model = STARTER_MODEL
    data = load_dataset(args.data, split=args.split)
    model = MetaEmbedModel.from_pretrained(args.model, device=args.device)
    result = evaluate(model, data, budgets, k_values=k_values, batch_size=args.batch_size)
    print(f"{data.name}: {result.num_queries} queries, {result.num_documents} documents, model {args.model}")
    print(format_table(result))
    if args.json_out:
        write_json_atomic(args.json_out, {"data": str(args.data), "model": str(args.model), **result.to_dict()})
    return 0
