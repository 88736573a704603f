"""The compiled CPU MaxSim kernel: exact to float32 rounding for every storage dtype and shape, no copy of an
index snapshot, safe from many threads, and switchable off."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F

from metaembed_rag import compiled_maxsim
from metaembed_rag.budget import Budget
from metaembed_rag.compiled_maxsim import KERNEL_ENV, available, maxsim_compiled
from metaembed_rag.errors import InvalidInputError
from metaembed_rag.index import MultiVectorIndex, StorageFormat
from metaembed_rag.scoring import maxsim_vector_major


def unit(*shape: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=generator, dtype=torch.float64), dim=-1)


def stored(dtype: str, docs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Vector-major values, scales and their exact float64 meaning (document-major), for ``docs`` ``[n, R, d]``."""
    fmt = StorageFormat.parse(dtype)
    values, scales = fmt.encode(docs.float())
    return values, scales, fmt.decode(values, scales).double()


def reference(flat: torch.Tensor, docs: torch.Tensor, n_q: int, r_q: int, r_c: int) -> torch.Tensor:
    sims = torch.einsum("id,njd->inj", flat.double(), docs[:, :r_c])
    return sims.amax(-1).view(n_q, r_q, -1).sum(1)


def test_numba_is_installed_so_the_kernel_is_on():
    assert available()  # numba is a dependency: without it every CPU search silently takes the slower path


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
@pytest.mark.parametrize(
    ("n_q", "r_q", "r_c", "n"),
    [(1, 1, 1, 1), (1, 2, 4, 127), (1, 3, 8, 128), (2, 5, 7, 129), (3, 7, 16, 300), (1, 16, 64, 257), (4, 1, 3, 5)],
)
def test_matches_float64_on_the_stored_values(dtype, n_q, r_q, r_c, n):
    docs = unit(n, 64, 48, seed=n + r_c)
    values, scales, exact = stored(dtype, docs)
    flat = unit(n_q * r_q, 48, seed=r_q).float()
    got = maxsim_compiled(flat, values[:r_c], None if scales is None else scales[:r_c], n_q=n_q, r_q=r_q)
    assert got.shape == (n_q, n) and got.dtype == torch.float32
    assert torch.allclose(got.double(), reference(flat, exact, n_q, r_q, r_c), rtol=0, atol=2e-6 * r_q)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
@pytest.mark.parametrize("dim", [1, 3, 13, 21, 392])
def test_dimensions_that_are_not_a_multiple_of_the_vector_width(dtype, dim):
    # the hand-written loop reads 8 values a step, then one at a time: every row block and group width is hit
    docs = unit(131, 8, dim, seed=dim)
    values, scales, exact = stored(dtype, docs)
    for rows in (1, 2, 3, 4, 7, 9):
        flat = unit(rows, dim, seed=rows).float()
        got = maxsim_compiled(flat, values, scales, n_q=1, r_q=rows)
        assert torch.allclose(got.double(), reference(flat, exact, 1, rows, 8), rtol=0, atol=2e-6 * rows)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_any_thread_count_scores_every_document_once(threads, monkeypatch):
    # blocks are a multiple of the threads: some come out empty for small n, none may be skipped or doubled
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    for n in (1, 2, 5, 17, 1000):
        docs = unit(n, 4, 16, seed=n)
        values, _, exact = stored("float32", docs)
        flat = unit(4, 16, seed=n).float()
        got = maxsim_compiled(flat, values, None, n_q=2, r_q=2)
        assert torch.allclose(got.double(), reference(flat, exact, 2, 2, 4), rtol=0, atol=4e-6)


def test_a_snapshot_slice_of_a_longer_buffer_is_read_in_place():
    docs = unit(200, 8, 16, seed=3)
    values, scales, exact = stored("int8", docs)
    prefix, prefix_scales = values[:4, :150], scales[:4, :150]  # what the index passes: rows [0, count) of r_c
    base = compiled_maxsim._row_major_base(prefix)
    assert base.data_ptr() == values.data_ptr() and base.is_contiguous() and base.shape == (4, 200, 16)
    assert compiled_maxsim._row_major_base(prefix_scales).data_ptr() == scales.data_ptr()
    flat = unit(2, 16, seed=4).float()
    got = maxsim_compiled(flat, prefix, prefix_scales, n_q=1, r_q=2)
    assert got.shape == (1, 150)
    assert torch.allclose(got.double(), reference(flat, exact[:150], 1, 2, 4), atol=4e-6)
    strided = values[:4, ::2]  # any other layout is copied first, same result
    got = maxsim_compiled(flat, strided, scales[:4, ::2], n_q=1, r_q=2)
    assert torch.allclose(got.double(), reference(flat, exact[::2], 1, 2, 4), atol=4e-6)


def test_concurrent_callers_get_their_own_answers():
    docs = unit(500, 16, 32, seed=5)
    values = docs.float().transpose(0, 1).contiguous()
    queries = [unit(4, 32, seed=10 + t).float() for t in range(6)]
    serial = [maxsim_compiled(q, values, None, n_q=1, r_q=4) for q in queries]
    results: dict[int, torch.Tensor] = {}

    def work(t: int) -> None:
        for _ in range(5):
            results[t] = maxsim_compiled(queries[t], values, None, n_q=1, r_q=4)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(torch.equal(results[t], serial[t]) for t in range(6))


