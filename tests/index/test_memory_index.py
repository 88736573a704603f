"""MultiVectorIndex: exact scores against a float64 reference, budgets, dtypes, filters, upserts, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from metaembed_rag.errors import (
    BudgetError,
    DocumentNotFoundError,
    InvalidInputError,
)
from metaembed_rag.index import MultiVectorIndex, MultiVectorStore, SearchHit
from metaembed_rag.scoring import maxsim_vector_major

DIM = 24
TOL = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1.5e-2, "int8": 1.5e-2}


def unit(*shape: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=generator, dtype=torch.float64), dim=-1)


def reference(queries: torch.Tensor, docs: torch.Tensor, budget: tuple[int, int]) -> torch.Tensor:
    r_q, r_c = budget
    sims = torch.einsum("qid,njd->qnij", queries[:, :r_q].double(), docs[:, :r_c].double())
    return sims.amax(-1).sum(-1)


@pytest.fixture(scope="module")
def corpus():
    return unit(300, 64, DIM, seed=1), unit(5, 16, DIM, seed=2)


def build(docs: torch.Tensor, dtype: str = "float32", **kwargs) -> MultiVectorIndex:
    index = MultiVectorIndex(DIM, 64, dtype=dtype, **kwargs)
    ids = [f"doc{i}" for i in range(len(docs))]
    half = len(docs) // 2  # two calls, so the buffer grows once
    index.add(ids[:half], docs[:half].float(), [{"n": i, "parity": i % 2} for i in range(half)])
    index.add(ids[half:], docs[half:].float(), [{"n": i, "parity": i % 2} for i in range(half, len(docs))])
    return index


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "int8"])
@pytest.mark.parametrize("budget", [(1, 1), (8, 16), (16, 64), (3, 5)])
def test_scores_match_float64_reference(corpus, dtype, budget):
    docs, queries = corpus
    index = build(docs, dtype)
    assert isinstance(index, MultiVectorStore) and len(index) == 300
    hits = index.search(queries.float(), budget=budget, k=10)
    ref = reference(queries, docs, budget)
    for q, row in enumerate(hits):
        assert len(row) == 10 and all(isinstance(h, SearchHit) for h in row)
        scores = torch.tensor([h.score for h in row], dtype=torch.float64)
        expected = ref[q, [int(h.id[3:]) for h in row]]
        assert torch.allclose(scores, expected, rtol=TOL[dtype], atol=TOL[dtype] * budget[0])
        assert scores.tolist() == sorted(scores.tolist(), reverse=True)
        if dtype == "float32":
            assert [int(h.id[3:]) for h in row] == ref[q].topk(10).indices.tolist()
        assert row[0].metadata == {"n": int(row[0].id[3:]), "parity": int(row[0].id[3:]) % 2}


@pytest.mark.parametrize("strategy", ["auto", "compiled", "batched", "per-vector"])
def test_kernel_strategies_chunking_and_normalize_are_exact(corpus, strategy):
    docs, queries = corpus
    vectors = docs.float().transpose(0, 1).contiguous()
    ref = reference(queries, docs, (8, 16))
    for chunk in (None, 1, 7, 64, 1000):
        got = maxsim_vector_major(queries.float(), vectors, (8, 16), chunk_size=chunk, strategy=strategy)
        assert torch.allclose(got.double(), ref, rtol=1e-5, atol=1e-6)
    for dtype in ("bfloat16", "int8"):  # converted chunks, scales folded in before the maximum
        from metaembed_rag.index import StorageFormat

        values, scales = StorageFormat.parse(dtype).encode(docs.float())
        got = maxsim_vector_major(queries.float(), values, (16, 64), scales=scales, chunk_size=50, strategy=strategy)
        stored = StorageFormat.parse(dtype).decode(values, scales).double()
        assert torch.allclose(got.double(), reference(queries, stored, (16, 64)), rtol=1e-5, atol=1e-5)
    normalised = maxsim_vector_major(queries.float(), vectors, (8, 16), normalize=True)
    assert torch.allclose(normalised.double(), ref / 8, rtol=1e-5, atol=1e-6)


def test_filters_dict_in_and_callable(corpus):
    docs, queries = corpus
    index = build(docs)
    ref = reference(queries, docs, (8, 16))
    even = index.search(queries.float(), budget=(8, 16), k=5, filter={"parity": 0})
    assert all(h.metadata["parity"] == 0 for row in even for h in row)
    assert [int(h.id[3:]) for h in even[0]] == [2 * i for i in ref[0, ::2].topk(5).indices.tolist()]
    few = index.search(queries.float(), budget=(8, 16), k=10, filter={"n": {"$in": [3, 50, 299]}})
    assert sorted(h.metadata["n"] for h in few[1]) == [3, 50, 299]  # fewer matches than k: all of them
    big = index.search(queries.float(), budget=(8, 16), k=3, filter=lambda m: m["n"] >= 100)
    assert all(h.metadata["n"] >= 100 for row in big for h in row)
    assert index.search(queries.float(), budget=(8, 16), k=3, filter={"n": -1}) == [[] for _ in range(5)]
    with pytest.raises(InvalidInputError):
        index.search(queries.float(), budget=(8, 16), k=3, filter={"n": {"$like": 3}})
    with pytest.raises(InvalidInputError):
        index.search(queries.float(), budget=(8, 16), k=3, filter={"$nand": [{"n": 3}]})
    over = index.search(queries.float(), budget=(8, 16), k=300, filter={"n": {"$gt": 290}})
    assert sorted(h.metadata["n"] for h in over[0]) == list(range(291, 300))


def test_upsert_delete_get_and_compaction(corpus):
    docs, queries = corpus
    index = build(docs[:40])
    index.add(["doc5"], docs[200:201].float(), [{"replaced": True}])  # upsert: same id, new vectors
    assert len(index) == 40
    stored = index.get(["doc5"])[0]
    assert stored.metadata == {"replaced": True}
    assert torch.allclose(stored.embeddings.double(), docs[200], atol=1e-6)
    top = index.search(docs[200:201, :16].float(), budget=(16, 64), k=1)[0][0]
    assert top.id == "doc5"
    index.delete(["doc0", "doc1"])
    assert len(index) == 38 and "doc0" not in index and "doc2" in index
    with pytest.raises(DocumentNotFoundError):
        index.get(["doc0"])
    index.delete([f"doc{i}" for i in range(2, 20)])  # past the dead fraction: compacts
    assert len(index) == 20 and sorted(index.ids) == sorted(f"doc{i}" for i in range(20, 40))
    hits = index.search(queries.float(), budget=(8, 16), k=50)
    assert len(hits[0]) == 20 and {h.id for h in hits[0]} == set(index.ids)
    index.add(["doc0"], docs[:1].float())
    assert len(index) == 21 and index.get(["doc0"])[0].metadata == {}
    index.delete(index.ids)
    assert len(index) == 0 and index.search(queries.float(), budget=(1, 1), k=3) == [[] for _ in range(5)]


def test_cascade_rescoring_is_exact_and_full_candidates_equal_exhaustive(corpus):
    docs, queries = corpus
    index = build(docs)
    exhaustive = index.search(queries.float(), budget=(16, 64), k=10)
    full = index.search(queries.float(), budget=(16, 64), k=10, cascade=((1, 1), 300))
    assert [[h.id for h in r] for r in full] == [[h.id for h in r] for r in exhaustive]
    ref = reference(queries, docs, (16, 64))
    partial = index.search(queries.float(), budget=(16, 64), k=5, cascade=((2, 4), 40), normalize=True)
    coarse = reference(queries, docs, (2, 4))
    for q, row in enumerate(partial):
        allowed = set(coarse[q].topk(40).indices.tolist())
        assert {int(h.id[3:]) for h in row} <= allowed
        for h in row:
            assert math.isclose(h.score, ref[q, int(h.id[3:])].item() / 16, rel_tol=1e-5)
    filtered = index.search(queries.float(), budget=(8, 16), k=3, cascade=((1, 1), 10), filter={"parity": 1})
    assert all(h.metadata["parity"] == 1 for row in filtered for h in row)


def test_int8_keeps_rankings_close(corpus):
    docs, queries = corpus
    exact = build(docs).search(queries.float(), budget=(16, 64), k=10)
    quant = build(docs, "int8").search(queries.float(), budget=(16, 64), k=10)
    overlap = sum(len({h.id for h in a} & {h.id for h in b}) for a, b in zip(exact, quant, strict=False)) / 50
    assert overlap >= 0.8


def test_stored_vectors_smaller_than_model_and_budget_errors(corpus):
    docs, queries = corpus
    index = MultiVectorIndex(DIM, 16)
    index.add(["a", "b"], docs[:2].float())  # 64 given: the first 16 are kept
    assert torch.allclose(index.get(["a"])[0].embeddings.double(), docs[0, :16], atol=1e-6)
    with pytest.raises(BudgetError, match="r_c=64"):
        index.search(queries.float(), budget=(16, 64), k=1)
    with pytest.raises(BudgetError):
        index.search(queries[:, :4].float(), budget=(8, 16), k=1)  # more query vectors than given
    with pytest.raises(BudgetError):
        index.search(queries.float(), budget=(4, 8), k=1, cascade=((8, 8), 5))


def test_constructor_arguments_are_checked():
    # What every store refuses (ids, embeddings, metadata, queries, k, budgets, cascades, filters) is in
    # tests/index/test_store_contract.py; these are the index's own arguments.
    for bad in ({"dim": 0}, {"dim": DIM, "stored_vectors": 0}, {"dim": True}, {"dim": DIM, "stored_vectors": 1.5}):
        with pytest.raises(InvalidInputError):
            MultiVectorIndex(**bad)
    with pytest.raises(InvalidInputError):
        MultiVectorIndex(DIM, 4, dtype="int4")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
def test_gpu_matches_cpu(corpus, dtype):
    docs, queries = corpus
    cpu = build(docs, dtype)
    gpu = build(docs, dtype, device="cuda")
    ref = reference(queries, docs, (8, 16))
    hits = gpu.search(queries.float(), budget=(8, 16), k=10)
    for q, row in enumerate(hits):
        expected = ref[q, [int(h.id[3:]) for h in row]]
        assert torch.allclose(torch.tensor([h.score for h in row], dtype=torch.float64), expected, rtol=2e-2)
    on_cpu = cpu.search(queries.float(), budget=(16, 64), k=5, cascade=((1, 1), 50))
    moved = cpu.to("cuda")
    assert moved.device.type == "cuda" and len(moved) == 300
    on_gpu = moved.search(queries.float(), budget=(16, 64), k=5, cascade=((1, 1), 50))
    overlap = sum(len({h.id for h in a} & {h.id for h in b}) for a, b in zip(on_cpu, on_gpu, strict=False))
    assert overlap >= 0.9 * 25
    assert moved.to("cpu").device.type == "cpu"
