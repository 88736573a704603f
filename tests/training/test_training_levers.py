"""Training levers: the no-grad text pass, distillation from the base model, pooled meta init, bad input."""

import pytest
import torch
import torch.nn.functional as F
from fixtures.training import tiny_config, write_jsonl

from metaembed_rag.errors import IncompatibleModelError, InvalidInputError
from metaembed_rag.inputs import ModelInput
from metaembed_rag.training import Trainer
from metaembed_rag.training.data import Side, TrainingPair, deduplicate_pairs, false_negative_mask
from metaembed_rag.training.distill import BackboneTeacher, distill_loss
from metaembed_rag.training.loss import mmr_loss
from metaembed_rag.training.meta_init import init_meta_from_text
from metaembed_rag.training.text_cache import first_trainable_layer, forward_split
from metaembed_rag.training.trainer import build_model

TOP_LAYER = r".*encoder\.layer\.5\..*(query|key|value|dense)$"
ROWS = [
    ("list the files in a directory", "ls lists information about the files in a directory", "mkdir makes dirs"),
    ("copy a string into a buffer", "strcpy copies the string pointed to by src to dest", "strlen gives a length"),
    ("open a network connection", "socket creates an endpoint for communication", "close closes a descriptor"),
    ("sort a list in python", "sorted returns a new sorted list from an iterable", "reversed iterates back"),
    ("read a file line by line", "iterate over the file object to read its lines", "write adds text to a file"),
    ("current time in seconds", "time returns the seconds since the epoch", "sleep suspends execution"),
]


def unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


write = write_jsonl


def config(train_file, out, **overrides):
    values = dict(groups=[[1, 1], [4, 8]], lora_target_modules=TOP_LAYER, batch_size=3, max_steps=4)
    return tiny_config(train_file, out, **(values | overrides))


@pytest.fixture()
def pairs_file(tmp_path):
    return write(tmp_path / "train.jsonl", [{"query": q, "positive": p, "negative": n} for q, p, n in ROWS])


@pytest.fixture(scope="module")
def lora_model():
    model = build_model(config("unused", "unused"))
    with torch.no_grad():  # make the adapter non-zero so the test sees its effect
        for name, param in model.backbone.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    return model.eval()


def test_split_forward_equals_the_standard_forward_and_its_gradients(lora_model):
    model = lora_model
    assert first_trainable_layer(model) == 5
    docs = [ModelInput(text=p * (1 + i)) for i, (_, p, _) in enumerate(ROWS)]
    queries = [ModelInput(text=q) for q, _, _ in ROWS]
    for items, side in ((docs, "document"), (queries, "query")):
        batch = model._prepare_items(items, side)
        grads = []
        outputs = []
        for fn in (model, lambda b: forward_split(model, b)):
            model.zero_grad(set_to_none=True)
            out = fn(batch)
            (out * unit(*out.shape, seed=3)).sum().backward()
            outputs.append(out.detach())
            grads.append([p.grad.clone() for p in model.trainable_parameters()])
        assert torch.allclose(outputs[0], outputs[1], atol=1e-5), side
        for a, b in zip(*grads, strict=True):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), side
    model.zero_grad(set_to_none=True)