def counting_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = compiled_maxsim.maxsim_compiled
    monkeypatch.setattr(compiled_maxsim, "maxsim_compiled", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    return calls


def test_auto_uses_it_where_it_pays_and_agrees_with_the_torch_path(monkeypatch):
    calls = counting_calls(monkeypatch)
    queries = unit(3, 8, 32, seed=7).float()
    values, _, _ = stored("bfloat16", unit(2100, 16, 32, seed=6))  # 16 x 2100 x 32 = 1.08M values
    auto = maxsim_vector_major(queries, values, (8, 16))
    torch_path = maxsim_vector_major(queries, values, (8, 16), strategy="batched")
    assert calls == [1] and torch.allclose(auto, torch_path, atol=1e-5)
    maxsim_vector_major(queries, values, (8, 8))  # half the values: below MIN_AUTO_VALUES, torch is quicker
    maxsim_vector_major(unit(17, 8, 32, seed=8).float(), values, (8, 16))  # 136 query vectors: still the kernel
    maxsim_vector_major(unit(33, 8, 32, seed=8).float(), values, (8, 16))  # 264 query vectors: GEMM's ground
    assert calls == [1, 1]
    wide, _, _ = stored("float32", unit(200, 4, 4096, seed=9))  # 80 x 4096 float32 query values: beyond L2
    maxsim_vector_major(unit(10, 8, 4096, seed=10).float(), wide, (8, 4))
    maxsim_vector_major(unit(8, 8, 4096, seed=10).float(), wide, (8, 4))  # 64 x 4096: in cache
    assert calls == [1, 1, 1]
    wide_bf16, _, _ = stored("bfloat16", unit(200, 4, 4096, seed=9))  # torch would convert it: the kernel
    maxsim_vector_major(unit(10, 8, 4096, seed=10).float(), wide_bf16, (8, 4))
    assert calls == [1, 1, 1, 1]
    monkeypatch.setenv(KERNEL_ENV, "torch")
    assert not available()
    assert torch.equal(maxsim_vector_major(queries, values, (8, 16)), torch_path) and len(calls) == 4


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
def test_index_searches_through_it_rank_as_the_torch_path(dtype, monkeypatch, tmp_path):
    monkeypatch.setattr(compiled_maxsim, "MIN_AUTO_VALUES", 0)
    calls = counting_calls(monkeypatch)
    docs = unit(400, 16, 32, seed=11)
    index = MultiVectorIndex(32, 16, dtype=dtype)
    index.add([f"d{i}" for i in range(400)], docs.float(), [{"even": i % 2 == 0} for i in range(400)])
    index.save(tmp_path / "idx")
    mapped = MultiVectorIndex.load(tmp_path / "idx", mmap=True)
    queries = unit(2, 8, 32, seed=12).float()

    def ranked(store, **kwargs) -> tuple[list[list[str]], torch.Tensor]:
        rows = store.search(queries, budget=(8, 16), k=7, **kwargs)
        return [[h.id for h in row] for row in rows], torch.tensor([[h.score for h in row] for row in rows])

    def all_three() -> list[tuple[list[list[str]], torch.Tensor]]:
        return [ranked(index), ranked(index, filter={"even": True}), ranked(mapped)]

    compiled = all_three()
    assert len(calls) == 3 and compiled[2][0] == compiled[0][0]
    assert all(hit.endswith(("0", "2", "4", "6", "8")) for row in compiled[1][0] for hit in row)
    monkeypatch.setenv(KERNEL_ENV, "torch")
    for (ids, scores), (torch_ids, torch_scores) in zip(compiled, all_three(), strict=True):
        assert ids == torch_ids and torch.allclose(scores, torch_scores, atol=1e-5)
    assert len(calls) == 3


def test_bad_input_is_refused():
    values = unit(10, 4, 8, seed=8).float().transpose(0, 1).contiguous()
    flat = unit(2, 8, seed=9).float()
    with pytest.raises(InvalidInputError, match="float16"):
        maxsim_compiled(flat, values.half(), None, n_q=1, r_q=2)
    with pytest.raises(InvalidInputError, match="float16"):
        maxsim_vector_major(flat[None], values.half(), (2, 4), strategy="compiled")
    with pytest.raises(InvalidInputError, match="scales"):
        maxsim_compiled(flat, values.to(torch.int8), None, n_q=1, r_q=2)
    with pytest.raises(InvalidInputError, match="scales"):
        maxsim_compiled(flat, values, torch.ones(4, 10), n_q=1, r_q=2)
    with pytest.raises(InvalidInputError, match="queries must be"):
        maxsim_compiled(flat, values, None, n_q=1, r_q=3)
    assert maxsim_compiled(flat, values[:, :0], None, n_q=1, r_q=2).shape == (1, 0)


def test_unknown_mode_is_refused(monkeypatch):
    monkeypatch.setenv(KERNEL_ENV, "fast please")
    with pytest.raises(InvalidInputError, match=KERNEL_ENV):
        available()


def test_an_index_warms_the_kernel_up_in_the_background_only_where_a_search_would_use_it(monkeypatch, caplog):
    index = MultiVectorIndex(32, 16, dtype="int8")
    index.add([f"d{i}" for i in range(50)], unit(50, 16, 32, seed=13).float())
    assert index.warm_up(Budget(8, 16)) is None  # 50 x 16 x 32 values: torch answers faster than a load
    monkeypatch.setattr(compiled_maxsim, "MIN_AUTO_VALUES", 0)
    thread = index.warm_up(Budget(8, 16))
    assert thread is not None
    thread.join(60)
    assert not thread.is_alive() and compiled_maxsim._kernel.cache_info().currsize == 1
    assert index.warm_up(Budget(8, 16), queries=33) is None  # 264 query vectors: GEMM's ground

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel today")

    monkeypatch.setattr(compiled_maxsim, "maxsim_compiled", broken)
    with caplog.at_level("WARNING", logger="metaembed_rag.compiled_maxsim"):
        compiled_maxsim.warm_up_in_background(torch.bfloat16).join(60)
    assert "failed" in caplog.text and "no kernel today" in caplog.text
