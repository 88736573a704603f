"""Budgeted MaxSim late interaction, exact and chunked, on CPU or GPU.

``s(q, c) = Σ_{i ≤ r_q} max_{j ≤ r_c} <q_i, c_j>``; with ``normalize=True`` the sum is divided by ``r_q`` so
scores stay in ``[-1, 1]`` and thresholds carry across budgets.

Scoring accumulates in float32 whatever the storage dtype, and works through the documents in chunks so that
the extra memory is bounded by ``chunk_size`` whatever the corpus size.

Example:
    >>> import torch
    >>> q = torch.nn.functional.normalize(torch.randn(2, 16, 8), dim=-1)
    >>> d = torch.nn.functional.normalize(torch.randn(5, 64, 8), dim=-1)
    >>> maxsim(q, d, budget=(8, 16)).shape
    torch.Size([2, 5])
"""

from __future__ import annotations

import torch

from . import compiled_maxsim
from .budget import Budget, BudgetLike, resolve_budget
from .errors import InvalidInputError
from .validation import check_k

DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024
"""Target size of one chunk of candidate vectors converted for scoring (64 MiB)."""

CPU_SLICE_BYTES = 3 * 1024 * 1024
"""Vector-major scoring on the CPU: bytes of one ``[chunk, d]`` float32 slice, sized for the L2/L3 caches."""

GPU_SLICE_BYTES = 256 * 1024 * 1024
"""Vector-major scoring on a GPU: bytes of one ``[chunk, d]`` slice streamed per matrix product."""

STRATEGIES = ("auto", "compiled", "batched", "per-vector")
"""Ways :func:`maxsim_vector_major` can score (see there)."""


def _check_embeddings(name: str, tensor: torch.Tensor) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise InvalidInputError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.ndim != 3:
        raise InvalidInputError(f"{name} must have shape [n, vectors, dim], got {tuple(tensor.shape)}")


def _check_pair(queries: torch.Tensor, candidates: torch.Tensor, name: str) -> None:
    _check_embeddings("queries", queries)
    _check_embeddings(name, candidates)
    if queries.shape[-1] != candidates.shape[-1]:
        raise InvalidInputError(f"query dim {queries.shape[-1]} does not match candidate dim {candidates.shape[-1]}")
    if not queries.is_floating_point():
        raise InvalidInputError(f"queries must be floating point, got {queries.dtype}")
    if not bool(torch.isfinite(queries).all()):  # queries are small: always checked (a NaN would rank at random)
        raise InvalidInputError("queries contain NaN or infinite values")


