import pytest
import torch
import torch.nn.functional as F

from metaembed_rag.errors import BudgetError, InvalidInputError
from metaembed_rag.scoring import maxsim, topk


def reference_maxsim(q: torch.Tensor, c: torch.Tensor, r_q: int, r_c: int) -> torch.Tensor:
    q64, c64 = q[:, :r_q].double(), c[:, :r_c].double()
    out = torch.zeros(q.shape[0], c.shape[0], dtype=torch.float64)
    for i in range(q.shape[0]):
        for j in range(c.shape[0]):
            out[i, j] = (q64[i] @ c64[j].T).max(dim=1).values.sum()
    return out


def random_vectors(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


@pytest.mark.parametrize("budget", [(1, 1), (2, 4), (4, 8), (8, 16), (16, 64), (3, 7)])
def test_maxsim_matches_float64_reference(budget):
    q = random_vectors(5, 16, 32, seed=1)
    c = random_vectors(37, 64, 32, seed=2)
    got = maxsim(q, c, budget, chunk_size=8)
    ref = reference_maxsim(q, c, *budget)
    rel = ((got.double() - ref).abs() / ref.abs().clamp_min(1e-12)).max().item()
    assert got.dtype == torch.float32
    assert rel <= 1e-5, rel


def test_chunking_does_not_change_scores():
    q = random_vectors(3, 16, 24, seed=3)
    c = random_vectors(50, 64, 24, seed=4)
    full = maxsim(q, c, (8, 16), chunk_size=1000)
    for chunk in (1, 7, 49):
        assert torch.allclose(maxsim(q, c, (8, 16), chunk_size=chunk), full, rtol=1e-6, atol=1e-6)


def test_low_precision_storage_accumulates_in_float32():
    q = random_vectors(2, 16, 64, seed=5)
    c = random_vectors(20, 64, 64, seed=6)
    got = maxsim(q, c.to(torch.bfloat16), (16, 64))
    ref = reference_maxsim(q, c.to(torch.bfloat16).float(), 16, 64)
    assert got.dtype == torch.float32
    assert torch.allclose(got.double(), ref, rtol=1e-5, atol=1e-5)


def test_normalized_score_divides_by_r_q_and_is_bounded():
    q = random_vectors(2, 16, 16, seed=7)
    c = random_vectors(9, 64, 16, seed=8)
    raw = maxsim(q, c, (8, 16))
    norm = maxsim(q, c, (8, 16), normalize=True)
    assert torch.allclose(norm * 8, raw)
    assert norm.abs().max() <= 1.0 + 1e-6
    same = maxsim(c[:1, :4], c[:1], (4, 64), normalize=True)
    assert same.item() == pytest.approx(1.0, abs=1e-6)


def test_topk_orders_and_clips():
    scores = torch.tensor([[0.1, 0.9, 0.5], [0.3, 0.2, 0.8]])
    values, idx = topk(scores, 2)
    assert idx.tolist() == [[1, 2], [2, 0]]
    assert torch.allclose(values, torch.tensor([[0.9, 0.5], [0.8, 0.3]]))
    assert topk(scores, 10)[1].shape == (2, 3)


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_topk_rejects_bad_k(k):
    with pytest.raises(InvalidInputError):
        topk(torch.zeros(1, 3), k)


def test_bad_shapes_and_budgets():
    q = random_vectors(1, 16, 8)
    c = random_vectors(2, 64, 8)
    with pytest.raises(InvalidInputError, match="dim"):
        maxsim(q, random_vectors(2, 64, 9), (1, 1))
    with pytest.raises(InvalidInputError, match="shape"):
        maxsim(q[0], c, (1, 1))
    with pytest.raises(BudgetError):
        maxsim(q, c, (17, 64))
    with pytest.raises(BudgetError):
        maxsim(q, c[:, :16], (8, 32))
