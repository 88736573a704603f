"""Retrieval quality at every budget from one pass of encoding: NDCG@k, Recall@k and MRR@k.

Data comes from a BEIR-style folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) or from a
training-style JSONL of ``{"query", "positive"[, "negative"]}`` lines (each query's positive is its relevant
document; negatives join the corpus). Queries and documents are encoded once at full size; every budget is a
prefix of those vectors.

Example:
    >>> data = load_dataset("data/python-faq")                          # doctest: +SKIP
    >>> result = evaluate(model, data, budgets=MATRYOSHKA_GROUPS)      # doctest: +SKIP
    >>> print(format_table(result))                                     # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .budget import MATRYOSHKA_GROUPS, Budget, BudgetLike, resolve_budget
from .errors import InvalidInputError
from .inputs import EncodeInput
from .scoring import maxsim

logger = logging.getLogger(__name__)

DEFAULT_K = (1, 5, 10)


@dataclass
class RetrievalDataset:
    """Queries, a corpus and graded relevance judgements ``qrels[query_id][doc_id] = grade``."""

    queries: dict[str, EncodeInput]
    corpus: dict[str, EncodeInput]
    qrels: dict[str, dict[str, int]]
    name: str = "dataset"

    def __post_init__(self) -> None:
        if not self.corpus:
            raise InvalidInputError(f"{self.name}: the corpus is empty")
        judged = {q: {d: g for d, g in docs.items() if g > 0} for q, docs in self.qrels.items()}
        missing_docs = {d for docs in judged.values() for d in docs if d not in self.corpus}
        if missing_docs:
            logger.warning("%s: %d judged documents are not in the corpus (ignored)", self.name, len(missing_docs))
        self.qrels = {
            q: {d: g for d, g in docs.items() if d in self.corpus} for q, docs in judged.items() if q in self.queries
        }
        self.qrels = {q: docs for q, docs in self.qrels.items() if docs}
        if not self.qrels:
            raise InvalidInputError(f"{self.name}: no query has a relevant document in the corpus")

    @property
    def query_ids(self) -> list[str]:
        """Queries with at least one relevant document, in a stable order."""
        return sorted(self.qrels)


@dataclass
class EvaluationResult:
    """Metrics per budget: ``metrics[(r_q, r_c)]["ndcg@10"]`` etc. (values in [0, 1])."""

    metrics: dict[tuple[int, int], dict[str, float]]
    num_queries: int
    num_documents: int
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_queries": self.num_queries,
            "num_documents": self.num_documents,
            "seconds": self.seconds,
            "budgets": [{"budget": list(b), **m} for b, m in self.metrics.items()],
        }


# ------------------------------------------------------------------------------------------------- loading
def load_dataset(path: str | os.PathLike, *, split: str = "test") -> RetrievalDataset:
    """A BEIR-style folder or a pairs JSONL file."""
    path = Path(path)
    if path.is_dir():
        return load_beir(path, split=split)
    if path.is_file():
        return load_pairs_jsonl(path)
    raise InvalidInputError(f"no evaluation data at {path} (expected a BEIR folder or a .jsonl file)")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise InvalidInputError(f"{path}: line {number} is not a JSON object")
            rows.append(row)
    return rows


def _beir_item(row: dict[str, Any], base: Path, path: Path) -> EncodeInput:
    text = " ".join(p for p in (row.get("title"), row.get("text")) if isinstance(p, str) and p.strip())
    image = row.get("image")
    if image:
        image_path = str(image if os.path.isabs(image) else base / image)
        return (image_path, text) if text else Path(image_path)
    if not text:
        raise InvalidInputError(f"{path}: entry {row.get('_id')!r} has neither text nor image")
    return text


def load_beir(folder: str | os.PathLike, *, split: str = "test") -> RetrievalDataset:
    """``corpus.jsonl`` (``_id``, ``title``, ``text``, optional ``image``), ``queries.jsonl`` and
    ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score`` with a header line)."""
    folder = Path(folder)
    files = {
        "corpus": folder / "corpus.jsonl",
        "queries": folder / "queries.jsonl",
        "qrels": folder / "qrels" / f"{split}.tsv",
    }
    for name, file in files.items():
        if not file.is_file():
            raise InvalidInputError(f"BEIR folder {folder} lacks {file.relative_to(folder)} ({name})")
    corpus, queries = {}, {}
    for target, name in ((corpus, "corpus"), (queries, "queries")):
        for row in _read_jsonl(files[name]):
            if "_id" not in row:
                raise InvalidInputError(f"{files[name]}: an entry lacks '_id'")
            target[str(row["_id"])] = _beir_item(row, folder, files[name])
    qrels: dict[str, dict[str, int]] = {}
    with files["qrels"].open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for number, row in enumerate(reader, start=1):
            if number == 1 and row and not row[-1].lstrip("-").isdigit():
                continue  # header
            if len(row) < 3:
                raise InvalidInputError(f"{files['qrels']}: line {number} needs query-id, corpus-id, score")
            try:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
            except ValueError:
                raise InvalidInputError(f"{files['qrels']}: line {number} has a non-integer score {row[2]!r}") from None
    return RetrievalDataset(queries, corpus, qrels, name=folder.name)


def load_pairs_jsonl(path: str | os.PathLike) -> RetrievalDataset:
    """Training-style pairs: each query's positive is relevant; negatives are extra corpus documents."""
    from .training.data import Side, read_pairs

    def item(side: Side) -> EncodeInput:
        if side.image is None:
            return side.text or ""
        return (side.image, side.text) if side.text else Path(side.image)

    path = Path(path)
    corpus: dict[str, EncodeInput] = {}
    ids: dict[Side, str] = {}
    queries: dict[str, EncodeInput] = {}
    qrels: dict[str, dict[str, int]] = {}
    for pair in read_pairs(path):
        for side in (pair.positive, pair.negative):
            if side is not None and side not in ids:
                ids[side] = f"d{len(ids)}"
                corpus[ids[side]] = item(side)
        qid = f"q{pair.line}"
        queries[qid] = item(pair.query)
        qrels[qid] = {ids[pair.positive]: 1}
    return RetrievalDataset(queries, corpus, qrels, name=path.stem)


