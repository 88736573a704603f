"""Training data: JSONL pairs, lazy images, and clear errors for bad lines, missing images and empty batches."""

import json

import pytest
from PIL import Image

from metaembed_rag.errors import BudgetError, ImageLoadError, InvalidInputError
from metaembed_rag.training import TrainingConfig, load_batch, read_pairs


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_reads_text_image_and_pair_sides(tmp_path):
    Image.new("RGB", (8, 8), "red").save(tmp_path / "page.png")
    path = write_lines(
        tmp_path / "train.jsonl",
        [
            json.dumps({"query": "q1", "positive": "p1", "negative": "n1"}),
            "",
            json.dumps({"query": {"text": "q2"}, "positive": {"image": "page.png"}}),
            json.dumps({"query": "q3", "positive": {"image": "page.png", "text": "caption"}, "negative": "n3"}),
        ],
    )
    pairs = read_pairs(path)
    assert [p.line for p in pairs] == [1, 3, 4]
    assert pairs[1].positive.image == str(tmp_path / "page.png") and pairs[1].negative is None
    queries, candidates = load_batch(pairs)
    assert [q.text for q in queries] == ["q1", "q2", "q3"]
    assert len(candidates) == 5  # three positives, then the two hard negatives present
    assert candidates[1].image.size == (8, 8) and candidates[2].text == "caption"
    assert [c.text for c in candidates[3:]] == ["n1", "n3"]


def test_malformed_lines_stop_with_their_number_or_are_skipped(tmp_path, caplog):
    path = write_lines(
        tmp_path / "bad.jsonl",
        [
            json.dumps({"query": "ok", "positive": "fine"}),
            "{not json",
            json.dumps({"query": "no positive"}),
            json.dumps(["a", "list"]),
            json.dumps({"query": "", "positive": "x"}),
            json.dumps({"query": "q", "positive": {"img": "x.png"}}),
            json.dumps({"query": "good", "positive": "again"}),
        ],
    )
    with pytest.raises(InvalidInputError, match="line 2: not valid JSON"):
        read_pairs(path)
    pairs = read_pairs(path, on_error="skip")
    assert [p.line for p in pairs] == [1, 7]
    assert "[2, 3, 4, 5, 6]" in caplog.text
    with pytest.raises(InvalidInputError, match="on_error"):
        read_pairs(path, on_error="ignore")


def test_missing_file_empty_file_and_missing_image(tmp_path):
    with pytest.raises(InvalidInputError, match="not found"):
        read_pairs(tmp_path / "nope.jsonl")
    with pytest.raises(InvalidInputError, match="no usable"):
        read_pairs(write_lines(tmp_path / "empty.jsonl", [""]))
    path = write_lines(tmp_path / "img.jsonl", [json.dumps({"query": "q", "positive": {"image": "gone.png"}})])
    pairs = read_pairs(path)  # images are loaded lazily, so reading succeeds
    with pytest.raises(ImageLoadError, match=r"gone.png.*lines \[1\]"):
        load_batch(pairs)
    with pytest.raises(InvalidInputError, match="empty batch"):
        load_batch([])


def test_config_refuses_groups_larger_than_the_tokens_and_unknown_options(tmp_path):
    config = TrainingConfig(
        backbone="x",
        train_file="t",
        output_dir="o",
        num_query_tokens=4,
        num_candidate_tokens=8,
        groups=[[1, 1], [8, 16]],
    )
    with pytest.raises(BudgetError, match="8"):
        config.validate()
    with pytest.raises(InvalidInputError, match="unknown training options"):
        TrainingConfig.from_dict({"backbone": "x", "train_file": "t", "output_dir": "o", "lr": 1})
    with pytest.raises(InvalidInputError, match="batch_size"):
        TrainingConfig(backbone="x", train_file="t", output_dir="o", batch_size=1).validate()