def test_backbone_teacher_is_the_mean_pooled_base_model(lora_model):
    teacher = BackboneTeacher(lora_model, max_length=32)
    texts = [p for _, p, _ in ROWS]
    vectors = teacher([ModelInput(text=t) for t in texts])
    assert vectors.shape == (len(texts), 384) and teacher.dim == 384
    backbone = lora_model.family.backbone
    batch = lora_model.family.processor(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad(), backbone.disable_adapter():
        hidden = backbone.get_base_model()(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None]
    expected = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert torch.allclose(vectors, expected, atol=1e-5)
    with torch.no_grad():
        plain = backbone(**batch).last_hidden_state  # adapter on: differs, so the teacher really disabled it
    assert not torch.allclose(F.normalize((plain * mask).sum(1) / mask.sum(1), dim=-1), expected, atol=1e-3)


def test_distill_terms_vanish_when_the_student_matches_the_teacher():
    tq, tc = unit(4, 8, seed=1), unit(8, 8, seed=2)
    q = tq[:, None, :].expand(4, 16, 8).contiguous()
    c = tc[:, None, :].expand(8, 64, 8).contiguous()
    out = distill_loss(q, c, tq, tc, groups=[(1, 1), (16, 64)], align_weight=1.0, kl_weight=1.0)
    assert float(out["align"]) == pytest.approx(0.0, abs=1e-6)
    assert float(out["kl"]) == pytest.approx(0.0, abs=1e-5)
    other = distill_loss(unit(4, 16, 8, seed=5), unit(8, 64, 8, seed=6), tq, tc, align_weight=1.0, kl_weight=1.0)
    assert float(other["align"]) > 0.3 and float(other["kl"]) > 0.01
    assert distill_loss(q, c, tq, tc, align_weight=0.0, kl_weight=1.0).keys() == {"kl"}


def test_distill_refuses_another_dimension_and_mismatched_batches():
    q, c = unit(4, 16, 8), unit(8, 64, 8)
    with pytest.raises(IncompatibleModelError, match="dimension 12"):
        distill_loss(q, c, unit(4, 12), unit(8, 12), align_weight=1.0)
    kl_only = distill_loss(q, c, unit(4, 12), unit(8, 12), kl_weight=1.0)  # scores only: any dimension works
    assert torch.isfinite(kl_only["kl"])
    with pytest.raises(InvalidInputError, match="do not match the batch"):
        distill_loss(q, c, unit(3, 8), unit(8, 8), align_weight=1.0)


def test_exclude_removes_a_duplicate_positive_from_the_negatives():
    q, c = unit(2, 2, 4, seed=1), unit(2, 2, 4, seed=2)
    c_dup = torch.cat([c, c[:1]])  # candidate 2 is a copy of query 0's positive
    exclude = torch.zeros(2, 3, dtype=torch.bool)
    exclude[0, 2] = True
    got = mmr_loss(q, c_dup, [(2, 2)], temperature=0.1, exclude=exclude).loss
    scores = torch.einsum("qid,cjd->qcij", q, c_dup).amax(dim=3).mean(dim=2) / 0.1
    row0 = F.cross_entropy(scores[:1, :2], torch.tensor([0]))  # the copy is not a negative of query 0
    row1 = F.cross_entropy(scores[1:], torch.tensor([1]))  # but it is one of query 1
    assert float(got) == pytest.approx(float((row0 + row1) / 2), rel=1e-5)
    assert float(mmr_loss(q, c_dup, [(2, 2)], temperature=0.1).loss) > float(got)
    with pytest.raises(InvalidInputError, match="own positive"):
        mmr_loss(q, c, [(1, 1)], exclude=torch.eye(2, dtype=torch.bool))
    with pytest.raises(InvalidInputError, match="shape"):
        mmr_loss(q, c, [(1, 1)], exclude=torch.zeros(3, 2, dtype=torch.bool))


def test_duplicates_are_dropped_and_copies_masked():
    a, b = Side(text="query a"), Side(text="doc a")
    pairs = [TrainingPair(a, b), TrainingPair(a, b), TrainingPair(Side(text="query b"), b, Side(text="x"))]
    kept, dropped = deduplicate_pairs(pairs)
    assert dropped == 1 and len(kept) == 2
    mask = false_negative_mask(kept)
    assert mask.tolist() == [[False, True, False], [True, False, False]]


def test_pooled_meta_init_starts_near_the_mean_word_embedding(lora_model):
    model = build_model(config("unused", "unused"))
    count = init_meta_from_text(model, [p for _, p, _ in ROWS], tokens_per_meta=8)
    weight = model.meta_tokens.weight.detach()
    assert count > 30 and weight.shape == (12, 384)
    assert not torch.allclose(weight[0], weight[1])  # each token has its own sample
    table = model.family.input_embeddings.weight.detach()
    assert float(weight.norm(dim=-1).mean()) < float(table.norm(dim=-1).mean())  # averages shrink
    with pytest.raises(InvalidInputError, match="non-empty text"):
        init_meta_from_text(model, ["", ""])


def test_levers_train_and_lower_the_loss(pairs_file, tmp_path):
    trainer = Trainer(
        config(
            pairs_file,
            tmp_path / "run",
            eval_file=pairs_file,
            distill_align_weight=1.0,
            distill_kl_weight=1.0,
            text_cache=True,
            meta_init="pooled",
            max_steps=6,
        )
    )
    before = trainer.evaluate()
    result = trainer.train()
    after = trainer.evaluate()
    assert after["loss"] < before["loss"], (before, after)
    assert {"distill_align", "distill_kl"} <= set(result.history[-1])


def test_huge_passages_and_duplicate_lines_are_handled(tmp_path, caplog):
    rows = [{"query": q, "positive": p} for q, p, _ in ROWS]
    dup = write(tmp_path / "dup.jsonl", rows + rows[:2])
    with caplog.at_level("WARNING"):
        trainer = Trainer(config(dup, tmp_path / "run"))
    assert len(trainer.pairs) == len(ROWS) and "dropped 2 repeated" in caplog.text
    huge = write(tmp_path / "huge.jsonl", [*rows, {"query": "q", "positive": "x" * 200}])
    with pytest.raises(InvalidInputError, match="line 7: 'positive' holds 200 characters"):
        Trainer(config(huge, tmp_path / "run2", max_passage_chars=100))
    empty = write(tmp_path / "empty.jsonl", [*rows, {"query": "q", "positive": "   "}])
    with pytest.raises(InvalidInputError, match=r"line 7.*empty"):
        Trainer(config(empty, tmp_path / "run3"))


def test_resume_refuses_a_checkpoint_of_another_recipe(pairs_file, tmp_path):
    Trainer(config(pairs_file, tmp_path / "a", max_steps=1, save_every=1)).train()
    other = Trainer(config(pairs_file, tmp_path / "a", max_steps=2, distill_align_weight=1.0))
    with pytest.raises(
        IncompatibleModelError, match=r"another recipe.*distill_align_weight: checkpoint 0\.0 vs run 1\.0"
    ):
        other.train(resume_from="latest")
    again = Trainer(config(pairs_file, tmp_path / "a", max_steps=2, groups=[[1, 1]]))
    with pytest.raises(IncompatibleModelError, match=r"another recipe.*groups"):
        again.train(resume_from="latest")


def test_the_checkpoint_declares_the_length_it_was_trained_at(tmp_path):
    model = build_model(config("unused", "unused"))  # documents of 32 tokens + 4 + 8 meta tokens
    assert model.config.max_length == 44 and model.family.max_length == 44
    assert build_model(config("unused", "unused", max_length=100)).config.max_length == 100
    with pytest.raises(InvalidInputError, match="no room for text"):
        config("unused", "unused", max_length=12).validate()