# ------------------------------------------------------------------------------------------------- metrics
def retrieval_metrics(
    scores: torch.Tensor,
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Mapping[str, Mapping[str, int]],
    k_values: Sequence[int] = DEFAULT_K,
) -> dict[str, float]:
    """Mean NDCG@k, Recall@k (for each k) and MRR@max(k) of a ``[n_q, n_d]`` score matrix.

    Example:
        >>> s = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
        >>> retrieval_metrics(s, ["a", "b"], ["x", "y"], {"a": {"x": 1}, "b": {"x": 1}}, k_values=[1])
        {'ndcg@1': 0.5, 'recall@1': 0.5, 'mrr@1': 0.5}
    """
    if scores.shape != (len(query_ids), len(doc_ids)):
        raise InvalidInputError(f"scores {tuple(scores.shape)} do not match {len(query_ids)} x {len(doc_ids)} ids")
    k_values = sorted({int(k) for k in k_values})
    if not k_values or k_values[0] < 1:
        raise InvalidInputError(f"k values must be positive integers, got {k_values}")
    deepest = min(max(k_values), len(doc_ids))
    top = torch.topk(scores.float(), deepest, dim=1).indices.tolist()
    sums = {f"ndcg@{k}": 0.0 for k in k_values} | {f"recall@{k}": 0.0 for k in k_values}
    sums[f"mrr@{max(k_values)}"] = 0.0
    for row, qid in enumerate(query_ids):
        relevant = qrels[qid]
        grades = [relevant.get(doc_ids[i], 0) for i in top[row]]
        ideal = sorted(relevant.values(), reverse=True)
        for k in k_values:
            dcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(grades[:k]) if g > 0)
            idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal[:k]))
            sums[f"ndcg@{k}"] += dcg / idcg if idcg else 0.0
            sums[f"recall@{k}"] += sum(1 for g in grades[:k] if g > 0) / len(relevant)
        first = next((rank for rank, g in enumerate(grades) if g > 0), None)
        sums[f"mrr@{max(k_values)}"] += 0.0 if first is None else 1.0 / (first + 1)
    return {name: value / len(query_ids) for name, value in sums.items()}


def evaluate(
    model,
    data: RetrievalDataset,
    budgets: Sequence[BudgetLike] | None = None,
    *,
    k_values: Sequence[int] = DEFAULT_K,
    batch_size: int = 32,
    show_progress: bool | None = None,
) -> EvaluationResult:
    """Encode ``data`` once with a :class:`~metaembed_rag.MetaEmbedModel` and score it at every budget.

    ``budgets`` default to the model's trained groups (or the paper's five that fit).
    """
    import time

    chosen = [
        resolve_budget(b, max_query=model.num_query_tokens, max_candidate=model.num_candidate_tokens)
        for b in (budgets if budgets is not None else (model.config.groups or MATRYOSHKA_GROUPS))
    ]
    query_ids = data.query_ids
    doc_ids = list(data.corpus)
    started = time.perf_counter()
    doc_vectors = model.encode_document(
        [data.corpus[d] for d in doc_ids], batch_size=batch_size, show_progress=show_progress
    )
    encoded_docs = time.perf_counter()
    query_vectors = model.encode_query(
        [data.queries[q] for q in query_ids], batch_size=batch_size, show_progress=show_progress
    )
    encoded_queries = time.perf_counter()
    metrics = {}
    for b in chosen:
        scores = maxsim(
            query_vectors[:, : b.r_q].contiguous(), doc_vectors[:, : b.r_c].contiguous(), Budget(b.r_q, b.r_c)
        )
        metrics[(b.r_q, b.r_c)] = retrieval_metrics(scores, query_ids, doc_ids, data.qrels, k_values)
    return EvaluationResult(
        metrics,
        len(query_ids),
        len(doc_ids),
        {
            "encode_documents": round(encoded_docs - started, 2),
            "encode_queries": round(encoded_queries - encoded_docs, 2),
            "score": round(time.perf_counter() - encoded_queries, 2),
        },
    )


def format_table(result: EvaluationResult, columns: Sequence[str] | None = None) -> str:
    """A Markdown table with one row per budget (values in percent)."""
    if not result.metrics:
        return "(no budgets evaluated)"
    names = list(columns) if columns else list(next(iter(result.metrics.values())))
    lines = ["| budget (r_q, r_c) | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for budget, values in result.metrics.items():
        cells = " | ".join(f"{100 * values[n]:.1f}" for n in names)
        lines.append(f"| ({budget[0]}, {budget[1]}) | {cells} |")
    return "\n".join(lines)
