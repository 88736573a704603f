"""The low-precision selection pass + exact re-score: same top-k as float32, its error bound, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from metaembed_rag import exact_topk as fast
from metaembed_rag.compiled_maxsim import KERNEL_ENV
from metaembed_rag.errors import BudgetError, InvalidInputError
from metaembed_rag.index import MultiVectorIndex
from metaembed_rag.index.storage import StorageFormat
from metaembed_rag.scoring import maxsim, maxsim_vector_major


def unit(*shape: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def near_ties(n: int = 400, dim: int = 32, seed: int = 0) -> torch.Tensor:
    """Documents in groups of near-copies: bfloat16 rounding reorders them, exact scores do not tie."""
    base = unit(n // 8, 16, dim, seed=seed).repeat_interleave(8, dim=0)
    return F.normalize(base + 1e-3 * unit(n, 16, dim, seed=seed + 1), dim=-1)


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
@pytest.mark.parametrize("budget", [(1, 1), (4, 8), (8, 16)])
def test_same_top_k_as_the_float32_path(dtype, budget, monkeypatch):
    docs = near_ties()
    queries = docs[::50, :16] + 0.01 * unit(8, 16, 32, seed=9)
    values, scales = StorageFormat.parse(dtype).encode(docs)
    monkeypatch.setattr(fast, "FIRST_CANDIDATES", 4)  # force the threshold step to do the work
    top, rows, rescored = fast.exact_topk(queries, values, budget, 10, scales=scales)
    exact = maxsim_vector_major(queries, values, budget, scales=scales)
    ref_values, ref_rows = exact.topk(10, dim=1)
    # the same scores at every rank; rows may differ only between documents whose float32 scores are
    # equal to rounding (near-copies), whichever order two float32 reductions give them
    assert torch.allclose(top, ref_values, atol=1e-5)
    assert torch.allclose(exact.gather(1, rows), top, atol=1e-5)
    assert (rows == ref_rows).float().mean() > 0.5
    assert 40 <= rescored < docs.shape[0]  # more than the first candidates, fewer than all


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_error_bound_holds_also_for_unnormalised_vectors(dtype):
    docs = 3.0 * torch.randn(300, 16, 64, generator=torch.Generator().manual_seed(4))
    queries = 0.5 * torch.randn(6, 8, 64, generator=torch.Generator().manual_seed(5))
    values, scales = StorageFormat.parse(dtype).encode(docs)
    approx = fast.approximate_scores(queries, values, scales, 8, 16)
    exact = maxsim_vector_major(queries, values, (8, 16), scales=scales).double()
    bound = fast.error_bound(queries, fast.max_vector_norm(values[:16], scales[:16] if scales is not None else None))
    gap = (approx.double() - exact).abs().amax(dim=1)
    assert bool((gap <= bound.double()).all()) and bool((gap > 0).any())


def test_index_search_is_unchanged_by_the_fast_path(monkeypatch):
    docs = near_ties(600)
    queries = docs[::75, :16].float()
    for dtype in ("bfloat16", "int8"):
        index = MultiVectorIndex(32, 16, dtype=dtype)
        index.add([f"d{i}" for i in range(600)], docs, [{"n": i} for i in range(600)])
        monkeypatch.setenv(fast.MODE_ENV, "off")
        slow = index.search(queries, budget=(8, 16), k=12)
        slow_filtered = index.search(queries, budget=(8, 16), k=5, filter=lambda m: m["n"] % 3 == 0)
        monkeypatch.setenv(fast.MODE_ENV, "on")
        assert fast.use_low_precision(index._snapshot.values, 600, 12)
        got = index.search(queries, budget=(8, 16), k=12)
        assert [[h.id for h in hits] for hits in got] == [[h.id for h in hits] for hits in slow]
        got = index.search(queries, budget=(8, 16), k=5, filter=lambda m: m["n"] % 3 == 0)  # gathered rows
        assert [[h.id for h in hits] for hits in got] == [[h.id for h in hits] for hits in slow_filtered]
        index.add(["extra"], unit(1, 16, 32, seed=11))  # the norm bound follows appends
        index.delete(["d0"])
        assert len(index.search(queries, budget=(8, 16), k=700)[0]) == 600  # k > N: every live document


def test_mode_switch(monkeypatch):
    monkeypatch.setenv(fast.MODE_ENV, "sometimes")
    with pytest.raises(InvalidInputError, match=fast.MODE_ENV):
        fast.low_precision_mode()
    monkeypatch.setenv(fast.MODE_ENV, "auto")
    bf16 = torch.zeros(4, 10, 8, dtype=torch.bfloat16)
    assert not fast.use_low_precision(bf16, 10, 5)  # too few documents to pay off
    assert not fast.use_low_precision(torch.zeros(4, 10, 8), 10, 5)  # float32 storage: the float32 path
    assert fast.use_low_precision(bf16, 10**6, 10) == fast.native_bf16_cpu()


def test_bad_input_at_the_scoring_level():
    q, c = unit(2, 4, 8), unit(5, 8, 8)
    assert maxsim(q[:0], c, (2, 4)).shape == (0, 5)  # a batch of 0 queries
    assert maxsim_vector_major(q[:0], c.transpose(0, 1).contiguous(), (2, 4)).shape == (0, 5)
    assert maxsim(q, c[:0], (2, 4)).shape == (2, 0)  # no candidates
    nan = q.clone()
    nan[1, 0, 0] = float("nan")
    for fn, cand in ((maxsim, c), (maxsim_vector_major, c.transpose(0, 1).contiguous())):
        with pytest.raises(InvalidInputError, match="NaN"):
            fn(nan, cand, (2, 4))
        with pytest.raises(BudgetError):
            fn(q, cand, (2, 16))  # more candidate vectors than stored
    _, rows, rescored = fast.exact_topk(q, c.transpose(0, 1).contiguous().bfloat16(), (2, 4), 50)
    assert rows.shape == (2, 5) and rescored == 5  # k > N: clipped to N
    assert fast.exact_topk(q[:0], c.transpose(0, 1).contiguous(), (2, 4), 3)[1].shape == (0, 0)


def test_bad_queries_at_the_index_level():
    index = MultiVectorIndex(8, 8)
    assert index.search(unit(2, 4, 8), budget=(2, 4), k=3) == [[], []]  # empty index: no hits, documented
    index.add(["a", "b"], unit(2, 8, 8))
    assert index.search(unit(0, 4, 8), budget=(2, 4), k=3) == []  # a batch of 0 queries
    nan = unit(1, 4, 8)
    nan[0, 2, 1] = float("nan")
    with pytest.raises(InvalidInputError, match="NaN"):
        index.search(nan, budget=(2, 4), k=1)
    with pytest.raises(BudgetError):
        index.search(unit(1, 4, 8), budget=(2, 16), k=1)


needs_int8_gemm = pytest.mark.skipif(not fast.int8_gemm_available(), reason="no x86 quantised engine (FBGEMM)")


@needs_int8_gemm
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_int8_integer_gemm_bound_holds_and_the_top_k_is_exact(scale, monkeypatch):
    docs = scale * near_ties(400, dim=48)
    queries = docs[::50, :8] + 0.02 * unit(8, 8, 48, seed=3)
    values, scales = StorageFormat.parse("int8").encode(docs)
    l1 = fast.max_vector_norm(values[:16], scales[:16], ord=1)
    l2 = fast.max_vector_norm(values[:16], scales[:16])
    packed = fast.pack_int8(values, scales, 16, 128)  # several blocks, the last one partial
    approx, bound = fast.approximate_scores_int8(queries, packed, 400, 8, 16, max_l1=l1, max_norm=l2)
    exact = maxsim_vector_major(queries, values, (8, 16), scales=scales).double()
    gap = (approx.double() - exact).abs().amax(dim=1)
    assert bool((gap <= bound.double()).all()) and bool((gap > 0).any())
    monkeypatch.setattr(fast, "FIRST_CANDIDATES", 4)
    monkeypatch.setattr(fast, "int8_path", lambda vectors, r_q=None: vectors.dtype == torch.int8)
    top, rows, rescored = fast.exact_topk(queries, values, (8, 16), 10, scales=scales)
    ref_values, _ = exact.float().topk(10, dim=1)
    assert torch.allclose(top, ref_values, atol=1e-5)
    assert torch.allclose(exact.float().gather(1, rows), top, atol=1e-5)
    assert rescored < 400


@needs_int8_gemm
def test_int8_index_packs_at_the_second_search_and_follows_appends(monkeypatch):
    monkeypatch.setenv(KERNEL_ENV, "torch")  # the FBGEMM path is taken only without the compiled kernel
    monkeypatch.setattr(fast, "native_bf16_cpu", lambda: False)
    docs = near_ties(1200)
    probes = [docs[i : i + 1, :16].float() for i in (0, 300, 900)]

    def run(probe):
        return [(h.id, round(h.score, 4)) for h in index.search(probe, budget=(8, 16), k=10)[0]]

    index = MultiVectorIndex(32, 16, dtype="int8")
    index.add([f"d{i}" for i in range(1200)], docs)
    monkeypatch.setenv(fast.MODE_ENV, "off")
    slow = [run(p) for p in probes]
    monkeypatch.setenv(fast.MODE_ENV, "auto")
    assert fast.use_low_precision(index._snapshot.values, 1200, 10)
    first = run(probes[0])
    assert not index._int8_packs[16].blocks  # a one-off search does not pack
    assert [run(p) for p in probes] == slow and index._int8_packs[16].blocks
    batch = index.search(torch.cat(probes), budget=(8, 16), k=10)  # 24 query vectors: float32 instead
    assert [[(h.id, round(h.score, 4)) for h in hits] for hits in batch] == slow and first == slow[0]
    extra = unit(1, 16, 32, seed=21)
    index.add(["new"], extra)  # appended: the last block is packed again, the rest kept
    got = run(extra[:, :16])
    assert index._int8_packs[16].count == 1201 and got[0][0] == "new"
    monkeypatch.setenv(fast.MODE_ENV, "off")
    assert [score for _, score in run(extra[:, :16])] == [score for _, score in got]


@needs_int8_gemm
def test_a_memory_mapped_int8_index_is_never_packed(tmp_path, monkeypatch):
    monkeypatch.setenv(KERNEL_ENV, "torch")  # the FBGEMM path is taken only without the compiled kernel
    monkeypatch.setattr(fast, "native_bf16_cpu", lambda: False)
    docs = near_ties(1200)
    index = MultiVectorIndex(32, 16, dtype="int8")
    index.add([f"d{i}" for i in range(1200)], docs)
    index.save(tmp_path / "idx")
    mapped = MultiVectorIndex.load(tmp_path / "idx", mmap=True)
    probe = docs[:1, :16].float()
    for _ in range(3):
        hits = mapped.search(probe, budget=(8, 16), k=5)[0]
    assert not mapped._int8_packs or not any(p.blocks for p in mapped._int8_packs.values())
    assert [h.id for h in hits] == [h.id for h in index.search(probe, budget=(8, 16), k=5)[0]]


@needs_int8_gemm
def test_int8_takes_integer_gemm_only_without_the_compiled_kernel(monkeypatch):
    monkeypatch.setattr(fast, "native_bf16_cpu", lambda: False)
    wide = torch.zeros(8, 10, 3584, dtype=torch.int8)
    narrow = torch.zeros(8, 10, 384, dtype=torch.int8)
    assert not any(fast.int8_path(v, r_q=r_q) for v in (wide, narrow) for r_q in (1, 4, 16, None))
    assert not fast.use_low_precision(wide, 10**6, 10, r_q=8)  # the kernel is faster at every d measured
    monkeypatch.setenv(KERNEL_ENV, "torch")  # no compiled kernel: integer GEMM for every int8 search
    assert fast.int8_path(narrow, r_q=1) and fast.int8_path(narrow) and fast.int8_path(wide, r_q=16)
    assert fast.use_low_precision(wide, 10**6, 10, r_q=8)
    assert not fast.int8_path(narrow.float())
