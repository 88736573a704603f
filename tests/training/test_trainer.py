"""Real MMR training runs (MiniLM text, tiny Qwen2.5-VL with image documents): loss goes down, resume is exact."""

import pytest
import torch
from fixtures.training import MINILM, tiny_config, write_jsonl
from PIL import Image

from metaembed_rag import MetaEmbedModel
from metaembed_rag.cli import main as cli_main
from metaembed_rag.errors import CheckpointError, IncompatibleModelError
from metaembed_rag.training import Trainer, list_checkpoints

PAIRS = [
    (
        "how do I list the files in a directory",
        "ls lists information about the files in a directory",
        "mkdir creates directories",
    ),
    ("copy a string into a buffer", "strcpy copies the string pointed to by src to dest", "strlen returns a length"),
    ("open a network connection", "socket creates an endpoint for communication", "close closes a descriptor"),
    ("sort a list in python", "sorted returns a new sorted list from an iterable", "reversed gives a reverse iterator"),
    ("read a file line by line", "iterate over the file object to read lines", "write adds text to a file"),
    ("current time in seconds", "time returns the time in seconds since the epoch", "sleep suspends execution"),
    ("remove a file", "unlink deletes a name from the filesystem", "rename changes a file name"),
    ("environment variables", "getenv looks up a variable in the environment", "setlocale sets the locale"),
]


write_pairs = write_jsonl


@pytest.fixture()
def text_pairs(tmp_path):
    return write_pairs(tmp_path / "train.jsonl", [{"query": q, "positive": p, "negative": n} for q, p, n in PAIRS])


def small_config(train_file, out, **overrides):
    values = dict(eval_file=train_file, groups=[[1, 1], [2, 4], [4, 8]], batch_size=4, max_steps=8)
    return tiny_config(train_file, out, **(values | overrides))


def test_short_real_run_lowers_the_loss_and_saves_a_loadable_model(text_pairs, tmp_path):
    trainer = Trainer(small_config(text_pairs, tmp_path / "run"))
    before = trainer.evaluate()
    result = trainer.train()
    after = trainer.evaluate()
    assert result.steps == 8 and len(result.history) == 8
    assert after["loss"] < 0.8 * before["loss"], (before, after)
    for group in ("1_1", "2_4", "4_8"):
        assert after[f"loss_{group}"] < before[f"loss_{group}"]
    loaded = MetaEmbedModel.from_pretrained(tmp_path / "run" / "model")
    assert loaded.config.trained_groups == [[1, 1], [2, 4], [4, 8]] and loaded.config.has_adapter
    queries = [q for q, _, _ in PAIRS]
    assert torch.allclose(loaded.encode_query(queries), result.model.encode_query(queries), atol=1e-5)
    assert loaded.fingerprint == result.model.fingerprint
    assert (tmp_path / "run" / "training_log.jsonl").is_file()


def test_resume_continues_exactly(text_pairs, tmp_path):
    full = Trainer(small_config(text_pairs, tmp_path / "a", max_steps=4, save_every=2)).train()
    checkpoints = list_checkpoints(tmp_path / "a")
    assert [p.name for p in checkpoints] == ["step-0000002", "step-0000004"]
    resumed_trainer = Trainer(small_config(text_pairs, tmp_path / "b", max_steps=4, save_every=2))
    resumed = resumed_trainer.train(resume_from=checkpoints[0])
    assert resumed.steps == 4 and len(resumed.history) == 4
    assert torch.allclose(full.model.meta_tokens.weight, resumed.model.meta_tokens.weight, atol=1e-6)
    lora_a = dict(full.model.backbone.named_parameters())
    for name, param in resumed.model.backbone.named_parameters():
        if "lora_" in name:
            assert torch.allclose(param, lora_a[name], atol=1e-6), name


def test_resume_refuses_another_models_checkpoint(text_pairs, tmp_path):
    Trainer(small_config(text_pairs, tmp_path / "a", max_steps=1, save_every=1)).train()
    other = Trainer(small_config(text_pairs, tmp_path / "a", max_steps=2, lora_r=8))
    with pytest.raises(IncompatibleModelError, match="lora_r: checkpoint 4 vs run 8"):
        other.train(resume_from="latest")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Trainer(small_config(text_pairs, tmp_path / "empty", max_steps=1)).train(resume_from="latest")
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        Trainer(small_config(text_pairs, tmp_path / "c", max_steps=1)).train(resume_from=tmp_path)


def test_cli_train_with_flags(text_pairs, tmp_path, capsys):
    code = cli_main(
        [
            "train",
            "--backbone",
            MINILM,
            "--train-file",
            text_pairs,
            "--output-dir",
            str(tmp_path / "cli"),
            "--num-query-tokens",
            "2",
            "--num-candidate-tokens",
            "4",
            "--groups",
            "1,1;2,4",
            "--lora-r",
            "2",
            "--batch-size",
            "4",
            "--max-steps",
            "1",
            "--log-every",
            "1",
        ]
    )
    assert code == 0 and "trained 1 steps" in capsys.readouterr().out
    assert MetaEmbedModel.from_pretrained(tmp_path / "cli" / "model").config.trained_groups == [[1, 1], [2, 4]]
    assert cli_main(["train", "--train-file", text_pairs]) == 2  # a clear error: missing --backbone, --output-dir


def picture(seed: int) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray((torch.rand(28, 28, 3, generator=g) * 255).to(torch.uint8).numpy())


def test_tiny_qwen_training_on_image_documents(tiny_qwen_dir, tmp_path):
    rows = []
    for i in range(6):
        picture(i).save(tmp_path / f"page{i}.png")
        picture(100 + i).save(tmp_path / f"other{i}.png")
        rows.append(
            {
                "query": f"page number {i}",
                "positive": {"image": f"page{i}.png"},
                "negative": {"image": f"other{i}.png", "text": "another page"},
            }
        )
    train_file = write_pairs(tmp_path / "images.jsonl", rows)
    config = small_config(
        train_file,
        tmp_path / "qwen",
        backbone=str(tiny_qwen_dir),
        learning_rate=2e-3,
        meta_learning_rate=1e-2,
        warmup_steps=0,
        batch_size=3,
        max_steps=6,
        save_every=3,
        gradient_checkpointing=True,
        log_every=10,
        max_document_length=None,
        max_query_length=None,
    )
    trainer = Trainer(config)
    before = trainer.evaluate()
    result = trainer.train()
    after = trainer.evaluate()
    assert after["loss"] < before["loss"], (before, after)
    loaded = MetaEmbedModel.from_pretrained(tmp_path / "qwen" / "model")
    assert loaded.supports_images and loaded.config.trained_groups == [[1, 1], [2, 4], [4, 8]]
    docs = [tmp_path / "page0.png", tmp_path / "page1.png"]
    assert torch.allclose(loaded.encode_document(docs), result.model.encode_document(docs), atol=1e-5)