def maxsim_block(queries: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """MaxSim of every query against every candidate, no budget slicing, in float32.

    ``queries`` ``[n_q, r_q, d]`` and ``candidates`` ``[n_c, r_c, d]`` (already the budget's prefix)
    give ``[n_q, n_c]`` raw scores.
    """
    n_q, r_q, dim = queries.shape
    n_c, r_c, _ = candidates.shape
    q = queries.reshape(n_q * r_q, dim).to(torch.float32)
    c = candidates.reshape(n_c * r_c, dim)
    if c.dtype == torch.int8:
        raise InvalidInputError("int8 candidates must be dequantised before maxsim_block")
    c = c.to(torch.float32)
    sims = (q @ c.T).view(n_q, r_q, n_c, r_c)
    return sims.amax(dim=3).sum(dim=1)


def maxsim(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    budget: BudgetLike | None = None,
    *,
    normalize: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Budgeted MaxSim scores ``[n_q, n_c]`` (float32) between query and candidate multi-vectors.

    Args:
        queries: ``[n_q, R_q, d]`` query vectors (any float dtype), L2-normalised.
        candidates: ``[n_c, R_c, d]`` candidate vectors, on the device where scoring should run.
        budget: ``(r_q, r_c)``; defaults to all vectors given.
        normalize: divide by ``r_q`` (scores then lie in ``[-1, 1]``).
        chunk_size: candidates per chunk; by default sized to about 64 MiB of float32 vectors.

    Example:
        >>> import torch
        >>> q = torch.ones(1, 2, 4) / 2; c = torch.ones(3, 4, 4) / 2
        >>> maxsim(q, c, budget=(2, 4)).tolist()
        [[2.0, 2.0, 2.0]]
    """
    _check_pair(queries, candidates, "candidates")
    b = resolve_budget(budget, max_query=queries.shape[1], max_candidate=candidates.shape[1])
    device = candidates.device
    q = queries[:, : b.r_q].to(device=device, dtype=torch.float32)
    n_c = candidates.shape[0]
    out = torch.empty(q.shape[0], n_c, dtype=torch.float32, device=device)
    if chunk_size is None:
        per_candidate = b.r_c * candidates.shape[-1] * 4 + q.shape[0] * q.shape[1] * b.r_c * 4
        chunk_size = max(1, DEFAULT_CHUNK_BYTES // max(per_candidate, 1))
    for start in range(0, n_c, chunk_size):
        block = candidates[start : start + chunk_size, : b.r_c]
        out[:, start : start + block.shape[0]] = maxsim_block(q, block)
    if normalize:
        out /= b.r_q
    return out


def maxsim_vector_major(
    queries: torch.Tensor,
    vectors: torch.Tensor,
    budget: BudgetLike | None = None,
    *,
    scales: torch.Tensor | None = None,
    normalize: bool = False,
    chunk_size: int | None = None,
    strategy: str = "auto",
) -> torch.Tensor:
    """Budgeted MaxSim against candidates stored vector-major, ``[R_c, n_c, d]``: the layout of the index.

    Vector ``j`` of every candidate is the contiguous block ``vectors[j]``, so any budget prefix ``r_c`` is
    ``vectors[:r_c]`` with no strided gather. One pass over the index serves the whole batch of queries, with
    one of three strategies (``"auto"``: ``"compiled"`` where it applies, else ``"batched"``):

    - ``"compiled"``: the numba kernel of :mod:`~metaembed_rag.compiled_maxsim` (CPU; float32, bfloat16 and
      int8 storage, widened to float32 inside its dot products): 1.7–12x faster than ``"batched"`` on one query,
      up to 4.3x on 32 (``benchmarks/results/scoring_kernel_choice.md``); ``"auto"`` takes it from
      ``MIN_AUTO_VALUES`` stored values up to ``MAX_AUTO_ROWS`` query vectors (and ``MAX_AUTO_QUERY_VALUES``
      query values for float32 storage; :func:`~metaembed_rag.compiled_maxsim.preferred`);
    - ``"batched"``: per chunk, one batched product ``[r_c, n_q·r_q, chunk]`` then a max over ``r_c``; chunks
      are sized so the products (and a converted chunk) stay within a few MiB of cache;
    - ``"per-vector"``: per chunk, one product per candidate vector feeding a running maximum kept in cache
      (measured slower than ``"batched"`` on this project's 2-core CPUs; kept for comparison).

    Storage dtypes: float32 is scored as is. On the CPU, float16/bfloat16/int8 are widened to float32 before
    the product (exact; inside the dot products in ``"compiled"``, per chunk otherwise); on a GPU they are multiplied in
    their own dtype (bf16/fp16 tensor cores; int8 through an exact bf16 copy), so similarities are rounded to
    that dtype before the maximum.
    The sum over query vectors is float32 everywhere. ``scales`` ``[R_c, n_c]`` (int8 only) are the
    per-vector dequantisation factors, applied to the products before the maximum, because
    ``max_j s_j <q, c_j>`` is not ``max_j <q, c_j>`` times anything.

    Example:
        >>> import torch
        >>> q = torch.ones(1, 2, 4) / 2; v = torch.ones(4, 3, 4) / 2
        >>> maxsim_vector_major(q, v, budget=(2, 4)).tolist()
        [[2.0, 2.0, 2.0]]
    """
    _check_pair(queries, vectors, "vectors")
    if strategy not in STRATEGIES:
        raise InvalidInputError(f"strategy must be one of {', '.join(map(repr, STRATEGIES))}, got {strategy!r}")
    b = resolve_budget(budget, max_query=queries.shape[1], max_candidate=vectors.shape[0])
    if vectors.dtype == torch.int8 and scales is None:
        raise InvalidInputError("int8 vectors need their per-vector scales")
    if scales is not None:
        if scales.shape[0] < b.r_c or scales.shape[1:] != vectors.shape[1:2]:
            raise InvalidInputError(
                f"scales must be [R_c, n_c] = {tuple(vectors.shape[:2])}, got {tuple(scales.shape)}"
            )
        scales = scales[: b.r_c]  # the budget's prefix, as the vectors (a longer one would broadcast wrongly)
    device = vectors.device
    n_q, dim, n_c = queries.shape[0], vectors.shape[-1], vectors.shape[1]
    out = torch.empty(n_q, n_c, dtype=torch.float32, device=device)
    if n_c == 0 or n_q == 0:
        return out
    on_gpu = device.type != "cpu"
    # GPU: multiply in the storage dtype (int8 through an exact bf16 copy); CPU: in float32
    compute_dtype = (torch.bfloat16 if vectors.dtype == torch.int8 else vectors.dtype) if on_gpu else torch.float32
    convert = vectors.dtype != compute_dtype
    if strategy == "auto":  # measured (benchmarks/results/scoring.md): compiled, then batched, then per-vector
        strategy = "compiled" if compiled_maxsim.preferred(vectors[: b.r_c], n_q * b.r_q) else "batched"
    flat = queries[:, : b.r_q].reshape(n_q * b.r_q, dim).to(device=device, dtype=compute_dtype)
    if strategy == "compiled":
        compiled_maxsim.maxsim_compiled(flat, vectors[: b.r_c], scales, n_q=n_q, r_q=b.r_q, out=out)
    elif strategy == "batched":
        _batched(flat, vectors[: b.r_c], scales, out, n_q, b.r_q, chunk_size, convert, on_gpu)
    else:
        _per_vector(flat, vectors[: b.r_c], scales, out, n_q, b.r_q, chunk_size, convert, on_gpu)
    if normalize:
        out /= b.r_q
    return out


def _batched(flat, vectors, scales, out, n_q, r_q, chunk_size, convert, on_gpu) -> None:
    r_c, n_c, dim = vectors.shape
    rows = flat.shape[0]
    if chunk_size is None:
        # keep the [r_c, rows, chunk] products (and a converted chunk) within the budget
        per_candidate = r_c * max(rows * 4, dim * flat.element_size() if convert else 0)
        target = GPU_SLICE_BYTES if on_gpu else 4 * 1024 * 1024
        chunk_size = max(64, target // per_candidate)
    for start in range(0, n_c, chunk_size):
        stop = min(start + chunk_size, n_c)
        block = vectors[:, start:stop]
        if convert:
            block = block.to(flat.dtype)
        products = torch.matmul(flat, block.transpose(1, 2))  # [r_c, rows, width]
        if scales is not None:
            products = products * scales[:, None, start:stop]
        best = products.amax(dim=0)
        torch.sum(best.view(n_q, r_q, stop - start).to(torch.float32), dim=1, out=out[:, start:stop])


def _per_vector(flat, vectors, scales, out, n_q, r_q, chunk_size, convert, on_gpu) -> None:
    r_c, n_c, dim = vectors.shape
    rows = flat.shape[0]
    if chunk_size is None:
        target = GPU_SLICE_BYTES if on_gpu else CPU_SLICE_BYTES
        chunk_size = max(64, target // (dim * 4))
        if not on_gpu and rows > 64:  # many queries: keep the [rows, chunk] maxima in cache too
            chunk_size = max(64, min(chunk_size, (1024 * 1024) // (rows * 4)))
    chunk_size = min(chunk_size, n_c)
    device = vectors.device
    buffer = torch.empty(chunk_size, dim, dtype=flat.dtype, device=device) if convert else None
    best = torch.empty(rows, chunk_size, dtype=torch.float32, device=device)
    sims = torch.empty(rows, chunk_size, dtype=flat.dtype, device=device)
    for start in range(0, n_c, chunk_size):
        stop = min(start + chunk_size, n_c)
        width = stop - start
        acc = best[:, :width]
        for j in range(r_c):
            block = vectors[j, start:stop]
            if convert:
                block = buffer[:width].copy_(block)
            product = torch.mm(flat, block.T, out=sims[:, :width])
            if scales is not None:
                product = product * scales[j, start:stop]
            if product.dtype != torch.float32:
                product = product.to(torch.float32)
            if j == 0:
                acc.copy_(product)
            else:
                torch.maximum(acc, product, out=acc)
        torch.sum(acc.view(n_q, r_q, width), dim=1, out=out[:, start:stop])


def topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` along the last axis, ``k`` clipped to the number of candidates; ties keep lower index first.

    Returns ``(values, indices)``, each ``[n_q, min(k, n_c)]``.

    Example:
        >>> import torch
        >>> topk(torch.tensor([[0.1, 0.9, 0.5]]), 2)[1].tolist()
        [[1, 2]]
    """
    check_k(k)
    k = min(k, scores.shape[-1])
    values, indices = torch.topk(scores, k, dim=-1, largest=True, sorted=True)
    return values, indices


def budget_of(queries: torch.Tensor, candidates: torch.Tensor, budget: BudgetLike | None) -> Budget:
    """The validated budget for these embeddings (helper for callers that report it)."""
    return resolve_budget(budget, max_query=queries.shape[1], max_candidate=candidates.shape[1])
